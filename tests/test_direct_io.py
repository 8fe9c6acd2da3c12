"""TempFile's staged O_DIRECT writing (storage/direct_io.py) on the real disk: every size
around the alignment and staging boundaries, written in uneven pieces, reads back exactly."""
from __future__ import annotations

import os
import random

import pytest

from vospace_server.storage import direct_io
from vospace_server.storage.streams import TempFile

STAGE = direct_io.STAGE
SIZES = [0, 1, 4095, 4096, 4097, STAGE - 1, STAGE, STAGE + 1, STAGE + 4096,
         2 * STAGE + 12345, 3 * STAGE]
PIECES = [1, 100, 4096, 65536, 1 << 20, 5 << 20]


@pytest.mark.parametrize("size", SIZES)
def test_every_size_reads_back_exactly(tmp_path, size):
    data = os.urandom(size)
    rng = random.Random(size)
    temp = TempFile(str(tmp_path / "upload.tmp"), str(tmp_path / "final"))
    pos = 0
    while pos < size:
        piece = rng.choice(PIECES)
        temp.write(data[pos:pos + piece])
        pos += piece
    assert temp.sync().st_size == size
    temp.publish()
    assert (tmp_path / "final").read_bytes() == data
    assert not (tmp_path / "upload.tmp").exists()
    # past one staging buffer the bytes went to disk directly (ext4 supports O_DIRECT)
    assert temp._writer._direct is (True if size >= STAGE else None)


def test_discarded_upload_leaves_nothing_and_returns_its_buffer(tmp_path):
    temp = TempFile(str(tmp_path / "upload.tmp"), str(tmp_path / "final"))
    temp.write(os.urandom(STAGE + 10))
    pooled = len(direct_io._pool)
    temp.discard()
    assert list(tmp_path.iterdir()) == []
    assert len(direct_io._pool) == min(pooled + 1, direct_io.POOL_MAX)
