"""Benchmark: the self-penalization chapter's selection studies at full size, to convergence.

Runs, on the library (``gradynamics.self_penalization.selection_study``), the chapter's two
selection studies on 100 data sets each (``--seeds``), with tolerance 1e-6 on the projected
gradient mapping and up to 6000 iterations instead of the notebook's caps, for both kernels
(q = 1, 2). The gradient of F scales roughly like 1/lambda, so a looser tolerance (1e-4) stops
runs at lambda = 10 before their noise weights reach zero:

- additive model ``y = sin(X_1) + X_2^2 + 0.1 eps``, ``n = 200``, ``p = 50``, lambda in
  ``{0.005, 0.02, 0.1}``;
- pure interaction ``y = X_1 X_2 + eps``, ``n = 200``, ``p = 50``, lambda in
  ``{0.001, 0.01, 0.1, 1, 10}``.

Data set ``s`` of a model is the same whatever the batching (``selection_data``), so the
chapter can recompute the first data sets and compare. Seeds are processed in chunks
(``--chunk``) so memory stays bounded. Prints the wall time and the rates and writes

- ``_build/bench/self_penalization.json``: everything, timings included;
- ``book/self_penalization/full_size_results.json``: the rates the chapter loads, and the
  same rates over the first chunk of data sets alone, which the chapter recomputes (no timings).

``--quick`` runs tiny sizes and writes ``_build/bench/quick/self_penalization.json`` only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _record import write_record

from gradynamics import self_penalization as spen
from gradynamics.runtime import get_device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "self_penalization" / "full_size_results.json"
LAMBDAS = {"additive": [0.005, 0.02, 0.1], "interaction": [0.001, 0.01, 0.1, 1.0, 10.0]}
TOL = 1e-6


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def study(model: str, seeds: int, n: int, p: int, chunk: int, max_iter: int,
          device: torch.device) -> tuple[dict, dict]:
    """Rates per (q, lambda) and the per-data-set results of every run."""
    rates, runs = {"lambdas": LAMBDAS[model], "seeds": seeds, "n": n, "p": p,
                   "tol": TOL, "max_iter": max_iter}, {}
    for q in (1, 2):
        out = spen.selection_study(model, range(seeds), q, LAMBDAS[model], n=n, p=p, tol=TOL,
                                   max_iter=max_iter, chunk=chunk, device=device)
        rates[f"q{q}"] = {key: out[key].double().mean(0).tolist()
                          for key in ("exact", "false_pos", "missed", "converged")}
        rates[f"q{q}"]["max_false_pos"] = out["false_pos"].max(0).values.tolist()
        runs[q] = out
    return rates, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--seeds", type=int, default=100, help="data sets per setting")
    parser.add_argument("--chunk", type=int, default=20, help="data sets per tensor program")
    args = parser.parse_args(argv)
    device = get_device()
    seeds, n, p, max_iter = (4, 60, 8, 100) if args.quick else (args.seeds, 200, 50, 6000)
    chunk = min(args.chunk, seeds)
    record = {"topic": "self_penalization", "quick": args.quick, "device": str(device)}
    results, walls = {}, {}
    start = _clock(device)
    for model in LAMBDAS:
        t0 = _clock(device)
        results[model], runs = study(model, seeds, n, p, chunk, max_iter, device)
        walls[model] = _clock(device) - t0
        results["first_chunk"] = results.get("first_chunk", {"seeds": chunk}) | {
            model: {f"q{q}": {key: runs[q][key][:chunk].double().mean(0).tolist()
                              for key in ("exact", "false_pos", "missed")} for q in runs}}
    record |= {"wall_s": _clock(device) - start, "wall_s_per_model": walls, **results}
    print(f"device={device}  wall {record['wall_s']:.1f} s  "
          + "  ".join(f"{m} {w:.1f} s" for m, w in walls.items()))
    for model in LAMBDAS:
        res = results[model]
        print(f"{model}: {res['seeds']} data sets, n = {res['n']}, p = {res['p']}, "
              f"lambda {res['lambdas']}")
        for q in ("q1", "q2"):
            print(f"  {q}: " + "  ".join(
                f"{key} [{', '.join(f'{v:.2f}' for v in res[q][key])}]"
                for key in ("exact", "false_pos", "converged")))
    write_record("self_penalization", record, args.quick, RESULTS, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
