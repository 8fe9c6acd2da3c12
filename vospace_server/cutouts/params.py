"""The SODA parameters CADC's vault serves cutouts and headers for, parsed (no I/O).

The CADC ``vos`` client turns ``vcp 'vos:x.fits[1][100:200,*]' .`` into ``SUB=[1][100:200,*]``,
``vcp 'vos:x.fits(246.5,-24.3,0.01)' .`` into ``CIRCLE=246.5 -24.3 0.01`` and ``vcp --head``
into ``META=true``, appended to the data URL its vault redirect gives (vos.py
``_get_soda_params``). SUB may be repeated (SODA), one cutout per value.

Pixel syntax (CADC's, 1-based, inclusive, FITS axis order: x first): ``[ext]`` an extension
(number, or ``NAME`` / ``NAME,VER``) whole; ``[ranges]`` of the default image; ``[ext][ranges]``.
A range per axis is ``*`` (all), ``-*`` (all, flipped), ``a:b`` (``a > b`` flips) or ``a``;
missing axes are taken whole.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..protocol.faults import InvalidArgument

_GROUP = re.compile(r"\[([^\[\]]*)\]")
_AXIS = re.compile(r"^(?:(-?)\*|(\d+)(?::(\d+))?)$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,67}$")
MAX_SUB = 16


@dataclass(frozen=True)
class AxisRange:
    """Pixels ``first``..``last`` (1-based, inclusive; None = the whole axis), ``flip`` to
    reverse them."""

    first: int | None = None
    last: int | None = None
    flip: bool = False


@dataclass(frozen=True)
class PixelCutout:
    extension: int | str | tuple[str, int] | None  # None: the first HDU holding an image
    ranges: tuple[AxisRange, ...]                  # FITS axis order; () = the whole image


@dataclass(frozen=True)
class Circle:
    ra: float
    dec: float
    radius: float  # degrees


@dataclass(frozen=True)
class View:
    """What a GET asks for instead of the plain bytes: None of these -> the bytes."""

    cutouts: tuple[PixelCutout, ...] = ()
    circle: Circle | None = None
    headers_only: bool = False


def _extension(text: str) -> int | str | tuple[str, int]:
    text = text.strip()
    if text.isdigit():
        return int(text)
    name, _, version = text.partition(",")
    if _NAME.match(name.strip()) and (not version or version.strip().isdigit()):
        return (name.strip().upper(), int(version)) if version else name.strip().upper()
    raise InvalidArgument(f"not a FITS extension: [{text}]")


def _axis(text: str) -> AxisRange:
    found = _AXIS.match(text.strip())
    if not found:
        raise InvalidArgument(f"not a pixel range: {text!r} (use *, -*, a:b or a)")
    flipped_all, first, last = found.groups()
    if first is None:
        return AxisRange(flip=bool(flipped_all))
    a, b = int(first), int(last if last is not None else first)
    if min(a, b) < 1:
        raise InvalidArgument(f"pixels are numbered from 1: {text!r}")
    return AxisRange(min(a, b), max(a, b), a > b)


def _is_ranges(text: str) -> bool:
    return ":" in text or "*" in text


def parse_sub(value: str) -> PixelCutout:
    """One SUB value, e.g. ``[1][100:200,100:200]``, ``[SCI,2]`` or ``[*,1:50]``."""
    value = value.strip()
    groups = _GROUP.findall(value)
    if not groups or "".join(f"[{g}]" for g in groups).replace(" ", "") != value.replace(" ", ""):
        raise InvalidArgument(f"not a pixel cutout: {value!r} (e.g. [1][100:200,100:200])")
    if len(groups) > 2:
        raise InvalidArgument(f"one extension and one set of ranges per cutout: {value!r}")
    if len(groups) == 2:
        extension, ranges = _extension(groups[0]), groups[1]
    elif _is_ranges(groups[0]):
        extension, ranges = None, groups[0]
    else:
        return PixelCutout(_extension(groups[0]), ())
    return PixelCutout(extension, tuple(_axis(part) for part in ranges.split(",")))


def parse_circle(value: str) -> Circle:
    """``ra dec radius`` in degrees (ICRS)."""
    try:
        ra, dec, radius = (float(x) for x in value.replace(",", " ").split())
    except ValueError:
        raise InvalidArgument(f"CIRCLE needs 'ra dec radius' in degrees, not {value!r}") \
            from None
    if not all(math.isfinite(x) for x in (ra, dec, radius)) or not -90 <= dec <= 90 \
            or not 0 < radius <= 180:
        raise InvalidArgument(f"CIRCLE out of range: {value!r}")
    return Circle(ra % 360, dec, radius)


def parse_view(params: list[tuple[str, str]]) -> View | None:
    """The view a GET's query (``multi_items()``) asks for; None for the plain bytes."""
    subs = [v for k, v in params if k.upper() == "SUB"]
    circles = [v for k, v in params if k.upper() == "CIRCLE"]
    meta = [v for k, v in params if k.upper() == "META"]
    if not (subs or circles or meta):
        return None
    if len(subs) > MAX_SUB:
        raise InvalidArgument(f"at most {MAX_SUB} SUB cutouts per request")
    if len(circles) > 1 or (circles and subs):
        raise InvalidArgument("one CIRCLE, or SUB cutouts, per request")
    headers_only = any(v.strip().lower() == "true" for v in meta)
    if not (subs or circles or headers_only):
        return None
    if headers_only and (subs or circles):
        raise InvalidArgument("META=true returns headers; ask for cutouts separately")
    return View(cutouts=tuple(parse_sub(v) for v in subs),
                circle=parse_circle(circles[0]) if circles else None,
                headers_only=headers_only)
