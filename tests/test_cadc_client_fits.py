"""FITS cutouts and headers on vault with the real CADC client (``vcp``), checked against
astropy's own reading of the same test files (written here with astropy).

The client sends SODA parameters (``SUB``, ``CIRCLE``, ``META``) with the data URL its vault
redirect gives; results are compared pixel by pixel with astropy's ``section`` and
``Cutout2D`` (a rotated WCS included) and header by header for ``vcp --head``.
"""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from .test_cadc_client_nodes import CadcClient, ok
from .conftest import ServiceUnderTest

RA, DEC = 246.52, -24.33


def celestial_header(shape: tuple[int, int], rotation_deg: float = 0.0) -> fits.Header:
    """A TAN WCS of 1 arcsec pixels centred on (RA, DEC), rotated by ``rotation_deg``."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [RA, DEC]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    theta = np.radians(rotation_deg)
    wcs.wcs.pc = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    return wcs.to_header()


def write_image(path, rotation_deg: float = 0.0) -> None:
    """Primary 300x400 float32 with a WCS; SCI,1 int16 scaled (BZERO/BSCALE); SCI,2 float64."""
    rng = np.random.default_rng(7)
    primary = fits.PrimaryHDU(rng.normal(size=(300, 400)).astype(np.float32),
                              header=celestial_header((300, 400), rotation_deg))
    primary.header["OBJECT"] = "test field"
    sci1 = fits.ImageHDU(rng.integers(0, 60000, size=(200, 250)).astype(np.float64),
                         header=celestial_header((200, 250)), name="SCI", ver=1)
    sci1.scale("int16", bzero=32768)
    sci2 = fits.ImageHDU(rng.normal(size=(120, 90)), name="SCI", ver=2)
    fits.HDUList([primary, sci1, sci2]).writeto(path)


@pytest.fixture
def vault(sqlite_server, tmp_path) -> CadcClient:
    svc = ServiceUnderTest(sqlite_server, "vault", "vault")
    home = tmp_path / "home"
    home.mkdir()
    cadc = CadcClient(svc, str(home), svc.unique())
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    write_image(tmp_path / "img.fits")
    ok(cadc.run("vcp", str(tmp_path / "img.fits"), cadc.short(f"{cadc.base}/img.fits")))
    return cadc


def test_pixel_cutout_of_an_extension(vault, tmp_path):
    out = tmp_path / "cut.fits"
    ok(vault.run("vcp", vault.short(f"{vault.base}/img.fits[1][100:200,50:120]"), str(out)))
    with fits.open(tmp_path / "img.fits") as original, fits.open(out) as cut:
        assert len(cut) == 2 and cut[0].header["NAXIS"] == 0
        assert cut[0].header["OBJECT"] == "test field"  # the primary header, without data
        expected = original[1].section[49:120, 99:200]
        assert cut[1].data.shape == (71, 101)
        assert np.array_equal(cut[1].data, expected)
        assert cut[1].header["NAXIS1"] == 101 and cut[1].header["NAXIS2"] == 71
        assert cut[1].header["BZERO"] == original[1].header["BZERO"]
        here = WCS(cut[1].header).pixel_to_world(0, 0)
        there = WCS(original[1].header).pixel_to_world(99, 49)
        assert here.separation(there).arcsec < 1e-6


def test_pixel_cutout_of_the_primary_image(vault, tmp_path):
    out = tmp_path / "cut.fits"
    ok(vault.run("vcp", vault.short(f"{vault.base}/img.fits[30:80,*]"), str(out)))
    with fits.open(tmp_path / "img.fits") as original, fits.open(out) as cut:
        assert len(cut) == 1
        assert np.array_equal(cut[0].data, original[0].section[:, 29:80])
        assert cut[0].header["CRPIX1"] == original[0].header["CRPIX1"] - 29


def test_several_extensions_and_ranges_in_one_request(vault, tmp_path):
    """SODA allows SUB repeated (the CADC client sends one): one extension per cutout."""
    subs = ["[1][10:20,30:40]", "[SCI,2][*,5:9]", "[0][300:201,1:3]"]
    with vault.svc.client("alice") as c:
        r = c.get(f"/vault/files/{vault.base}/img.fits", params=[("SUB", s) for s in subs],
                  follow_redirects=True)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/fits"
    with fits.open(tmp_path / "img.fits") as original, fits.open(io.BytesIO(r.content)) as cut:
        assert len(cut) == 4
        assert np.array_equal(cut[1].data, original[1].section[29:40, 9:20])
        assert np.array_equal(cut[2].data, original[("SCI", 2)].section[4:9, :])
        flipped = original[0].section[0:3, 200:300][:, ::-1]  # 300:201 reverses axis 1
        assert np.array_equal(cut[3].data, flipped)
        here = WCS(cut[3].header).pixel_to_world(0, 0)
        there = WCS(original[0].header).pixel_to_world(299, 0)
        assert here.separation(there).arcsec < 1e-6


def test_sky_cutout_through_a_rotated_wcs(vault, tmp_path):
    write_image(tmp_path / "rot.fits", rotation_deg=30)
    ok(vault.run("vcp", str(tmp_path / "rot.fits"), vault.short(f"{vault.base}/rot.fits")))
    out = tmp_path / "sky.fits"
    ra, dec, radius = RA + 0.005, DEC - 0.01, 0.01
    ok(vault.run("vcp", vault.short(f"{vault.base}/rot.fits({ra},{dec},{radius})"), str(out)))
    with fits.open(tmp_path / "rot.fits") as original, fits.open(out) as cut:
        centre = SkyCoord(ra, dec, unit="deg")
        wanted = Cutout2D(original[0].data, centre, 2 * radius * u.deg,
                          wcs=WCS(original[0].header), mode="trim")
        # both images carry the field: the primary and SCI,1 (SCI,2 has no WCS)
        assert len(cut) == 3 and cut[0].header["NAXIS"] == 0
        assert np.array_equal(cut[1].data, wanted.data)
        assert np.allclose(WCS(cut[1].header).wcs.crpix, wanted.wcs.wcs.crpix)
        assert WCS(cut[1].header).pixel_to_world(5, 7).separation(
            wanted.wcs.pixel_to_world(5, 7)).arcsec < 1e-6
        assert cut[1].header["PC1_2"] == original[0].header["PC1_2"]  # still rotated
        other = Cutout2D(original[1].data, centre, 2 * radius * u.deg,
                         wcs=WCS(original[1].header), mode="trim")
        assert np.array_equal(cut[2].data, other.data)


def test_vcp_head_equals_astropy_headers(vault, tmp_path):
    out = tmp_path / "headers.txt"
    ok(vault.run("vcp", "--head", vault.short(f"{vault.base}/img.fits"), str(out)))
    blocks, lines = [], []
    for line in out.read_text().splitlines():  # 80-column cards; END closes each header
        lines.append(line)
        if line.rstrip() == "END":
            blocks.append("\n".join(lines))
            lines = []
    assert lines == []
    with fits.open(tmp_path / "img.fits") as original:
        assert len(blocks) == len(original) == 3
        for block, hdu in zip(blocks, original):
            assert all(len(line) == 80 for line in block.splitlines())
            got = fits.Header.fromstring(block, sep="\n")
            assert got.tostring() == hdu.header.tostring()


def test_tile_compressed_image_is_cut_by_tiles(vault, tmp_path):
    data = np.arange(256 * 256, dtype=np.int32).reshape(256, 256)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1",
                                                       tile_shape=(16, 16))]).writeto(
        tmp_path / "tiles.fits")
    ok(vault.run("vcp", str(tmp_path / "tiles.fits"), vault.short(f"{vault.base}/tiles.fits")))
    out = tmp_path / "tcut.fits"
    ok(vault.run("vcp", vault.short(f"{vault.base}/tiles.fits[1][20:60,100:130]"), str(out)))
    with fits.open(out) as cut:
        assert np.array_equal(cut[1].data, data[99:130, 19:60])


def test_bad_cutouts_get_clear_errors(vault, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n" * 10)
    ok(vault.run("vcp", str(text), vault.short(f"{vault.base}/notes.txt")))
    with open(tmp_path / "img.fits", "rb") as fh:
        (tmp_path / "img.fits.gz").write_bytes(gzip.compress(fh.read()))
    ok(vault.run("vcp", str(tmp_path / "img.fits.gz"), vault.short(f"{vault.base}/img.fits.gz")))
    cases = [(f"{vault.base}/img.fits[1][5000:6000,1:10]", "outside the image"),
             (f"{vault.base}/img.fits[7][1:10,1:10]", "no extension"),
             (f"{vault.base}/img.fits(10.0,80.0,0.01)", "outside every image"),
             (f"{vault.base}/notes.txt[1:10,1:10]", "not a FITS file"),
             (f"{vault.base}/img.fits.gz[1][1:10,1:10]", "compressed as a whole")]
    for source, message in cases:
        failed = vault.run("vcp", vault.short(source), str(tmp_path / "bad.fits"))
        assert failed.returncode != 0, source
        assert message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
        assert not (tmp_path / "bad.fits").exists()
    head = vault.run("vcp", "--head", vault.short(f"{vault.base}/notes.txt"),
                     str(tmp_path / "h.txt"))
    assert head.returncode != 0 and "not a FITS file" in head.stderr
    with vault.svc.client("alice") as c:
        r = c.get(f"/vault/files/{vault.base}/img.fits", params={"SUB": "[1][a:b]"})
        assert r.status_code == 400 and r.text.startswith("InvalidArgument")


def server_bytes_read(pid: int) -> int:
    with open(f"/proc/{pid}/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def test_a_cutout_reads_only_the_bytes_it_needs(vault, tmp_path):
    """A 64 MiB image: a 100x100 cutout makes the server read well under 1/30 of it."""
    big = tmp_path / "big.fits"
    rng = np.random.default_rng(1)
    fits.PrimaryHDU(rng.normal(size=(2048, 8192)).astype(np.float32)).writeto(big)
    url = f"/vault/files/{vault.base}/big.fits"
    with vault.svc.client("alice") as c, open(big, "rb") as fh:
        assert c.put(url, content=fh).status_code == 201
        sub = {"SUB": "[4001:4100,1001:1100]"}
        assert c.get(url, params=sub, follow_redirects=True).status_code == 200  # warm-up
        before = server_bytes_read(vault.svc.server.proc.pid)
        r = c.get(url, params=sub, follow_redirects=True)
        read = server_bytes_read(vault.svc.server.proc.pid) - before
    with fits.open(big) as original, fits.open(io.BytesIO(r.content)) as cut:
        assert np.array_equal(cut[0].data, original[0].section[1000:1100, 4000:4100])
    assert read < big.stat().st_size / 30, read
