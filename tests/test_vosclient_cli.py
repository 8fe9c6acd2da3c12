"""The vosclient command-line tools against a real server, on vault and arc: every command,
the expected failures (one ERROR:: line, fixed exit status), the progress bar on a
pseudo-terminal, vos-login."""
from __future__ import annotations

import hashlib
import os
import pty
import stat
import subprocess

from .harness import free_port, requests_total
from .vosclient_helpers import OUR_BIN, ok, one_error_line, tools, vault_tools  # noqa: F401
from .waiting import wait_until


def make_tree(root) -> dict[str, bytes]:
    files = {"a.txt": b"alpha\n", "b.fits": os.urandom(70000), "sub/c.txt": b"gamma\n",
             "sub/deep/d.dat": os.urandom(1234), "empty": b""}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_every_command(tools, tmp_path):
    t = tools
    tree = tmp_path / "tree"
    files = make_tree(tree)
    ok(t.ours("vmkdir", "-p", t.remote("x/y/z")))
    ok(t.ours("vcp", str(tree / "a.txt"), t.remote("x/")))
    ok(t.ours("vcp", "-r", str(tree), t.remote()))
    listing = ok(t.ours("vls", t.remote("tree"))).stdout.split()
    assert listing == ["a.txt", "b.fits", "empty", "sub"]
    long = ok(t.ours("vls", "-l", t.remote("tree"))).stdout.splitlines()
    assert long[1].startswith("-rw-------  alice ") and long[1].endswith(" b.fits")
    assert " 70000 " in long[1] and long[3].startswith("drw-------")
    recursive = ok(t.ours("vls", "-R", t.remote("tree"))).stdout
    assert f"{t.base}/tree/sub/deep:\nd.dat" in recursive
    assert ok(t.ours("vcat", t.remote("tree/sub/c.txt"))).stdout == "gamma\n"

    down = tmp_path / "down"
    down.mkdir()
    ok(t.ours("vcp", t.remote("tree"), str(down)))
    for rel, data in files.items():
        assert (down / "tree" / rel).read_bytes() == data
    again = ok(t.ours("vcp", "-v", t.remote("tree"), str(down)))
    assert again.stderr.count("INFO skipped") == len(files)      # downloads skip too
    up_again = ok(t.ours("vcp", "-v", str(tree), t.remote()))
    assert up_again.stderr.count("INFO skipped") == len(files)

    ok(t.ours("vtag", t.remote("tree/a.txt"), "colour=blue"))
    assert ok(t.ours("vtag", t.remote("tree/a.txt"), "colour")).stdout.strip() == "'blue'"
    assert "'colour': 'blue'" in ok(t.ours("vtag", t.remote("tree/a.txt"))).stdout
    ok(t.ours("vtag", t.remote("tree/a.txt"), "colour", "--remove"))
    assert ok(t.ours("vtag", t.remote("tree/a.txt"), "colour")).stdout.strip() == "None"

    ok(t.ours("vchmod", "o+r", t.remote("tree/a.txt")))
    assert ok(t.ours("vls", "-l", t.remote("tree/a.txt"))).stdout.startswith("-rw----r--")
    ok(t.ours("vlock", "--lock", t.remote("tree/a.txt")))
    assert t.ours("vlock", t.remote("tree/a.txt")).returncode == 0
    assert "LOCKED" in ok(t.ours("vls", "-l", t.remote("tree/a.txt"))).stdout
    locked = t.ours("vrm", t.remote("tree/a.txt"))
    assert locked.returncode == 16 and "vlock --unlock" in one_error_line(locked)
    ok(t.ours("vlock", "--unlock", t.remote("tree/a.txt")))
    assert t.ours("vlock", t.remote("tree/a.txt")).returncode == 1

    ok(t.ours("vln", t.remote("tree/b.fits"), t.remote("link")))
    assert " -> vos://" in ok(t.ours("vls", "-l", t.remote("link"))).stdout
    ok(t.ours("vmv", t.remote("tree/sub"), t.remote("x")))
    assert ok(t.ours("vls", t.remote("x"))).stdout.split() == ["a.txt", "sub", "y"]
    ok(t.ours("vcp", t.remote("x/sub/c.txt"), t.remote("copied.txt")))
    assert ok(t.ours("vcat", t.remote("copied.txt"))).stdout == "gamma\n"

    container = t.ours("vrm", t.remote("x"))
    assert container.returncode == 21 and "vrmdir" in one_error_line(container)
    ok(t.ours("vrm", t.remote("tree/*.fits"), t.remote("tree/a*")))
    assert ok(t.ours("vls", t.remote("tree"))).stdout.split() == ["empty"]
    ok(t.ours("vrmdir", t.remote("x")))
    assert t.ours("vls", t.remote("x")).returncode == 2


