"""Inside a local session's sandbox: run an app that serves HTTP on ``$PORT`` and bridge the
session's unix socket (what the session proxy connects to) to it.

Usage: ``python3 port_bridge.py SOCKET PORT -- COMMAND...`` (the runner sets ``PORT``). Standard library only: it runs
with the host's python3 as the session's user, in the sandbox's own network namespace (so
``127.0.0.1:$PORT`` is this session's alone). The socket is made only once the app accepts
connections, so the session turns Running when its app answers; the bridge exits with the
app's status when the app ends.
"""
import asyncio
import subprocess
import sys

POLL = 0.1


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def bridge(port: int, client_r: asyncio.StreamReader,
                 client_w: asyncio.StreamWriter) -> None:
    try:
        app_r, app_w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, app_w), pipe(app_r, client_w))


async def app_listens(port: int, app: subprocess.Popen) -> bool:
    while app.poll() is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(POLL)
    return False


async def main(socket_path: str, port: int, command: list[str]) -> int:
    app = subprocess.Popen(command)
    if await app_listens(port, app):
        server = await asyncio.start_unix_server(
            lambda r, w: bridge(port, r, w), socket_path)
        async with server:
            while app.poll() is None:
                await asyncio.sleep(POLL * 5)
    return app.wait()


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit("usage: port_bridge.py SOCKET PORT -- COMMAND...")
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[4:])))
