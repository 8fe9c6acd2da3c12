"""A contributed session app for the proxy tests, Python's standard library only (it runs in
a sandbox with the host's python3): HTTP and a websocket echo on the unix socket argv[1], or on
127.0.0.1:$PORT when no argument is given.

GET /headers: the request line and headers as JSON; GET /big?n=BYTES: that many bytes,
streamed; POST /echo: the body's length and sha256; GET /cookies: sets a platform-named and
an own cookie; GET /redirect: to /headers; GET /die: the app exits before answering;
/ws: a websocket echoing every message; GET /page?platform=URL: an HTML page whose script
tries what a hostile app would against the platform at URL (read a page with the visitor's
cookies, read the CSRF token from a framed page, launch a session, read cookies) and writes
what it observed as JSON into its #result element.
"""
import asyncio
import base64
import hashlib
import json
import os
import sys
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGE = b"""<!doctype html><html><head><title>probe</title></head><body>
<pre id="result">running</pre><script>
(async () => {
  const platform = new URLSearchParams(location.search).get("platform");
  const seen = {cookies: document.cookie, referrer: document.referrer, address: location.href};
  const attempt = async (name, work) => {
    try { seen[name] = await work(); } catch (e) { seen[name] = "refused: " + e.name; }
  };
  await attempt("own", async () => "read " + (await fetch("headers")).status);
  await attempt("storage", async () => {
    const r = await fetch(platform + "/storage/list", {credentials: "include"});
    return "read " + r.status + " " + (await r.text()).length;
  });
  await attempt("launch", async () => {
    const form = new URLSearchParams({name: "from-the-app", image: "x"});
    const r = await fetch(platform + "/skaha/v1/session",
                          {method: "POST", credentials: "include", body: form});
    return "read " + r.status + " " + await r.text();
  });
  const frame = document.createElement("iframe");
  frame.src = platform + "/science-portal";
  document.body.appendChild(frame);
  await new Promise(done => { frame.onload = done; setTimeout(done, 5000); });
  await attempt("csrf", async () => frame.contentDocument === null ? "no document" :
    "read " + frame.contentDocument.querySelector('meta[name="csrf-token"]').content);
  document.getElementById("result").textContent = JSON.stringify(seen);
})();
</script></body></html>"""


def response(status, headers, body=b""):
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


async def read_frame(reader):
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
    return first & 0x0F, data


def frame(opcode, data):
    n = len(data)
    size = bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, "big") if n < 65536
                                       else bytes([127]) + n.to_bytes(8, "big"))
    return bytes([0x80 | opcode]) + size + data


async def websocket(reader, writer, headers):
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WS_GUID)
                                           .encode()).digest()).decode()
    writer.write(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode())
    while True:
        opcode, data = await read_frame(reader)
        if opcode == 8:
            writer.write(frame(8, data[:2]))
            await writer.drain()
            return
        if opcode in (1, 2):
            writer.write(frame(opcode, data))
            await writer.drain()


async def handle(reader, writer):
    try:
        line = (await reader.readline()).decode().rstrip()
        method, target, _ = line.split(" ", 2)
        headers = {}
        while (h := (await reader.readline()).decode().rstrip()):
            key, _, value = h.partition(":")
            headers[key.strip().lower()] = value.strip()
        url = urlsplit(target)
        if headers.get("upgrade", "").lower() == "websocket":
            await websocket(reader, writer, headers)
            return
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        if url.path == "/die":
            os._exit(3)
        if url.path == "/big":
            n = int(parse_qs(url.query)["n"][0])
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n"
                         f"Content-Type: application/octet-stream\r\n\r\n".encode())
            chunk = b"x" * 65536
            while n > 0:
                writer.write(chunk[:n])
                n -= len(chunk)
                await writer.drain()
        elif url.path == "/echo":
            writer.write(response("200 OK", [], json.dumps(
                {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()))
        elif url.path == "/cookies":
            writer.write(response("200 OK", [("Set-Cookie", "vospace_session=stolen; Path=/"),
                                             ("Set-Cookie", "__Host-vospace_session=stolen; Path=/; Secure"),
                                             ("Set-Cookie", "app=1; Path=/; HttpOnly")]))
        elif url.path == "/page":
            writer.write(response("200 OK", [("Content-Type", "text/html")], PAGE))
        elif url.path == "/redirect":
            writer.write(response("302 Found", [("Location", "/headers")]))
        else:
            writer.write(response("200 OK", [("Content-Type", "application/json")], json.dumps(
                {"method": method, "target": target, "headers": headers,
                 "user": os.getuid()}).encode()))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    if len(sys.argv) > 1:
        server = await asyncio.start_unix_server(handle, sys.argv[1])
    else:
        server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["PORT"]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
