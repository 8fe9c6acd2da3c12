"""FITS headers and cutouts of a stored file, as CADC's vault serves them to ``vcp``.

The file is read through its ReadHandle's positional reads, so only the bytes a request
needs are read: astropy.io.fits opens it lazily (each header in turn, data skipped by
seeking) and an image's ``section`` reads only the rows of a cutout (of a tile-compressed
image, only its tiles). Pixel values are copied as stored (``BZERO``/``BSCALE`` kept), so a
cutout equals astropy's own section of the file; sky cutouts are astropy's ``Cutout2D`` of
the section. Headers are the original ones with NAXISn and the WCS reference pixel
(flips: also the axis direction) updated for the cut.

Output: one cutout of the primary image is a FITS file of one HDU; otherwise the primary
header (without data) followed by one image extension per cutout. ``headers_only``: the
header of every HDU as text, 80-column cards one per line, each header ending in ``END``.
"""
from __future__ import annotations

import io
import math
import warnings
from typing import BinaryIO

from ..protocol.faults import InvalidArgument
from ..storage.streams import ReadHandle
from .params import AxisRange, Circle, PixelCutout, View

MAX_CUTOUT_BYTES = 2**30  # the pixels of a cutout are held in memory while written
SCALING = ("BZERO", "BSCALE", "BLANK")
COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZ": "bzip2", b"\xfd7": "xz", b"PK": "zip"}


class HandleFile(io.RawIOBase):
    """A read-only seekable file over a ReadHandle (what astropy.io.fits reads from)."""

    mode = "rb"

    def __init__(self, handle: ReadHandle, name: str) -> None:
        super().__init__()
        self.handle, self.name, self.position = handle, name, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.handle.size}
        self.position = max(0, base[whence] + offset)
        return self.position

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.handle.read(self.position, len(buffer))
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def _check_fits(handle: ReadHandle, name: str) -> None:
    start = handle.read(0, 80)
    kind = COMPRESSED_MAGIC.get(start[:2])
    if kind:
        raise InvalidArgument(f"{name} is compressed as a whole ({kind}): cutouts and headers "
                              "need a plain or tile-compressed FITS file")
    if not start.startswith(b"SIMPLE  =") or len(start) < 80:
        raise InvalidArgument(f"{name} is not a FITS file: no cutouts or FITS headers")


