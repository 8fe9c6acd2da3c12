// The sessions page: the caller's sessions from the skaha API, launch, renew and delete.
"use strict";
(function () {
  const API = "/skaha/v1";
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const errorBox = document.getElementById("error");
  const form = document.getElementById("launch");
  let images = [];

  function showError(message) { errorBox.textContent = message; errorBox.hidden = false; }

  async function api(method, url, body) {
    const headers = { "X-CSRF-Token": CSRF };
    if (body) headers["Content-Type"] = "application/x-www-form-urlencoded";
    const r = await fetch(API + url, { method, body, headers, credentials: "same-origin" });
    if (!r.ok) throw new Error((await r.text()).trim() || r.status + " " + r.statusText);
    return r;
  }

  const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
  const when = (iso) => (iso || "").replace("T", " ").replace("Z", "").slice(0, 19);

  function button(label, cls, fn) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.className = cls;
    b.addEventListener("click", () => fn().then(refresh).catch((e) => showError(e.message)));
    return b;
  }

  async function refresh() {
    const sessions = await (await api("GET", "/session")).json();
    const body = document.querySelector("#sessions tbody");
    if (!sessions.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell("No sessions. Launch one below.");
      td.colSpan = 8; tr.appendChild(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...sessions.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.id = s.id; tr.dataset.name = s.name; tr.dataset.status = s.status;
      const name = document.createElement("td");
      if (s.connectURL && s.status === "Running") {
        const a = document.createElement("a");
        a.href = s.connectURL; a.target = "_blank"; a.rel = "noopener"; a.className = "connect";
        a.textContent = s.name;
        name.appendChild(a);
      } else name.textContent = s.name;
      tr.append(name, cell(s.type), cell(s.status), cell(s.image),
        cell(s.requestedCPUCores + " cores, " + s.requestedRAM + (s.isFixedResources ? "" : " (flexible)")),
        cell(when(s.startTime)), cell(when(s.expiryTime)));
      const actions = document.createElement("td");
      const logs = document.createElement("a");
      logs.href = API + "/session/" + encodeURIComponent(s.id) + "?view=logs";
      logs.textContent = "Logs"; logs.target = "_blank"; logs.className = "logs";
      actions.append(logs, " ",
        button("Renew", "renew", () => api("POST", "/session/" + encodeURIComponent(s.id), "action=renew")),
        " ",
        button("Delete", "delete", () => {
          if (!confirm("Delete session " + s.name + "?")) return Promise.resolve();
          return api("DELETE", "/session/" + encodeURIComponent(s.id));
        }));
      tr.appendChild(actions);
      return tr;
    }));
  }

  function fillImages() {
    const type = form.type.value;
    const select = document.getElementById("launch-image");
    select.replaceChildren(...images.filter((i) => i.types.includes(type)).map((i) => {
      const o = document.createElement("option"); o.value = o.textContent = i.id; return o;
    }));
    document.getElementById("headless-fields").hidden = type !== "headless";
  }

  function fillOptions(id, options, chosen) {
    document.getElementById(id).replaceChildren(...options.map((v) => {
      const o = document.createElement("option");
      o.value = o.textContent = String(v);
      o.selected = v === chosen;
      return o;
    }));
  }

  form.addEventListener("change", (e) => { if (e.target.name === "type") fillImages(); });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errorBox.hidden = true;
    const params = new URLSearchParams();
    for (const key of ["name", "image", "type"]) params.append(key, form[key].value);
    if (form.resources.value === "fixed") {
      params.append("cores", form.cores.value);
      params.append("ram", form.ram.value);
    }
    if (form.type.value === "headless") {
      if (form.cmd.value.trim()) params.append("cmd", form.cmd.value.trim());
      if (form.args.value.trim()) params.append("args", form.args.value.trim());
    }
    try { await api("POST", "/session", params.toString()); await refresh(); }
    catch (err) { showError(err.message); }
  });

  (async () => {
    try {
      const [imageList, context] = await Promise.all([
        api("GET", "/image").then((r) => r.json()), api("GET", "/context").then((r) => r.json())]);
      images = imageList;
      fillImages();
      fillOptions("launch-cores", context.cores.options, context.cores.default);
      fillOptions("launch-ram", context.memoryGB.options, context.memoryGB.default);
      await refresh();
    } catch (e) { showError(e.message); }
    setInterval(() => refresh().catch((e) => showError(e.message)), 5000);
  })();
})();
