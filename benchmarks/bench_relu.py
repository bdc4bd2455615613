"""Benchmark: the ReLU chapter's regime sweeps and wide random-feature fits at full size.

Runs, on the library (``gradynamics.relu1d``) and the chapter's seven data points:

- ``regime_sweep`` over the layer-scale ratios ``logspace(-4, 4, 9)`` at width 1000 for
  ``10^5`` full-batch GD steps (all arms in one tensor program);
- the width sweep of the chapter (ratio 100, ``size = 10^-3 (200/m)^gamma``) at widths
  50, 200, 800 and 3200 for ``4 * 10^4`` steps;
- the minimum-norm random-feature fit with uniform knots at width ``10^5`` (with and without
  the affine term) against its closed-form infinite-width limit and the natural cubic spline.

It prints the wall time and the key numbers and writes ``_build/bench/relu.json`` (timings and
numbers) and ``book/relu_splines/full_size_results.json`` (numbers only), which the chapter
loads and asserts its full-size claims on. Regenerate it with
``.venv/bin/python benchmarks/bench_relu.py`` (or ``make bench``, which runs every script).
``--quick`` runs tiny sizes and writes ``_build/bench/quick/relu.json`` only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _record import write_timed_record

from gradynamics import relu1d as rl
from gradynamics.runtime import get_device, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "relu_splines" / "full_size_results.json"
Y_DATA = [0.0, 0.8, 0.3, -0.6, 0.1, 0.9, 0.2]


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _sweep_numbers(sweep: rl.SweepResult) -> dict:
    fields = ("ratios", "widths", "sizes", "lr", "final_loss", "converged", "steps_needed",
              "displacement", "first_layer_change", "early_mass", "dist_cubic", "dist_linear")
    return {name: getattr(sweep, name).cpu().tolist() for name in fields}


def run(quick: bool, device: torch.device) -> dict:
    """The three full-size experiments; returns timings and JSON-ready numbers."""
    x = torch.linspace(-1, 1, 7, dtype=torch.float64, device=device)
    y = torch.tensor(Y_DATA, dtype=torch.float64, device=device)
    out: dict = {"numbers": {}, "wall": {}}
    m, steps = (50, 500) if quick else (1000, 100_000)
    start = _clock(device)
    sweep = rl.regime_sweep(x, y, torch.logspace(-4, 4, 9, dtype=torch.float64), m=m,
                            steps=steps, generator=seed_everything(5))
    out["wall"]["regime_sweep"] = _clock(device) - start
    out["numbers"]["regime_sweep"] = {"m": m, "steps": steps, **_sweep_numbers(sweep)}

    widths = [20, 80] if quick else [50, 200, 800, 3200]
    steps_w = 500 if quick else 40_000
    start = _clock(device)
    wsweep = rl.width_sweep(x, y, widths, [0.5, 1.0, 1.5], steps_w, ratio=100.0,
                            generator=seed_everything(6))
    out["wall"]["width_sweep"] = _clock(device) - start
    slopes = {str(float(g)): float(s) for g, s in zip(wsweep.gammas, wsweep.exponents,
                                                          strict=True)}
    gammas = wsweep.gammas.repeat(len(widths)).tolist()
    out["numbers"]["width_sweep"] = {"steps": steps_w, "gammas": gammas,
                                     "slopes": slopes, **_sweep_numbers(wsweep.sweep)}

    m_rf = 2_000 if quick else 100_000
    grid = torch.linspace(-1, 1, 801, dtype=torch.float64, device=device)
    x_np, g_np = x.cpu().numpy(), grid.cpu().numpy()
    cubic = rl.natural_cubic_spline(x_np, np.array(Y_DATA))(g_np)
    start = _clock(device)
    feat = rl.init_params(m_rf, 1.0, 0.0, batch=(4,), law="uniform",
                          generator=seed_everything(7), device=device)
    rf = {"m": m_rf}
    for affine in (False, True):
        limit = rl.random_feature_limit(x_np, np.array(Y_DATA), 2.0, affine=affine)(g_np)
        fit = rl.random_feature_fit(x, y, feat.a, feat.b, grid, affine=affine)
        key = "affine" if affine else "plain"
        rf[f"{key}_to_limit"] = rl.sup_distance(fit, limit).tolist()
        rf[f"{key}_to_cubic"] = rl.sup_distance(fit, cubic).tolist()
        rf[f"{key}_limit_to_cubic"] = rl.sup_distance(limit, cubic)
    out["wall"]["random_features"] = _clock(device) - start
    out["numbers"]["random_features"] = rf
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` for a tiny smoke-test size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--no-results", action="store_true",
                        help="do not rewrite book/relu_splines/full_size_results.json")
    args = parser.parse_args(argv)
    device = get_device()
    result = run(args.quick, device)
    numbers, wall = result["numbers"], result["wall"]
    sweep = numbers["regime_sweep"]
    print(f"relu regime sweep, m = {sweep['m']}, {sweep['steps']} steps, device {device}")
    for k, ratio in enumerate(sweep["ratios"]):
        print(f"  ratio {ratio:7.0e}  loss {sweep['final_loss'][k]:8.1e}  knot shift "
              f"{sweep['displacement'][k]:.4f}  first-layer change "
              f"{sweep['first_layer_change'][k]:.4f}  d_cubic {sweep['dist_cubic'][k]:.4f}  "
              f"d_linear {sweep['dist_linear'][k]:.4f}")
    print("  width sweep: log-log slope of the first-layer change vs m, per gamma:",
          {g: round(s, 3) for g, s in numbers["width_sweep"]["slopes"].items()})
    rf = numbers["random_features"]
    print(f"  random features m = {rf['m']}: sup to limit (plain) "
          f"{np.round(rf['plain_to_limit'], 4)}, to cubic {np.round(rf['plain_to_cubic'], 4)}")
    write_timed_record("relu", wall, numbers, args.quick, device,
                       None if args.no_results else RESULTS, digits=9)
    return 0


if __name__ == "__main__":
    sys.exit(main())
