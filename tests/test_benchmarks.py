"""Smoke test of the full-size benchmarks: every benchmarks/bench_*.py runs with --quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_benchmark_runs_quick(script):
    env = {**os.environ, "MPLBACKEND": "agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), f"{script.name} printed nothing"
    topic = script.stem.removeprefix("bench_")
    record = ROOT / "_build" / "bench" / "quick" / f"{topic}.json"
    if record.exists():  # the README's convention; older scripts may write elsewhere
        data = json.loads(record.read_text())
        assert data.get("topic") == topic and data.get("quick") is True
    print(f"{script.name} --quick: {seconds:.1f} s")


def test_attention_quick_record_has_the_comparison():
    script = ROOT / "benchmarks" / "bench_attention.py"
    record = ROOT / "_build" / "bench" / "quick" / "attention.json"
    if not record.exists():
        subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, check=True,
                       capture_output=True, timeout=300)
    data = json.loads(record.read_text())
    comparison = data["conventional"]
    assert comparison["max_abs_loss_difference"] < 1e-4  # float32, same inputs, same steps
    assert comparison["speedup"] > 0 and data["wall_s"] > 0
    summary = data["summary"]
    assert set(summary["arms"]) == {"sgd", "em_like"}
    assert len(summary["arms"]["sgd"]["loss"]) == len(summary["seeds"])