def render(handle: ReadHandle, name: str, view: View, out: BinaryIO) -> str:
    """Write what ``view`` asks for, from the FITS file ``handle``, to ``out``; returns its
    media type. InvalidArgument for files that are not FITS, cutouts outside the image,
    and anything astropy cannot read."""
    from astropy.io import fits  # the server extra; imported only when a view is asked for

    _check_fits(handle, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-standard headers are served, not judged
            with fits.open(HandleFile(handle, name), memmap=False, lazy_load_hdus=True,
                           do_not_scale_image_data=True) as hdul:
                if view.headers_only:
                    _write_headers(hdul, out)
                    return "text/plain; charset=utf-8"
                if view.circle is not None:
                    cut = _sky_cutouts(hdul, view.circle)
                else:
                    cut = [_pixel_cutout(hdul, c) for c in view.cutouts]
                _assemble(hdul, cut).writeto(out)
                return "application/fits"
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidArgument(f"cannot read {name} as FITS: {exc}") from None


def _write_headers(hdul, out: BinaryIO) -> None:
    for hdu in hdul:
        out.write(hdu.header.tostring(sep="\n", endcard=True, padding=False).encode("ascii"))
        out.write(b"\n")


def _is_image(hdu) -> bool:
    return bool(hdu.is_image and hdu.header.get("NAXIS", 0) > 0 and hdu.shape
                and all(n > 0 for n in hdu.shape))


def _select(hdul, extension: int | str | tuple[str, int] | None):
    """(index, HDU) of the extension a cutout names, or of the first image."""
    if extension is None:
        for index, hdu in enumerate(hdul):
            if _is_image(hdu):
                return index, hdu
        raise InvalidArgument("the file holds no image to cut")
    try:
        index = hdul.index_of(extension)
        hdu = hdul[index]
    except (KeyError, IndexError):
        raise InvalidArgument(f"the file has no extension {extension!r}") from None
    if not _is_image(hdu):
        raise InvalidArgument(f"extension {extension!r} holds no image to cut")
    return index, hdu


def _check_size(shape: tuple[int, ...], bitpix: int) -> None:
    if math.prod(shape) * abs(bitpix) // 8 > MAX_CUTOUT_BYTES:
        raise InvalidArgument(f"a cutout of {MAX_CUTOUT_BYTES} bytes at most; ask for less")


def _pixel_cutout(hdul, cutout: PixelCutout) -> tuple[int, object, object]:
    """(source index, header, pixels) of one SUB cutout."""
    index, hdu = _select(hdul, cutout.extension)
    naxis = len(hdu.shape)
    if len(cutout.ranges) > naxis:
        raise InvalidArgument(f"{len(cutout.ranges)} ranges for an image of {naxis} axes")
    ranges = list(cutout.ranges) + [AxisRange()] * (naxis - len(cutout.ranges))
    header = hdu.header.copy()
    slices, flips = [], []
    for axis, wanted in enumerate(ranges, start=1):  # FITS order: axis 1 is x
        size = hdu.shape[naxis - axis]
        first, last = wanted.first or 1, min(wanted.last or size, size)
        if first > size:
            raise InvalidArgument(f"the cutout lies outside the image: axis {axis} has "
                                  f"{size} pixels, the range starts at {first}")
        slices.append(slice(first - 1, last))
        flips.append(wanted.flip)
        _shift_axis(header, axis, first, last, wanted.flip)
    shape = tuple(s.stop - s.start for s in reversed(slices))
    _check_size(shape, hdu.header.get("BITPIX", 8))
    data = hdu.section[tuple(reversed(slices))]
    flipping = tuple(slice(None, None, -1) if f else slice(None) for f in reversed(flips))
    return index, header, data[flipping] if any(flips) else data


def _shift_axis(header, axis: int, first: int, last: int, flip: bool) -> None:
    """Update the WCS of ``axis`` (1-based) for pixels ``first..last`` kept (reversed)."""
    key = f"CRPIX{axis}"
    if not flip:
        if key in header:
            header[key] = header[key] - (first - 1)
        return
    header[key] = last - header.get(key, 0.0) + 1
    cd = [k for k in header if k.startswith("CD") and k.endswith(f"_{axis}")]
    for k in cd:
        header[k] = -header[k]
    if not cd:
        header[f"CDELT{axis}"] = -header.get(f"CDELT{axis}", 1.0)


def _sky_cutouts(hdul, circle: Circle) -> list[tuple[int, object, object]]:
    """Astropy's Cutout2D of every 2-D image whose celestial WCS the circle overlaps."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.nddata import Cutout2D, NoOverlapError
    from astropy.wcs import WCS

    centre = SkyCoord(circle.ra, circle.dec, unit="deg", frame="icrs")
    cut = []
    for index, hdu in enumerate(hdul):
        if not _is_image(hdu) or len(hdu.shape) != 2:
            continue
        wcs = WCS(hdu.header, hdul)
        if not wcs.has_celestial or wcs.naxis != 2:
            continue
        try:
            cutout = Cutout2D(hdu.section, centre, 2 * circle.radius * u.deg, wcs=wcs,
                              mode="trim")
        except NoOverlapError:
            continue
        except ValueError:  # the centre has no pixel position in this projection
            continue
        header = hdu.header.copy()
        header["CRPIX1"], header["CRPIX2"] = (float(v) for v in cutout.wcs.wcs.crpix)
        cut.append((index, header, cutout.data))
    if not cut:
        raise InvalidArgument(f"the circle ({circle.ra}, {circle.dec}, {circle.radius}) lies "
                              "outside every image of the file (or none has a celestial WCS)")
    return cut


def _assemble(hdul, cut: list[tuple[int, object, object]]):
    from astropy.io import fits

    def hdu_of(kind, header, data):
        made = kind(data, header=header, do_not_scale_image_data=True)
        for key in SCALING:  # the constructor drops them; the pixels are stored values
            if key in header:
                made.header[key] = header[key]
        return made

    if len(cut) == 1 and cut[0][0] == 0:
        return fits.HDUList([hdu_of(fits.PrimaryHDU, cut[0][1], cut[0][2])])
    primary = fits.PrimaryHDU(header=hdul[0].header.copy())
    primary.header["EXTEND"] = True
    return fits.HDUList([primary] + [hdu_of(fits.ImageHDU, h, d) for _, h, d in cut])
