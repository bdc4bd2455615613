"""Shared output step of the benchmark scripts: the JSON record and the chapter's results file."""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rounded(value, digits: int = 6):
    """``value`` (nested dicts/lists of floats) rounded to ``digits`` significant digits."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{digits - 1}e}")
    return value


def write_record(topic: str, record: dict, quick: bool, results_path: Path | None = None,
                 results: dict | None = None, digits: int | None = None) -> Path:
    """Write ``_build/bench[/quick]/<topic>.json``; with ``results_path`` (full runs only) also
    the small committed results file the chapter loads, its floats rounded to ``digits``
    significant digits when given (so that a rerun whose sums differ only in the last bits
    rewrites the same file). Returns the record's path."""
    out = ROOT / "_build" / "bench" / ("quick" if quick else "") / f"{topic}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if results_path is not None and not quick:
        results = results if digits is None else rounded(results, digits)
        results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {results_path.relative_to(ROOT)}")
    return out


def write_timed_record(topic: str, wall: dict, numbers: dict, quick: bool, device,
                       results_path: Path | None = None, digits: int | None = None) -> Path:
    """Print the wall time of each timed part, then :func:`write_record` a record of ``numbers``
    with ``wall_s`` (their sum) and one ``wall_s_<part>`` per part; with ``results_path`` the
    chapter's results file is ``numbers`` itself."""
    for name, seconds in wall.items():
        print(f"  wall {name:<18} {seconds:8.2f} s")
    record = {"topic": topic, "quick": quick, "device": str(device),
              "wall_s": sum(wall.values()), **{f"wall_s_{k}": v for k, v in wall.items()},
              **numbers}
    return write_record(topic, record, quick, results_path, numbers, digits)
