"""arcfs without a mount: the logic class driven directly against a real server, the
read-ahead worker over an in-memory source, the caches and the mount helper's arguments."""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from arcfs.cache import TTLCache
from arcfs.cli import helper_argv
from arcfs.logic import ArcFS, Options
from arcfs.properties import date_ns
from arcfs.reader import RangeReader
from vosclient.client import Client

from .clock import ManualClock


@pytest.fixture
def fs(sqlite_server, tmp_path):
    client = Client(url=sqlite_server.url, token=sqlite_server.tokens["alice"], verify=False,
                    retries=1, timeout=5)
    fs = ArcFS(client, Options(service="arc", root="home/alice", mountpoint="/m",
                               cache_dir=str(tmp_path), attr_ttl=30, dir_ttl=30))
    base = f"/u-{uuid.uuid4().hex[:8]}"
    fs.mkdir(base)
    yield fs, base
    fs.close()
    client.close()


def test_statfs_counts_a_file_uploaded_since_the_folder_was_cached(fs, sqlite_server):
    """A file stops counting as pending once stored; the folder's usage is asked afresh,
    since its cached size predates the upload (df dipped by the file's size until the
    cache expired; here it would stay 30 s)."""
    fs, base = fs
    result = sqlite_server.vospace("quota", "set", f"arc:home/alice{base}", "10M")
    assert result.returncode == 0, result.stderr
    used = lambda: (10 << 20) - fs.statfs(base)["f_bavail"] * 4096  # noqa: E731
    assert used() < 4096                                        # the folder, cached empty
    fh = fs.create(f"{base}/f", 0o644, os.O_WRONLY | os.O_CREAT)
    fs.write(fh, b"x" * 1_000_000, 0)
    assert used() >= 1_000_000 - 4096                           # pending here
    fs.fsync(fh)
    fs.release(fh)
    assert used() >= 1_000_000 - 4096                           # stored


def raises(code, fn, *args):
    with pytest.raises(OSError) as info:
        fn(*args)
    assert info.value.errno == code


def test_write_read_and_attributes(fs):
    fs, base = fs
    fh = fs.create(f"{base}/a.txt", 0o644, os.O_WRONLY | os.O_CREAT)
    assert fs.write(fh, b"hello", 0) == 5
    assert fs.getattr(f"{base}/a.txt")["st_size"] == 5         # from the spool
    assert "a.txt" in fs.readdir(base)
    assert fs.listed_stat(f"{base}/a.txt")["st_size"] == 5     # from the spool
    fs.flush(fh)                                                  # close: upload queued
    fs.fsync(fh)                                                  # ... and awaited
    fs.release(fh)
    assert f"{base}/a.txt" not in fs.spools
    attrs = fs.getattr(f"{base}/a.txt")
    assert attrs["st_size"] == 5 and attrs["st_mode"] & 0o170000 == 0o100000
    rh, keep = fs.open(f"{base}/a.txt", os.O_RDONLY)
    assert fs.read(rh, 100, 0) == b"hello" and not keep
    fs.release(rh)
    rh, keep = fs.open(f"{base}/a.txt", os.O_RDONLY)
    assert keep                                                   # same ETag: keep pages
    fs.release(rh)
    wh, _ = fs.open(f"{base}/a.txt", os.O_RDWR)
    fs.write(wh, b"J", 0)
    assert fs.read(wh, 10, 0) == b"Jello"
    fs.fsync(wh)
    fs.release(wh)
    assert fs.client.read_bytes(fs.remote(f"{base}/a.txt")) == b"Jello"


