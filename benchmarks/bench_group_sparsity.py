"""Full-size comparison grid of the group-sparsity chapter (Li, Nguyen, Hegde, Wong, ICLR 2023).

The authors' ``Comparisons`` setting: Gaussian design, n = 150, p = 300, groups of 4, the first
three groups equal to 10, noise sigma in exp(linspace(0, 3, 10)), 30 repetitions. Methods:
DGLNN by Algorithm 2 (switch at epoch 200, 600 epochs, eta = 1e-3, epoch chosen by validation;
float64 and float32), scikit-learn's lasso path and the library's batched FISTA group lasso
(penalties chosen by validation). It also times the conventional reference (one module per
group, float32, autograd, the authors' loop style) per instance against the batched library,
and checks the group lasso against skglm at the validation-chosen penalties.

Run from the repository root (``make bench`` runs it with the defaults)::

    python benchmarks/bench_group_sparsity.py [--repetitions 30] [--noise-levels 10]
    python benchmarks/bench_group_sparsity.py --quick     # tiny sizes, a few seconds

A full run prints the times and key numbers and writes

- ``_build/bench/group_sparsity.json``: everything, timings included;
- ``book/group_sparsity/full_size_results.json``: the numbers the chapter loads (no timings),
  rounded to 6 significant digits so that a rerun on the CPU rewrites the same file.

``--quick`` writes ``_build/bench/quick/group_sparsity.json`` only (never the chapter's file).
Timings are process CPU time on the CPU (run single-threaded, ``OMP_NUM_THREADS=1``, so that a
shared machine does not inflate them) and synchronised wall time on CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import torch
from _record import rounded

import gradynamics as gd
from gradynamics import group_sparsity as gs
from gradynamics.runtime import synchronize

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "group_sparsity" / "full_size_results.json"


def clock(device: torch.device) -> float:
    """Synchronised wall time on CUDA; process CPU time on the CPU."""
    if device.type == "cuda":
        synchronize(device)
        return time.perf_counter()
    return time.process_time()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for the smoke test; writes _build/bench/quick/ only")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--noise-levels", type=int, default=10)
    parser.add_argument("--reference-instances", type=int, default=2)
    parser.add_argument("--skglm-instances", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args(argv)
    if args.quick:
        args.repetitions, args.noise_levels = 2, 3
        args.reference_instances, args.skglm_instances = 1, 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = gd.get_device()
    generator = gd.seed_everything(args.seed)
    n, p, b = (40, 48, 4) if args.quick else (150, 300, 4)
    epochs, switch = (20, 10) if args.quick else (600, 200)
    w_star = torch.zeros(p, dtype=torch.float64)
    w_star[:12] = 10.0
    sigmas = np.exp(np.linspace(0, 3, args.noise_levels)).tolist()
    data = gs.make_data(n, p, b, w_star, sigmas, repetitions=args.repetitions,
                        design="gaussian", generator=generator).to(device=device)
    setting = {"n": n, "p": p, "group_size": b, "support_value": 10.0, "epochs": epochs,
               "switch_epoch": switch, "lr": 1e-3, "noise_levels": sigmas,
               "repetitions": args.repetitions, "seed": args.seed, "dtype": "float64"}
    times, errors = {}, {}
    wall_start = time.perf_counter()

    start = clock(device)
    run = gs.train_dglnn(data, "alg2", 1e-3, epochs, switch_epoch=switch)
    times["dglnn_batched_s"] = clock(device) - start
    errors["DGLNN"] = run.best_error().cpu()
    start = clock(device)
    run32 = gs.train_dglnn(data.to(torch.float32), "alg2", 1e-3, epochs, switch_epoch=switch)
    times["dglnn_batched_float32_s"] = clock(device) - start
    errors["DGLNN float32"] = run32.best_error().double().cpu()
    start = clock(device)
    group_w, penalties = gs.group_lasso_validation(data, return_penalty=True)
    times["group_lasso_batched_s"] = clock(device) - start
    errors["group lasso"] = (group_w - data.w_star).square().sum(-1).cpu()
    start = clock(device)
    errors["lasso"] = (gs.lasso_path_validation(data) - data.w_star).square().sum(-1).cpu()
    times["lasso_sklearn_s"] = clock(device) - start

    # The conventional reference: the authors' loop style, one instance at a time, float32.
    ref_times, ref_errors = [], []
    for k in range(args.reference_instances):
        n_k, m_k = int(data.n_samples[k]), int(data.n_val[k])
        tensors = [t.cpu() for t in (data.X[k, :n_k], data.y[k, :n_k], data.X_val[k, :m_k],
                                     data.y_val[k, :m_k], data.w_star[k])]
        start = clock(torch.device("cpu"))
        ref = gs.conventional_reference_train(*tensors, group_size=b, lr=1e-3, epochs=epochs,
                                              switch_epoch=switch)
        ref_times.append(clock(torch.device("cpu")) - start)
        ref_errors.append(ref["est_err"][int(np.argmin(ref["val_mse"]))])
    per_instance = {"ours_float64_s": times["dglnn_batched_s"] / data.batch,
                    "ours_float32_s": times["dglnn_batched_float32_s"] / data.batch,
                    "conventional_reference_float32_s": float(np.mean(ref_times))}
    for kind in ("float64", "float32"):
        per_instance[f"speedup_{kind}"] = (per_instance["conventional_reference_float32_s"]
                                           / per_instance[f"ours_{kind}_s"])
    ours32 = errors["DGLNN float32"][: args.reference_instances].numpy()
    reference_rel_diff = float(np.max(np.abs(np.array(ref_errors) / ours32 - 1)))

    # The batched FISTA group lasso against skglm at the validation-chosen penalties.
    diffs = []
    start = time.process_time()
    for k in range(min(args.skglm_instances, data.batch)):
        peer = gs.group_lasso_skglm(data.X[k].cpu().numpy(), data.y[k].cpu().numpy(), b,
                                    float(penalties[k]))
        ours = group_w[k].cpu().numpy()
        diffs.append(float(np.abs(ours - peer).max() / np.abs(peer).max()))
    skglm_s = time.process_time() - start  # includes numba's compilation at the first call

    summary = gs.noise_sweep_summary(sigmas, errors, fit_levels=min(5, len(sigmas)))
    summary["median_snr"] = data.snr().cpu().reshape(args.noise_levels, -1).median(-1) \
        .values.tolist()
    summary["reference_vs_batched_float32_rel_diff"] = reference_rel_diff
    summary["reference_instances"] = args.reference_instances
    summary["group_lasso_vs_skglm"] = {"max_rel_coef_diff": max(diffs) if diffs else None,
                                       "instances": len(diffs)}
    wall_s = time.perf_counter() - wall_start
    record = {"topic": "group_sparsity", "quick": args.quick, "wall_s": wall_s,
              "device": str(device), "torch": torch.__version__, "setting": setting,
              "times_s": times | {"skglm_s": skglm_s}, "per_instance": per_instance,
              **summary, "errors": {name: e.tolist() for name, e in errors.items()}}
    out_dir = ROOT / "_build" / "bench" / ("quick" if args.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "group_sparsity.json").write_text(json.dumps(record, indent=1))
    if not args.quick:
        RESULTS.write_text(json.dumps(rounded({"setting": setting, **summary}), indent=1)
                           + "\n")

    print(f"grid {args.noise_levels} noise levels x {args.repetitions} repetitions on {device}"
          f"{' (quick)' if args.quick else ''}; wall {wall_s:.1f} s")
    for name, t in record["times_s"].items():
        print(f"  {name:28s} {t:8.2f} s")
    print(f"  per instance: ours {per_instance['ours_float64_s']:.4f} s (float64), "
          f"{per_instance['ours_float32_s']:.4f} s (float32); conventional reference "
          f"{per_instance['conventional_reference_float32_s']:.2f} s -> speed-up "
          f"{per_instance['speedup_float32']:.0f}x (float32), "
          f"{per_instance['speedup_float64']:.0f}x (float64)")
    print(f"  reference vs batched (float32), selected error: rel. diff {reference_rel_diff:.1e}")
    if diffs:
        print(f"  group lasso vs skglm: max rel coef diff {max(diffs):.2e}")
    for name, m in summary["median_error"].items():
        print(f"  median log2 error {name:14s}", " ".join(f"{math.log2(v):6.2f}" for v in m))
    print("  fraction of instances where DGLNN beats:", summary["fraction_reference_better"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
