"""Attention chapter at the authors' full size: the sticky-chain protocol, timed.

Runs the protocol of ``experiments/paper2_gradient/em_vs_sgd_multiseed.py`` (T = 2000, seeds
42, 2024, 1337, 7777, 9999, arms sgd and em_like, 1000 full-batch steps, float32) with the
library's blocked trainer, prints the wall time and the table the chapter reports, and writes

- ``_build/bench/attention.json``: timings and numbers of this run;
- ``book/attention/full_size_results.json``: the numbers only (no timings), which the chapter
  loads on a CPU. Regenerate it with ``make bench``.

In the same run and on the same inputs (seed 42, both arms, T = 2000, 20 steps) it times the
conventional implementation a reader would write: one run at a time, an ``nn.Module`` with
autograd and ``torch.optim.SGD``, float32. Both trainers are warmed up (one untimed step) before
they are timed. It prints the speed-up of the blocked trainer per run-step next to the largest
loss difference between the two.

``--quick`` runs everything at a tiny size (for the smoke test) and writes
``_build/bench/quick/attention.json`` only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import gradynamics as gd
from gradynamics import attention as att
from gradynamics.runtime import stopwatch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "attention" / "full_size_results.json"


def conventional_comparison(T: int, n_steps: int, device: torch.device) -> dict:
    """Blocked trainer vs nn.Module + torch.optim.SGD on seed 42, both arms, same inputs."""
    chain = att.sticky_chain(42, T)
    arms = [att.ARMS["sgd"], att.ARMS["em_like"]]
    x = chain.inputs.to(device=device, dtype=torch.float32)
    y = chain.targets.to(device)
    init = att.init_weights([42, 42], dtype=torch.float32, device=device)
    one_run = [att.HeadWeights(*(w[r] for w in init.as_tuple())) for r in range(2)]
    x2, y2 = x.expand(2, -1, -1).contiguous(), y.expand(2, -1).contiguous()
    att.conventional_train(x, y, one_run[0], arms[0], 1)  # warm-ups, untimed: both
    att.train_runs(x2, y2, init, arms, 1)                  # trainers start warm
    with stopwatch(device) as conventional_time:
        conventional = torch.stack([att.conventional_train(x, y, one_run[r], arm, n_steps)
                                    for r, arm in enumerate(arms)])
    with stopwatch(device) as blocked_time:
        fast = att.train_runs(x2, y2, init, arms, n_steps)
    conventional_s, fast_s = conventional_time.seconds, blocked_time.seconds
    return {"T": T, "n_steps": n_steps, "runs": 2,
            "conventional_s": conventional_s, "blocked_s": fast_s,
            "speedup": conventional_s / fast_s,
            "max_abs_loss_difference": float((fast.loss - conventional.cpu()).abs().max())}


def print_table(summary: dict) -> None:
    """The chapter's full-size table, from a summary dict."""
    title = f"after {summary['n_steps']} steps"
    print(f"{title:28s} {'SGD':>18s} {'EM-like':>18s}")
    for metric in ("loss", "entropy", "accuracy", "heldout"):
        cells = []
        for arm in ("sgd", "em_like"):
            values = torch.tensor(summary["arms"][arm][metric], dtype=torch.float64)
            std = float(values.std(correction=0))  # divisor n, as the authors' script
            cells.append(f"{float(values.mean()):.4f} ± {std:.4f}")
        print(f"{metric:28s} {cells[0]:>18s} {cells[1]:>18s}")
    if "steps_to_beat_sgd" in summary:
        print(f"EM-like steps to beat each seed's final SGD loss: {summary['steps_to_beat_sgd']}")
        mean_steps = summary["scripts_mean_steps"]
        print(f"script's metric: {mean_steps:.1f} steps, "
              f"{summary['n_steps'] / mean_steps:.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` for a tiny smoke-test size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--no-results", action="store_true",
                        help="do not rewrite book/attention/full_size_results.json")
    args = parser.parse_args(argv)
    device = gd.get_device()
    if args.quick:
        seeds, T, n_steps, conv = att.AUTHORS_SEEDS[:2], 60, 20, (60, 5)
        out = ROOT / "_build" / "bench" / "quick" / "attention.json"
    else:
        seeds, T, n_steps, conv = att.AUTHORS_SEEDS, 2000, 1000, (2000, 20)
        out = ROOT / "_build" / "bench" / "attention.json"
    print(gd.describe_runtime(device, torch.float32), f"torch threads {torch.get_num_threads()}")
    with stopwatch(device) as total:
        exp = att.sticky_experiment(seeds, ("sgd", "em_like"), T=T, n_steps=n_steps,
                                    dtype=torch.float32, device=device)
    wall = total.seconds
    summary = att.full_size_summary(exp)
    runs = len(seeds) * 2
    print(f"protocol: {runs} runs x {n_steps} steps at T = {T}: training "
          f"{exp.result.seconds:.1f} s, total {wall:.1f} s "
          f"({exp.result.seconds / n_steps * 1e3:.1f} ms per step of all runs)")
    print_table(summary)
    comparison = conventional_comparison(*conv, device)
    print(f"conventional nn.Module + torch.optim.SGD, {comparison['runs']} runs x "
          f"{comparison['n_steps']} steps at T = {comparison['T']}: "
          f"{comparison['conventional_s']:.2f} s; blocked trainer {comparison['blocked_s']:.2f} s; "
          f"speed-up {comparison['speedup']:.1f}x; max |loss difference| "
          f"{comparison['max_abs_loss_difference']:.1e}")
    record = {"topic": "attention", "quick": args.quick, "device": str(device),
              "torch_threads": torch.get_num_threads(), "wall_s": wall,
              "train_s": exp.result.seconds, "summary": summary, "conventional": comparison}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if not args.quick and not args.no_results:
        RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