def test_errors_map_to_errno(fs):
    fs, base = fs
    raises(errno.ENOENT, fs.getattr, f"{base}/missing")
    raises(errno.ENOENT, fs.open, f"{base}/missing", os.O_RDONLY)
    fs.mkdir(f"{base}/d")
    raises(errno.EEXIST, fs.mkdir, f"{base}/d")
    fs.mkdir(f"{base}/d/e")
    raises(errno.ENOTEMPTY, fs.rmdir, f"{base}/d")
    raises(errno.EISDIR, fs.unlink, f"{base}/d")
    raises(errno.EINVAL, fs.rename, f"{base}/d", f"{base}/d/e/f")
    raises(errno.EINVAL, fs.readlink, f"{base}/d")
    raises(errno.ENODATA, fs.getxattr, f"{base}/d", "user.none")
    raises(errno.EPERM, fs.setxattr, f"{base}/d", "user.length", b"1")
    raises(errno.ENOTSUP, fs.getxattr, f"{base}/d", "trusted.x")
    raises(errno.ENAMETOOLONG, fs.getattr, f"{base}/{'x' * 256}")
    other = ArcFS(fs.client, Options(service="arc", root="home/bob", cache_dir=fs.cache_dir))
    raises(errno.EACCES, other.readdir, "/")


def test_rename_symlink_chmod_xattr_utimens(fs):
    fs, base = fs
    fs.mkdir(f"{base}/src")
    fh = fs.create(f"{base}/src/f", 0o644, os.O_WRONLY)
    fs.write(fh, b"x", 0)
    fs.release(fh)                         # release without flush still uploads
    fs.rename(f"{base}/src", f"{base}/dst")
    assert fs.readdir(f"{base}/dst") == [".", "..", "f"]
    raises(errno.ENOENT, fs.getattr, f"{base}/src")
    fs.symlink(f"{base}/ln", "dst/f")
    assert fs.readlink(f"{base}/ln") == "dst/f"
    fs.symlink(f"{base}/abs", "/m/elsewhere")
    assert fs.readlink(f"{base}/abs") == "../elsewhere"      # relative to the link
    fs.chmod(f"{base}/dst/f", 0o604)
    assert fs.node(f"{base}/dst/f").ispublic
    assert fs.getattr(f"{base}/dst/f")["st_mode"] & 0o777 == 0o604
    fs.setxattr(f"{base}/dst/f", "user.k", b"v")
    assert fs.listxattr(f"{base}/dst/f") == ["user.k"]
    fs.utimens(f"{base}/dst/f", (0, 1_234_000_000_000))
    assert fs.getattr(f"{base}/dst/f")["st_mtime"] == 1_234_000_000_000
    stats = fs.statfs(base)
    assert stats["f_bsize"] == 4096 and stats["f_bavail"] <= stats["f_blocks"]


def test_unreachable_server_is_eio_quickly(tmp_path):
    client = Client(url="https://127.0.0.1:9", token="t", verify=False, retries=1, timeout=2)
    fs = ArcFS(client, Options(cache_dir=str(tmp_path)))
    started = time.monotonic()
    raises(errno.EIO, fs.getattr, "/x")
    raises(errno.EIO, fs.readdir, "/")
    assert time.monotonic() - started < 10


def test_date_ns():
    assert date_ns("2026-01-02T03:04:05.678") == (1767323045 * 10**9 + 678 * 10**6)
    assert date_ns(None) == 0 and date_ns("garbage") == 0


