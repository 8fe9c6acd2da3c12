// The storage browser's actions: each one a request to the service's own endpoints
// (VOSpace nodes, transfers, files, versions, snapshots) with the page's CSRF token.
"use strict";
(function () {
  const ctx = document.getElementById("context").dataset;
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const SVC = ctx.service, HERE = ctx.path, AUTH = ctx.authority;
  const CORE = "ivo://ivoa.net/vospace/core#", CADC = "ivo://cadc.nrc.ca/vospace/core#";
  const VOS = "http://www.ivoa.net/xml/VOSpace/v2.0";
  const XSI = "http://www.w3.org/2001/XMLSchema-instance";
  const errorBox = document.getElementById("error");

  const join = (parent, name) => (parent ? parent + "/" + name : name);
  const encPath = (p) => p.split("/").map(encodeURIComponent).join("/");
  const vosUri = (p) => "vos://" + AUTH + "~" + SVC + "/" + encPath(p);
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    window.scrollTo(0, 0);
  }

  // fetch with the session cookie and the CSRF token; a refusal throws the service's text
  async function api(method, url, body, type) {
    const headers = { "X-CSRF-Token": CSRF };
    if (type) headers["Content-Type"] = type;
    const r = await fetch(url, { method, body, headers, credentials: "same-origin" });
    if (!r.ok) throw new Error((await r.text()).trim() || r.status + " " + r.statusText);
    return r;
  }

  function nodeXml(path, type, props, target) {
    const items = Object.entries(props || {}).map(([uri, v]) => v === null
      ? '<vos:property uri="' + esc(uri) + '" xsi:nil="true"/>'
      : '<vos:property uri="' + esc(uri) + '">' + esc(v) + "</vos:property>").join("");
    return '<vos:node xmlns:vos="' + VOS + '" xmlns:xsi="' + XSI + '" uri="' + esc(vosUri(path)) +
      '" xsi:type="vos:' + type + '"><vos:properties>' + items + "</vos:properties>" +
      (target ? "<vos:target>" + esc(target) + "</vos:target>" : "") + "</vos:node>";
  }

  const putNode = (path, type, props, target) => api("PUT", "/" + SVC + "/nodes/" + encPath(path),
    nodeXml(path, type, props, target), "text/xml");
  const setProps = (path, type, props) => api("POST", "/" + SVC + "/nodes/" + encPath(path),
    nodeXml(path, type, props), "text/xml");

  // a UWS job: create with PHASE=RUN, then wait until it ends; ERROR throws its summary
  async function runJob(list, body, type) {
    let r = await api("POST", "/" + SVC + "/" + list + "?PHASE=RUN", body, type);
    let url = r.url.split("?")[0];
    for (let i = 0; i < 600; i++) {
      const doc = new DOMParser().parseFromString(await r.text(), "application/xml");
      const phase = (doc.getElementsByTagNameNS("*", "phase")[0] || {}).textContent;
      if (phase === "COMPLETED") return;
      if (phase === "ERROR" || phase === "ABORTED") {
        const msg = doc.getElementsByTagNameNS("*", "message")[0];
        throw new Error(msg ? msg.textContent : "the job ended in " + phase);
      }
      r = await api("GET", url + "?WAIT=10");
    }
    throw new Error("the job did not finish");
  }

  const transferXml = (src, dest) => '<vos:transfer xmlns:vos="' + VOS + '" version="2.1">' +
    "<vos:target>" + esc(vosUri(src)) + "</vos:target><vos:direction>" + esc(vosUri(dest)) +
    "</vos:direction><vos:keepBytes>false</vos:keepBytes></vos:transfer>";

  async function act(fn) {
    try { await fn(); location.reload(); } catch (e) { showError(e.message); }
  }

  // --- selection -------------------------------------------------------------------
  const rows = () => Array.from(document.querySelectorAll("#listing tbody tr[data-path]"));
  const selected = () => rows().filter((r) => r.querySelector(".select").checked);
  function updateSelection() {
    const none = selected().length === 0;
    for (const id of ["move-selected", "delete-selected", "download-selected"]) {
      const b = document.getElementById(id);
      if (b) b.disabled = none;
    }
  }
  document.getElementById("select-all").addEventListener("change", (e) => {
    rows().forEach((r) => { r.querySelector(".select").checked = e.target.checked; });
    updateSelection();
  });
  document.querySelectorAll("#listing .select").forEach((c) => c.addEventListener("change", updateSelection));

  // --- dialogs ---------------------------------------------------------------------
  let current = null;  // the row a per-row dialog is about
  const open = (id) => document.getElementById(id).showModal();
  document.querySelectorAll("[data-open]").forEach((b) =>
    b.addEventListener("click", () => open(b.dataset.open)));

  const handlers = {
    mkdir: (f) => putNode(join(HERE, f.name.value.trim()), "ContainerNode"),
    link: (f) => putNode(join(HERE, f.name.value.trim()), "LinkNode", {}, f.target.value.trim()),
    rename: (f) => runJob("transfers", transferXml(current.dataset.path,
      join(HERE, f.name.value.trim())), "text/xml"),
    move: async (f) => {
      const dest = f.dest.value.trim().replace(/^\/+|\/+$/g, "");
      for (const r of selected()) await runJob("transfers", transferXml(r.dataset.path, dest), "text/xml");
    },
    delete: async () => {
      for (const r of selected()) await api("DELETE", "/" + SVC + "/nodes/" + encPath(r.dataset.path));
    },
    perms: async (f) => {
      const props = {};
      props[CORE + "ispublic"] = f.public.checked ? "true" : "false";
      props[CORE + "groupread"] = f.readgroup.value.trim() || null;
      props[CORE + "groupwrite"] = f.writegroup.value.trim() || null;
      const p = current.dataset.path, type = current.dataset.type;
      if (f.recursive.checked && type === "ContainerNode") {
        await runJob("async-setprops", nodeXml(p, type, props), "text/xml");
      } else {
        await setProps(p, type, props);
      }
    },
  };
  document.querySelectorAll("dialog form[data-do]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (e.submitter && e.submitter.value === "cancel") return;
      e.preventDefault();
      form.closest("dialog").close();
      act(() => handlers[form.dataset.do](form.elements));
    });
  });

  const moveButton = document.getElementById("move-selected");
  if (moveButton) moveButton.addEventListener("click", () => {
    document.getElementById("move-dest").value = HERE;
    open("dlg-move");
  });
  const deleteButton = document.getElementById("delete-selected");
  if (deleteButton) deleteButton.addEventListener("click", () => {
    const list = document.getElementById("delete-list");
    list.replaceChildren(...selected().map((r) => {
      const li = document.createElement("li");
      li.textContent = r.dataset.name;
      return li;
    }));
    open("dlg-delete");
  });

  document.getElementById("download-form").addEventListener("submit", (e) => {
    const form = e.target;
    form.querySelectorAll('input[name="path"]').forEach((i) => i.remove());
    for (const r of selected()) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "path"; input.value = r.dataset.path;
      form.appendChild(input);
    }
  });

  // --- per-row actions -------------------------------------------------------------
  const rowActions = {
    rename: (r) => { document.getElementById("rename-name").value = r.dataset.name; open("dlg-rename"); },
    perms: (r) => {
      document.getElementById("perms-name").textContent = r.dataset.name;
      document.getElementById("perms-public").checked = r.dataset.public === "true";
      document.getElementById("perms-read").value = r.dataset.readgroup;
      document.getElementById("perms-write").value = r.dataset.writegroup;
      document.getElementById("perms-recursive").checked = false;
      document.getElementById("perms-recursive-label").hidden = r.dataset.type !== "ContainerNode";
      open("dlg-perms");
    },
    lock: (r) => act(() => setProps(r.dataset.path, r.dataset.type,
      { [CADC + "islocked"]: r.dataset.locked === "true" ? null : "true" })),
    versions: (r) => showVersions(r).catch((e) => showError(e.message)),
    "restore-snapshot": (r) => act(() => api("POST", "/" + SVC + "/snapshots/" + encPath(r.dataset.path))),
  };
  document.querySelectorAll("#listing .act").forEach((b) => b.addEventListener("click", () => {
    current = b.closest("tr");
    rowActions[b.dataset.act](current);
  }));

  async function showVersions(row) {
    const path = row.dataset.path;
    const data = await (await api("GET", "/vault/versions/" + encPath(path))).json();
    document.getElementById("versions-name").textContent = row.dataset.name;
    const body = document.querySelector("#versions tbody");
    body.replaceChildren(...data.versions.slice().reverse().map((v) => {
      const tr = document.createElement("tr");
      const cells = [String(v.version), v.length + " B", v.replaced.replace("T", " ").slice(0, 19)];
      for (const text of cells) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
      const td = document.createElement("td");
      const get = document.createElement("a");
      get.href = "/vault/files/" + encPath(path) + "?version=" + v.version;
      get.textContent = "Download"; get.setAttribute("download", "");
      const restore = document.createElement("button");
      restore.type = "button"; restore.textContent = "Restore"; restore.className = "restore-version";
      restore.dataset.version = v.version;
      restore.addEventListener("click", () => act(() =>
        api("POST", "/vault/versions/" + encPath(path) + "?restore=" + v.version)));
      td.append(get, " ", restore);
      tr.appendChild(td);
      return tr;
    }));
    open("dlg-versions");
  }

  // --- uploads: each file PUT straight to the data endpoint, with its own progress ----
  const uploads = document.getElementById("uploads");
  function progressItem(name) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = 0;
    const state = document.createElement("span");
    state.className = "state";
    li.append(label, " ", bar, " ", state);
    uploads.appendChild(li);
    return { li, bar, state };
  }

  function putFile(path, file, item) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", "/" + SVC + "/files/" + encPath(path));
      xhr.setRequestHeader("X-CSRF-Token", CSRF);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) item.bar.value = e.loaded / e.total; };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) { item.bar.value = 1; item.state.textContent = "done"; resolve(); }
        else { item.state.textContent = xhr.responseText.trim(); reject(new Error(file.name + ": " + xhr.responseText.trim())); }
      };
      xhr.onerror = () => { item.state.textContent = "failed"; reject(new Error(file.name + ": upload failed")); };
      xhr.send(file);
    });
  }

  async function ensureFolders(relPaths) {
    const folders = new Set();
    for (const rel of relPaths) {
      const parts = rel.split("/").slice(0, -1);
      for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join("/"));
    }
    for (const folder of Array.from(folders).sort((a, b) => a.split("/").length - b.split("/").length)) {
      try { await putNode(join(HERE, folder), "ContainerNode"); }
      catch (e) { if (!e.message.startsWith("DuplicateNode")) throw e; }
    }
  }

  async function uploadAll(entries) {  // [{rel, file}]
    errorBox.hidden = true;
    const items = entries.map((e) => progressItem(e.rel));
    const failures = [];
    try { await ensureFolders(entries.map((e) => e.rel)); }
    catch (e) { showError(e.message); return; }
    for (let i = 0; i < entries.length; i++) {
      try { await putFile(join(HERE, entries[i].rel), entries[i].file, items[i]); }
      catch (e) { failures.push(e.message); }
    }
    if (failures.length) showError(failures.join("\n"));
    else location.reload();
  }

  const pick = (input, relative) => input && input.addEventListener("change", () => {
    const files = Array.from(input.files);
    uploadAll(files.map((f) => ({ rel: relative ? (f.webkitRelativePath || f.name) : f.name, file: f })));
  });
  pick(document.getElementById("upload-files"), false);
  pick(document.getElementById("upload-folder"), true);

  // drag and drop of files and folders (folders walked through the entries API)
  function walkEntry(entry, prefix, out) {
    return new Promise((resolve) => {
      if (entry.isFile) {
        entry.file((f) => { out.push({ rel: prefix + f.name, file: f }); resolve(); }, () => resolve());
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        const readMore = () => reader.readEntries(async (batch) => {
          if (!batch.length) return resolve();
          for (const child of batch) await walkEntry(child, prefix + entry.name + "/", out);
          readMore();
        }, () => resolve());
        readMore();
      } else resolve();
    });
  }
  const zone = document.getElementById("dropzone");
  if (ctx.writable === "true") {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const out = [];
      for (const item of Array.from(e.dataTransfer.items)) {
        const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
        if (entry) await walkEntry(entry, "", out);
        else if (item.kind === "file") out.push({ rel: item.getAsFile().name, file: item.getAsFile() });
      }
      if (out.length) uploadAll(out);
    });
  }
})();
