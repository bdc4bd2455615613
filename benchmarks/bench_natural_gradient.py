"""Benchmark: the natural-gradient chapter's rise-time sweep at the authors' full grid size.

Runs ``gradynamics.natural_gradient.rise_time_table`` (3 methods x 100 learning rates x 100
starts x 99 updates) with full-batch and mini-batch (B = 100) gradients on the chapter's
instance, prints the wall time and the key numbers, and writes

- ``_build/bench/natural_gradient.json``: timings and numbers of this run;
- ``book/natural_gradient/full_size_results.json``: the numbers only (worst-case rise time per
  learning rate of the grids ``linspace(0, top, 100)``, and their summaries), which the chapter
  loads for the full-size mini-batch sweep. Regenerate it with ``make bench``.

``--quick`` runs 20 learning rates x 20 starts and writes ``_build/bench/quick/
natural_gradient.json`` only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _record import write_record

from gradynamics import natural_gradient as ng
from gradynamics.runtime import get_device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "natural_gradient" / "full_size_results.json"
SEED, BATCH, NUM_ITERS = 18, 100, 99


def run(num_lrs: int, num_starts: int, device: torch.device) -> dict:
    """Full-batch and mini-batch sweeps; returns the JSON-ready results."""
    _, q_hat, starts = ng.sweep_instance(seed=SEED, num_starts=num_starts, device=device)
    results: dict = {"num_lrs": num_lrs, "num_starts": num_starts, "num_iters": NUM_ITERS,
                     "batch": BATCH, "seed": SEED, "sweeps": {}}
    for label, batch in (("full", None), ("minibatch", BATCH)):
        generator = torch.Generator(device=q_hat.device).manual_seed(SEED + 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        table = ng.rise_time_table(q_hat, starts, num_lrs, NUM_ITERS, batch=batch,
                                   generator=generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[f"wall_s_{label}"] = time.perf_counter() - start
        results["sweeps"][label] = {
            m: {"lr_top": float(lrs[-1]), "worst": worst.cpu().tolist(),
                "summary": vars(summary)} for m, (lrs, worst, summary) in table.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` for a tiny smoke-test size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 lrs x 20 starts (smoke test)")
    parser.add_argument("--no-results", action="store_true",
                        help="do not rewrite book/natural_gradient/full_size_results.json")
    args = parser.parse_args(argv)
    size = 20 if args.quick else 100
    device = get_device()
    results = run(size, size, device)
    print(f"natural gradient rise-time sweep, {size} lrs x {size} starts x {NUM_ITERS} updates, "
          f"device {device}")
    for label in ("full", "minibatch"):
        print(f"  {label:<9} wall {results[f'wall_s_{label}']:.2f} s")
        for m, entry in results["sweeps"][label].items():
            s = entry["summary"]
            print(f"    {m:<9} best worst-case rise time {s['best']:3d} at lr {s['lr_best']:.4g};"
                  f" all starts converge for lr in [{s['lr_min']:.4g}, {s['lr_max']:.4g}]")
    numbers = {k: v for k, v in results.items() if not k.startswith("wall_s")}
    wall = results["wall_s_full"] + results["wall_s_minibatch"]
    record = {"topic": "natural_gradient", "quick": args.quick, "device": str(device),
              "wall_s": wall, "wall_s_full": results["wall_s_full"],
              "wall_s_minibatch": results["wall_s_minibatch"], **numbers}
    write_record("natural_gradient", record, args.quick,
                 None if args.no_results else RESULTS, numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
