"""Shared output step of the benchmark scripts: the JSON record and the chapter's results file."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_record(topic: str, record: dict, quick: bool, results_path: Path | None = None,
                 results: dict | None = None) -> Path:
    """Write ``_build/bench[/quick]/<topic>.json``; with ``results_path`` (full runs only) also
    the small committed results file the chapter loads. Returns the record's path."""
    out = ROOT / "_build" / "bench" / ("quick" if quick else "") / f"{topic}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if results_path is not None and not quick:
        results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {results_path.relative_to(ROOT)}")
    return out