def test_vsync_both_directions(tools, tmp_path):
    t = tools
    tree = tmp_path / "tree"
    files = make_tree(tree)
    ok(t.ours("vsync", "-r", str(tree), t.remote()))
    (tree / "a.txt").write_bytes(b"ALPHA\n")                # same size, new content
    second = ok(t.ours("vsync", "-v", "-r", "--exclude", "*.dat", str(tree), t.remote()))
    assert second.stderr.count("INFO uploaded") == 1 and "a.txt" in second.stderr
    assert ok(t.ours("vcat", t.remote("tree/a.txt"))).stdout == "ALPHA\n"
    back = tmp_path / "back"
    back.mkdir()
    ok(t.ours("vsync", "-r", "--include", "*.txt", t.remote("tree"), str(back)))
    got = sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file())
    assert got == ["tree/a.txt", "tree/sub/c.txt"]
    assert (back / "tree/sub/c.txt").read_bytes() == files["sub/c.txt"]


def test_failures_are_one_line_with_fixed_status(tools, tmp_path):
    t = tools
    for args in (("vls", t.remote("missing")), ("vcat", t.remote("missing")),
                 ("vrm", t.remote("missing")), ("vcp", t.remote("missing"), str(tmp_path)),
                 ("vmv", t.remote("missing"), t.remote("other"))):
        r = t.ours(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "missing" in one_error_line(r)
    other = t.svc.home("bob")
    denied = t.ours("vmkdir", f"{t.remote()[:4]}{other}/intrude")
    assert denied.returncode == 13 and "permission" in one_error_line(denied).lower()
    assert t.ours("vls", f"{t.remote()[:4]}{other}").returncode == 13
    exists = t.ours("vmkdir", t.remote())
    assert exists.returncode == 17
    (tmp_path / "one").write_text("1")
    several = t.ours("vcp", str(tmp_path / "one"), str(tmp_path / "one"), t.remote("nodir"))
    assert several.returncode == 20 and "existing container" in one_error_line(several)
    bad = t.ours("vls", "/local/path")
    assert bad.returncode == 22 and "vos:path" in one_error_line(bad)
    env = dict(t.env(), LOCAL_VOSPACE_WEBSERVICE=f"127.0.0.1:{free_port()}")
    down = t.ours("vls", t.remote(), env=env)
    assert down.returncode == 101 and "cannot reach" in one_error_line(down)
    with_debug = t.ours("vls", "-d", t.remote("missing"))
    assert with_debug.returncode == 2 and "Traceback" in with_debug.stderr
    help_text = ok(t.ours("vcp", "--help")).stdout
    assert "exit status:" in help_text and "101 the service cannot be reached" in help_text


def test_big_download_from_the_data_port_and_refused_in_one_line(tools, tmp_path):
    """vcp fetches a file of NEGOTIATE_FROM bytes from the data port (one pre-authorized
    GET, no /files GET) with its MD5 checked; another user, who may not read it, gets no
    URL and one ERROR:: line with the permission status, and no local file."""
    from vosclient.transfer import NEGOTIATE_FROM
    t = tools
    data = os.urandom(NEGOTIATE_FROM + 11)
    (tmp_path / "big.bin").write_bytes(data)
    ok(t.ours("vcp", str(tmp_path / "big.bin"), t.remote("big.bin")))
    counted = lambda endpoint: requests_total(t.svc.server, t.svc.name, endpoint)  # noqa: E731
    files, preauth = counted("files"), counted("preauth")
    ok(t.ours("vcp", t.remote("big.bin"), str(tmp_path / "back.bin")))
    assert (counted("files"), counted("preauth")) == (files, preauth + 1)
    assert (tmp_path / "back.bin").read_bytes() == data
    denied = t.ours("vcp", t.remote("big.bin"), str(tmp_path / "bob.bin"), user="bob")
    assert denied.returncode == 13 and "permission" in one_error_line(denied).lower()
    assert not list(tmp_path.glob("bob.bin*"))
    assert counted("preauth") == preauth + 1


def test_partial_failure_summary(vault_tools, tmp_path):
    t = vault_tools
    tree = tmp_path / "tree"
    make_tree(tree)
    ok(t.ours("vmkdir", "-p", t.remote("tree/a.txt")))      # a container where a file goes
    r = t.ours("vcp", str(tree), t.remote())
    assert r.returncode == 1
    assert "1 of 5 transfers failed" in r.stderr and "a.txt" in r.stderr
    assert "Traceback" not in r.stderr
    assert ok(t.ours("vcat", t.remote("tree/sub/c.txt"))).stdout == "gamma\n"


def run_on_pty(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stderr (and stdout) on a pseudo-terminal; return (status, what it drew)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_bar_only_on_a_terminal(vault_tools, tmp_path):
    t = vault_tools
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(6 * 1024 * 1024))
    argv = [str(OUR_BIN / "vcp"), "-k", "--token", t.svc.server.tokens["alice"], str(data),
            t.remote("onpty.bin")]
    status, drawn = run_on_pty(argv, t.env())
    assert status == 0
    assert "100%" in drawn and "6.00M" in drawn and "/s" in drawn      # size, rate
    plain = ok(t.ours("vcp", "--no-skip", str(data), t.remote("plain.bin")))
    assert plain.stderr == "" and plain.stdout == ""
    digest = hashlib.md5(data.read_bytes()).hexdigest()
    assert digest in ok(t.ours("vtag", t.remote("plain.bin"), "MD5")).stdout


def test_vos_login_stores_settings_mode_0600(vault_tools):
    t = vault_tools
    env = {"PATH": os.environ.get("PATH", ""), "HOME": t.home}
    login = subprocess.run([str(OUR_BIN / "vos-login"), "--url", t.svc.server.url, "-k"],
                           input=t.svc.server.tokens["alice"] + "\n", env=env,
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    config = os.path.join(t.home, ".config", "vosclient", "config.toml")
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    listed = subprocess.run([str(OUR_BIN / "vls"), t.remote()], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout == ""
    refused = subprocess.run([str(OUR_BIN / "vos-login"), "--url", t.svc.server.url, "-k",
                              "--token", "vst_wrong"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 13 and "refused" in refused.stderr
    overridden = subprocess.run([str(OUR_BIN / "vls"), t.remote()],
                                env=dict(env, VOSPACE_TOKEN="vst_wrong"), capture_output=True,
                                text=True, timeout=60)
    assert overridden.returncode == 13          # the environment wins over the file


def test_refused_token_falls_back_to_anonymous_for_public_data(vault_tools, tmp_path):
    t = vault_tools
    from vosclient import Client
    top = f"pub-{os.urandom(4).hex()}"
    with Client(url=t.svc.server.url, token=t.svc.server.tokens["admin"], verify=False) as c:
        c.mkdir(f"vos:{top}")
        c.write_bytes(f"vos:{top}/open.txt", b"for everyone\n")
        c.set_props(f"vos:{top}", {"ispublic": "true"})
        c.set_props(f"vos:{top}/open.txt", {"ispublic": "true"})
    stale = t.env()
    r = subprocess.run([str(OUR_BIN / "vcat"), "-k", "--token", "vst_expired", f"vos:{top}/open.txt"],
                       env=stale, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "for everyone\n"
    assert "continuing anonymously" in r.stderr and "vos-login" in r.stderr
    w = subprocess.run([str(OUR_BIN / "vmkdir"), "-k", "--token", "vst_expired", f"vos:{top}/x"],
                       env=stale, capture_output=True, text=True, timeout=60)
    assert w.returncode == 13 and "vos-login" in one_error_line(w)


def test_interrupted_download_resumes(vault_tools, tmp_path):
    """Ctrl-C exits 130 at once, keeping ``<file>.part``; running again finishes the file
    from where it stopped (Range request) and verifies the MD5."""
    import signal
    t = vault_tools
    data = os.urandom(48 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    ok(t.ours("vcp", str(tmp_path / "big.bin"), t.remote("big.bin")))
    dest = tmp_path / "got.bin"
    part = tmp_path / "got.bin.part"
    argv = [str(OUR_BIN / "vcp"), "-k", "--token", t.svc.server.tokens["alice"],
            t.remote("big.bin"), str(dest)]
    proc = subprocess.Popen(argv, env=t.env(), stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until(lambda: (part.exists() and part.stat().st_size > 0) or proc.poll() is not None,
               60, "vcp to start writing", interval=0.005)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert part.exists() and not dest.exists()
    ok(t.ours("vcp", t.remote("big.bin"), str(dest)))
    assert dest.read_bytes() == data and not part.exists()
