"""One table of every benchmark target, printed at the end of ``make bench``.

Each bench script calls ``record(...)`` for each target it checks, next to what it prints
itself; the rows go to the file named by ``$VOSPACE_BENCH_RESULTS`` (one JSON object a
line; ``make bench`` makes a fresh one per run), so a target read in one script's output
among pages of others is not missed. Without that variable (a script run by hand) nothing is
written and the script's own lines are all there is.

    python bench/summary.py table FILE           # print the table; exit 1 if any row MISSED
    python bench/summary.py finished FILE SCRIPT RC  # after each script: a non-zero exit
                                                     # that recorded no MISSED row (a crash) becomes one
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = "VOSPACE_BENCH_RESULTS"


def _number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def show(value: float, unit: str) -> str:
    """``1.23x`` for ratios, ``1.23 s`` / ``1,234 nodes/s`` for the rest."""
    return f"{_number(value)}x" if unit == "x" else f"{_number(value)} {unit}"


def record(name: str, value: float, target: float | None, unit: str = "x", *,
           at_most: bool = False, note: str = "") -> bool:
    """Record one measured ``value`` against ``target`` (a floor, or a ceiling when
    ``at_most``; None: shown without a verdict) and return whether it was met."""
    ok = target is None or (value <= target if at_most else value >= target)
    if target is None:
        status, wanted = "-", ""
    else:
        status, wanted = ("OK" if ok else "MISSED"), f"{'<=' if at_most else '>='} {show(target, unit)}"
    row = {"script": Path(sys.argv[0]).stem, "name": name, "value": show(value, unit),
           "target": wanted, "status": status, "note": note}
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as fh:  # O_APPEND: one write per row
            fh.write(json.dumps(row) + "\n")
    return ok


def rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def finished(path: str, script: str, rc: int) -> None:
    """A script that failed without recording a miss crashed or stopped early: say so."""
    if rc and not any(r["script"] == script and r["status"] == "MISSED" for r in rows(path)):
        row = {"script": script, "name": "(the script)", "value": f"exit {rc}", "target": "exit 0",
               "status": "MISSED", "note": "stopped before recording its targets: see its output"}
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def table(path: str) -> int:
    """Print all rows as one table; 1 when any is MISSED."""
    found = rows(path)
    head = {"script": "bench", "name": "target", "value": "measured", "target": "wanted",
            "status": "", "note": "limit / note"}
    widths = {k: max(len(str(r[k])) for r in [head, *found]) for k in head}
    cols = ("script", "name", "value", "target", "status")
    line = lambda r: "  ".join(str(r[k]).ljust(widths[k]) for k in cols) + "  " + r["note"]  # noqa: E731
    print("\n" + line(head).rstrip())
    print("-" * (sum(widths[k] + 2 for k in cols) + widths["note"]))
    for r in found:
        print(line(r).rstrip())
    missed = sum(r["status"] == "MISSED" for r in found)
    print(f"\n{len(found)} rows, {missed} MISSED")
    return 1 if missed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["table"] and len(argv) == 2:
        return table(argv[1])
    if argv[:1] == ["finished"] and len(argv) == 4:
        finished(argv[1], argv[2], int(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