class Source:
    """An in-memory file served as ranges, counting requests."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int):
        self.ranges.append((start, end))
        import io
        stream = io.BytesIO(self.data[start:end])
        stream.close = lambda reuse=True: None   # the reader closes what it opened
        return stream


def test_reader_window_grows_when_sequential_and_resets_on_seek():
    data = os.urandom(40 << 20)
    source = Source(data)
    reader = RangeReader(source, len(data))
    out = bytearray()
    for offset in range(0, len(data), 128 << 10):
        out += reader.read(offset, 128 << 10)
    assert bytes(out) == data
    sizes = [e - s for s, e in source.ranges]
    assert sizes[0] == 1 << 20 and max(sizes) >= 16 << 20       # the window doubled
    assert len(source.ranges) < 10
    source.ranges.clear()
    assert reader.read(5, 10) == data[5:15]                      # a seek far back
    assert source.ranges and source.ranges[0] == (5, 5 + (1 << 20))
    reader.close()


def test_reader_concurrent_out_of_order_reads():
    data = os.urandom(8 << 20)
    reader = RangeReader(Source(data), len(data))
    results: dict[int, bytes] = {}

    def read(offset):
        results[offset] = reader.read(offset, 128 << 10)

    for batch in range(0, len(data), 1 << 20):
        threads = [threading.Thread(target=read, args=(batch + o,))
                   for o in reversed(range(0, 1 << 20, 128 << 10))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert b"".join(results[o] for o in sorted(results)) == data
    assert reader.read(len(data), 10) == b""


def test_reader_never_answers_short_before_the_end():
    """Reads far apart at the same time (the kernel's readahead of two regions, or a
    read_ahead_kb raised past the reader's slack) restart the worker at each other's
    offsets: each read still gets all its bytes (a short answer is EOF to the kernel,
    which then caches the file as cut there)."""
    data = os.urandom(72 << 20)
    reader = RangeReader(Source(data), len(data))
    results: dict[int, bytes] = {}

    def read(offset):
        results[offset] = reader.read(offset, 128 << 10)

    for step in range(0, 4 << 20, 128 << 10):
        threads = [threading.Thread(target=read, args=(region + step,))
                   for region in range(0, len(data), 24 << 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {o: len(r) for o, r in results.items() if len(r) != 128 << 10} == {}
    assert all(results[o] == data[o:o + (128 << 10)] for o in results)
    reader.close()


class SlowSource(Source):
    """A Source whose streams deliver a MiB at a time with a pause, as a network does, so
    that reads issued together get ahead of the reader's worker."""

    def __call__(self, start: int, end: int):
        stream = super().__call__(start, end)
        read = stream.read

        def slow_read(size=-1):
            time.sleep(0.002)
            return read(min(size, 1 << 20) if size >= 0 else 1 << 20)
        stream.read = slow_read
        return stream


def test_reads_issued_ahead_of_the_worker_wait_for_it():
    """`cat` and `cp` ask for sequential read-ahead (fadvise), which doubles the mount's
    window: the kernel then had up to 7 MiB of 1 MiB reads in flight past what the worker
    had buffered, and each restarted the worker or fetched its bytes alone (measured: half
    the reads of a `cat` of 1 GiB went out as requests of their own, at half dd's speed)."""
    data = os.urandom(64 << 20)
    source = SlowSource(data)
    reader = RangeReader(source, len(data))
    with ThreadPoolExecutor(max_workers=8) as kernel:     # 8 reads in flight, in order
        pieces = list(kernel.map(lambda offset: reader.read(offset, 1 << 20),
                                 range(0, len(data), 1 << 20)))
    reader.close()
    assert b"".join(pieces) == data
    assert len(source.ranges) <= 8, source.ranges      # the worker's doubling windows only


def test_ttl_cache_expiry_and_tree_invalidation():
    clock = ManualClock()
    cache: TTLCache[int] = TTLCache(0.2, clock=clock)
    cache.put("/a", 1)
    cache.put("/a/b", 2)
    cache.put("/ab", 3)
    cache.pop_tree("/a")
    assert cache.get("/a", None) is None and cache.get("/a/b", None) is None
    assert cache.get("/ab") == 3
    cache.update("/ab", lambda v: v + 1)
    assert cache.get("/ab") == 4
    clock.advance(0.19)
    assert cache.get("/ab") == 4
    clock.advance(0.02)
    assert cache.get("/ab", None) is None


def test_mount_helper_arguments():
    assert helper_argv(["https://h:1", "/arc", "-o",
                        "service=vault,token_file=/t,_netdev,rw,attr_ttl=5,insecure"]) == [
        "mount", "https://h:1", "/arc", "--service", "vault", "--token-file", "/t",
        "--attr-ttl", "5", "--insecure"]
    with pytest.raises(SystemExit):
        helper_argv(["only-one"])
    with pytest.raises(SystemExit):
        helper_argv(["u", "/m", "-o", "service"])


def test_streaming_upload_and_its_fallbacks(fs):
    """A file written from offset 0 is uploaded while written once it is big enough; a
    seek back, a truncate or an unlink abort that upload and the result is still exact."""
    fs, base = fs
    mib = 1 << 20
    cases = {"sequential": [(0, b"a" * 3000), (3000, b"b" * mib), (3000 + mib, b"c" * 5)],
             "seek back": [(0, b"a" * mib), (10, b"XY"), (mib, b"tail")],
             "hole": [(0, b"a" * mib), (mib + 100, b"z")],
             "small": [(0, b"a" * 10), (10, b"b")]}
    for name, writes in cases.items():
        path = f"{base}/{name.replace(' ', '_')}"
        fh = fs.create(path, 0o600, os.O_WRONLY)
        ref = bytearray()
        for offset, data in writes:
            fs.write(fh, data, offset)
            ref.extend(b"\0" * max(0, offset - len(ref)))
            ref[offset:offset + len(data)] = data
        assert (fs.handles.get(fh).spool.stream is None) == (name == "small"), name
        fs.fsync(fh)
        fs.release(fh)
        assert fs.client.read_bytes(fs.remote(path)) == bytes(ref), name
    fh = fs.create(f"{base}/cut", 0o600, os.O_WRONLY)
    fs.write(fh, b"0123456789" * mib, 0)
    fs.truncate(f"{base}/cut", 4)
    fs.fsync(fh)
    fs.release(fh)
    assert fs.client.read_bytes(fs.remote(f"{base}/cut")) == b"0123"
    fh = fs.create(f"{base}/gone", 0o600, os.O_WRONLY)
    fs.write(fh, b"data" * mib, 0)
    fs.unlink(f"{base}/gone")
    fs.flush(fh)
    fs.release(fh)  # the aborted upload's thread has ended: it never sent the last chunk
    assert not fs.client.exists(fs.remote(f"{base}/gone"))


def test_big_directory_expired_listing_is_refetched_whole(sqlite_server, tmp_path):
    """ls -l of a big directory outlasting the TTL: lookups re-list it once instead of
    fetching each child (one request per child was 100x slower for 10,000 entries)."""
    name = f"big-{uuid.uuid4().hex[:8]}"
    on_disk = os.path.join(sqlite_server.data_dir, "arc", "home", "alice", name)
    os.mkdir(on_disk)
    for i in range(300):
        with open(os.path.join(on_disk, f"f{i:03d}"), "wb") as fh:
            fh.write(b"x" * i)
    client = Client(url=sqlite_server.url, token=sqlite_server.tokens["alice"], verify=False)
    clock = ManualClock()
    fs = ArcFS(client, Options(root="home/alice", cache_dir=str(tmp_path), attr_ttl=0.2,
                               dir_ttl=0.2, clock=clock))
    assert len(fs.readdir(f"/{name}")) == 302
    clock.advance(0.3)
    lookups = []
    original = client.get_node
    client.get_node = lambda *a, **k: lookups.append(a) or original(*a, **k)
    sizes = [fs.getattr(f"/{name}/f{i:03d}")["st_size"] for i in range(0, 300, 7)]
    assert sizes == list(range(0, 300, 7))
    assert lookups == []
    raises(errno.ENOENT, fs.getattr, f"/{name}/absent")
    fs.close()
    client.close()


def test_writes_stream_after_the_flush_of_a_dup2_close(fs):
    """dd and shell redirections open the file, dup2 it and close the first descriptor:
    the kernel flushes (the empty file is created on the server) before the first write.
    The sequential writes that follow must still stream to the server while written."""
    fs, base = fs
    path = f"{base}/redirected.bin"
    fh = fs.create(path, 0o644, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    fs.flush(fh)                                   # the close of the pre-dup2 descriptor
    fs.fsync(fh)                                   # (its upload awaited here)
    assert fs.client.read_bytes(fs.remote(path)) == b""
    data = os.urandom(3 << 20)
    for at in range(0, len(data), 1 << 20):
        fs.write(fh, data[at:at + (1 << 20)], at)
    assert fs.handles.get(fh).spool.stream is not None  # sending while written
    fs.fsync(fh)
    fs.release(fh)
    assert fs.client.read_bytes(fs.remote(path)) == data


def test_cache_size_waits_for_queued_uploads_then_enospc(sqlite_server, tmp_path):
    """--cache-size bounds the spooled bytes: a write that would outgrow it waits for the
    queued uploads (whose spools then go), and only then fails with ENOSPC."""
    client = Client(url=sqlite_server.url, token=sqlite_server.tokens["alice"], verify=False,
                    retries=1, timeout=5)
    fs = ArcFS(client, Options(root="home/alice", cache_dir=str(tmp_path), cache_size=100_000))
    base = f"/c-{uuid.uuid4().hex[:8]}"
    fs.mkdir(base)
    first = fs.create(f"{base}/a", 0o600, os.O_WRONLY)
    fs.write(first, b"a" * 60_000, 0)
    fs.flush(first)                       # close: queued; its spool counts until uploaded
    fs.release(first)
    second = fs.create(f"{base}/b", 0o600, os.O_WRONLY)
    fs.write(second, b"b" * 60_000, 0)    # waits for a's upload instead of failing
    assert client.read_bytes(fs.remote(f"{base}/a")) == b"a" * 60_000
    raises(errno.ENOSPC, fs.write, second, b"c" * 50_000, 60_000)   # b alone is too big
    fs.fsync(second)
    fs.release(second)
    assert client.read_bytes(fs.remote(f"{base}/b")) == b"b" * 60_000
    fs.close()
    client.close()


def test_streamed_writes_wait_for_buffers_then_go_through_the_page_cache(tmp_path):
    """A streaming upload sends writes from its few reused buffers (the spool gets them
    with O_DIRECT); while the upload is stuck and all buffers are in flight, a write waits
    a moment and then goes to the spool through the page cache, from where the upload
    reads it back, as it does later writes until a buffer is free. The server gets every
    byte in order either way."""
    from arcfs import upload
    from arcfs.spool import Spool

    gate = threading.Event()
    received = bytearray()

    def send(chunks):
        gate.wait(30)
        for chunk in chunks:
            received.extend(chunk)
        return "md5-of-the-server"

    spool = Spool(str(tmp_path), "/f.bin")
    stream = upload.StreamingUpload(spool.fd, send, "f.bin", spool.pwrite_direct, wait=0.05)
    mib = 1 << 20
    writes = [os.urandom(mib) for _ in range(upload.BUFFERS + 2)] + [b"odd" * 1000,
                                                                      os.urandom(mib)]
    offset = 0
    for data in writes:
        assert ArcFS._stream_write(spool, stream, data, offset) == len(data)
        offset += len(data)
    assert stream.made == upload.BUFFERS        # the rest are read back from the spool
    assert stream.starved                       # (only the first of them waited)
    assert [type(piece) for _, piece in stream.pieces][-2:] == [memoryview, int]
    gate.set()
    assert stream.finish(offset) == (True, "md5-of-the-server")
    assert bytes(received) == b"".join(writes) == spool.pread(offset + 1, 0)
    spool.discard()


def test_small_streamed_writes_fill_a_buffer_before_it_goes(tmp_path):
    """Writes smaller than a buffer (``tar`` writes 10 KiB at a time, ``shutil.copyfile``
    64 KiB) are copied into one buffer until it is full: one piece sent and one spool
    write per MiB, not per write. The bytes still in it count in the spool's size, and a
    read of the spool hands it over first, so it sees them; the next buffer then ends on
    a page boundary, so that the ones after it start on one (O_DIRECT)."""
    from arcfs import upload
    from arcfs.spool import Spool

    sent: list[tuple[int, int]] = []
    received = bytearray()

    def send(chunks):
        for chunk in chunks:
            sent.append((len(received), len(chunk)))
            received.extend(chunk)
        return "md5"

    spool = Spool(str(tmp_path), "/f.bin")
    stream = spool.stream = upload.StreamingUpload(spool.fd, send, "f.bin",
                                                   spool.pwrite_direct)
    piece = 10240
    writes = [os.urandom(piece) for _ in range(400)]          # 3.9 MiB
    whole = b"".join(writes)
    for i, data in enumerate(writes):
        assert ArcFS._stream_write(spool, stream, data, i * piece) == piece
        assert spool.size() == (i + 1) * piece
        if i == 150:                                          # a read meanwhile
            assert spool.pread(len(whole), 0) == whole[:(i + 1) * piece]
    assert spool.pread(len(whole), 0) == whole
    spool.stream = None                                       # as the upload takes it
    assert stream.finish(len(whole)) == (True, "md5")
    assert bytes(received) == whole
    mib, read_at = 1 << 20, 151 * piece
    aligned_from = read_at + mib - read_at % 4096
    assert sent == [(0, mib), (mib, read_at - mib),           # handed over by the read
                    (read_at, aligned_from - read_at),        # to a page boundary
                    (aligned_from, mib), (aligned_from + mib, len(whole) - aligned_from - mib)]
    spool.discard()


def test_direct_spool_writes_fall_back_where_o_direct_is_refused(tmp_path):
    """A write O_DIRECT refuses (EINVAL: here a buffer not aligned in memory; some file
    systems refuse O_DIRECT itself) goes through the page cache, as do later ones."""
    import mmap

    from arcfs.spool import Spool

    spool = Spool(str(tmp_path), "/f")
    buffer = mmap.mmap(-1, 3 * 4096)
    buffer[:] = os.urandom(3 * 4096)
    assert spool.pwrite_direct(memoryview(buffer)[:4096], 0) == 4096
    assert spool.direct >= 0                                  # O_DIRECT taken
    assert spool.pwrite_direct(memoryview(buffer)[1:8193], 4096) == 8192
    assert spool.direct == -1                                 # refused: page cache
    assert spool.pwrite_direct(memoryview(buffer)[:4096], 12288) == 4096
    assert spool.pread(1 << 20, 0) == buffer[:4096] + buffer[1:8193] + buffer[:4096]
    spool.discard()


def test_reopening_a_file_whose_upload_is_finishing_keeps_its_content(fs):
    """Append to, patch and re-create files the moment after their close queued the upload:
    the upload finishing meanwhile must not leave the new handle an empty spool taken for
    a new file (its writes would then replace the content on the server)."""
    fs, base = fs
    expected = {}
    for i in range(60):
        path = f"{base}/r{i}"
        fh = fs.create(path, 0o644, os.O_WRONLY | os.O_CREAT)
        fs.write(fh, b"a" * 100, 0)
        fs.flush(fh)
        fs.release(fh)                                     # upload queued, maybe running
        if i % 3 == 0:
            fh, _ = fs.open(path, os.O_WRONLY | os.O_APPEND)
            fs.write(fh, b"b", 0)
            expected[path] = b"a" * 100 + b"b"
        elif i % 3 == 1:
            fh, _ = fs.open(path, os.O_RDWR)
            fs.write(fh, b"c", 50)
            expected[path] = b"a" * 50 + b"c" + b"a" * 49
        else:
            fh = fs.create(path, 0o644, os.O_WRONLY | os.O_CREAT)   # no O_TRUNC
            expected[path] = b""
        fs.flush(fh)
        fs.fsync(fh)
        fs.release(fh)
    for path, content in expected.items():
        fh, _ = fs.open(path, os.O_RDONLY)
        assert fs.read(fh, 1000, 0) == content, path
        fs.release(fh)
        assert fs.client.get_node(fs.remote(path)).size == len(content), path


def test_a_streamed_write_that_cannot_reach_the_spool_fails_the_file(sqlite_server, tmp_path):
    """Aligned writes of a streamed file reach the local spool behind the writer's back:
    when that fails (here the cache directory, a 4 MiB tmpfs, fills up), the next write,
    the fsync and the close return the error, and nothing of the file is stored."""
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(cache)], check=True)
    client = Client(url=sqlite_server.url, token=sqlite_server.tokens["alice"], verify=False,
                    retries=1, timeout=5)
    fs = ArcFS(client, Options(service="arc", root="home/alice", mountpoint="/m",
                               cache_dir=str(cache), attr_ttl=30, dir_ttl=30))
    try:
        path = f"/full-{uuid.uuid4().hex[:8]}.bin"
        fh = fs.create(path, 0o644, os.O_WRONLY | os.O_CREAT)
        mib = 1 << 20
        with pytest.raises(OSError) as failed:
            for at in range(0, 32 * mib, mib):
                fs.write(fh, os.urandom(mib), at)
        assert failed.value.errno == errno.ENOSPC, failed.value
        assert at < 8 * mib                   # one write after the spool filled, or two
        raises(errno.ENOSPC, fs.fsync, fh)
        fs.release(fh)
        assert not client.exists(fs.remote(path))
    finally:
        fs.close()
        client.close()
        subprocess.run(["umount", str(cache)], check=True)
