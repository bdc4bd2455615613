"""Full-size comparison grid of the group-sparsity chapter (Li, Nguyen, Hegde, Wong, ICLR 2023).

The authors' ``Comparisons`` setting: Gaussian design, n = 150, p = 300, groups of 4, the first
three groups equal to 10, noise sigma in exp(linspace(0, 3, 10)), 30 repetitions. Methods:
DGLNN by Algorithm 2 (switch at epoch 200, 600 epochs, eta = 1e-3, epoch chosen by validation),
scikit-learn's lasso path and the batched FISTA group lasso (penalties chosen by validation).
It also times the conventional reference (one module per group, float32, autograd, the
authors' loop style) per instance, and checks the group lasso against skglm.

Run from the repository root (``make bench`` runs it with the defaults)::

    python benchmarks/bench_group_sparsity.py [--repetitions 30] [--noise-levels 10]

Prints the wall times and key numbers, writes ``_build/bench/group_sparsity.json`` (everything)
and ``book/group_sparsity/full_size_results.json`` (the summary the chapter loads).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import numpy as np
import torch

import gradynamics as gd
from gradynamics import group_sparsity as gs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def clock(device: torch.device) -> float:
    """Wall time (after a synchronize) on CUDA; process CPU time on the CPU, which a shared,
    loaded machine does not inflate (run single-threaded: OMP_NUM_THREADS=1)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--noise-levels", type=int, default=10)
    parser.add_argument("--reference-instances", type=int, default=2)
    parser.add_argument("--skglm-instances", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    device = gd.get_device()
    generator = gd.seed_everything(args.seed)
    p, b = 300, 4
    w_star = torch.zeros(p, dtype=torch.float64)
    w_star[:12] = 10.0
    sigmas = np.exp(np.linspace(0, 3, args.noise_levels)).tolist()
    data = gs.make_data(150, p, b, w_star, sigmas, repetitions=args.repetitions,
                        design="gaussian", generator=generator).to(device=device)
    shape = (args.noise_levels, args.repetitions)
    out: dict = {"setting": {"n": 150, "p": p, "group_size": b, "support_value": 10.0,
                             "noise_levels": sigmas, "repetitions": args.repetitions,
                             "device": str(device), "dtype": "float64",
                             "clock": "wall" if device.type == "cuda" else "process CPU time",
                             "torch": torch.__version__}}
    times, errors = {}, {}

    start = clock(device)
    run = gs.train_dglnn(data, "alg2", 1e-3, 600, switch_epoch=200)
    times["dglnn_batched_s"] = clock(device) - start
    errors["DGLNN"] = run.best_error().cpu()
    start = clock(device)
    run32 = gs.train_dglnn(data.to(torch.float32), "alg2", 1e-3, 600, switch_epoch=200)
    times["dglnn_batched_float32_s"] = clock(device) - start
    errors["DGLNN float32"] = run32.best_error().double().cpu()
    start = clock(device)
    errors["group lasso"] = (gs.group_lasso_validation(data) - data.w_star).square().sum(-1).cpu()
    times["group_lasso_batched_s"] = clock(device) - start
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
        ref = gs.conventional_reference_train(*tensors, group_size=b, lr=1e-3, epochs=600,
                                              switch_epoch=200)
        ref_times.append(clock(torch.device("cpu")) - start)
        best = int(np.argmin(ref["val_mse"]))
        ref_errors.append(ref["est_err"][best])
    batch = data.batch
    per_instance = {"ours_float64_s": times["dglnn_batched_s"] / batch,
                    "ours_float32_s": times["dglnn_batched_float32_s"] / batch,
                    "conventional_reference_float32_s": float(np.mean(ref_times))}
    per_instance["speedup_float64"] = (per_instance["conventional_reference_float32_s"]
                                       / per_instance["ours_float64_s"])
    per_instance["speedup_float32"] = (per_instance["conventional_reference_float32_s"]
                                       / per_instance["ours_float32_s"])
    ref_ours = errors["DGLNN float32"][: args.reference_instances].numpy()
    per_instance["reference_vs_batched_float32_rel_diff"] = float(
        np.max(np.abs(np.array(ref_errors) / ref_ours - 1)))

    # The batched FISTA group lasso against skglm at the validation-chosen penalties.
    correlation = (data.y.unsqueeze(1) @ data.X).squeeze(1) / data.n_samples.unsqueeze(-1)
    lam_max = gs.group_norms(correlation, b).amax(-1).cpu().numpy()
    start = time.perf_counter()
    gs.group_lasso_skglm(np.eye(8)[:, :8], np.ones(8), b, 0.1)          # compile numba
    skglm_compile_s = time.perf_counter() - start
    chosen = gs.group_lasso_validation(data).cpu().numpy()
    diffs = []
    for k in range(min(args.skglm_instances, batch)):
        X_k, y_k = data.X[k].cpu().numpy(), data.y[k].cpu().numpy()
        grid = lam_max[k] * np.geomspace(1.0, 1e-2, 10)
        path = gs.group_lasso_path(data.select([k]), torch.as_tensor(grid), 100).squeeze(1)
        idx = int(np.argmin(np.abs(path.cpu().numpy() - chosen[k]).sum(-1)))
        peer = gs.group_lasso_skglm(X_k, y_k, b, float(grid[idx]))
        diffs.append(float(np.abs(chosen[k] - peer).max() / np.abs(peer).max()))
    out["group_lasso_vs_skglm"] = {"max_rel_coef_diff": max(diffs), "instances": len(diffs),
                                   "skglm_compile_s": skglm_compile_s}

    medians = {name: e.reshape(shape).median(-1).values.tolist() for name, e in errors.items()}
    snr = data.snr().cpu().reshape(shape).median(-1).values.tolist()
    wins = {name: float((errors["DGLNN"] < e).double().mean())
            for name, e in errors.items() if name not in ("DGLNN", "DGLNN float32")}
    log_sigma = np.log(sigmas)
    slopes = {name: float(np.polyfit(log_sigma[:5], np.log(np.array(m[:5])), 1)[0])
              for name, m in medians.items()}
    summary = {"setting": out["setting"], "median_error": medians, "median_snr": snr,
               "fraction_dglnn_better": wins, "loglog_slope_low_noise": slopes,
               "per_instance": per_instance, "times_s": times,
               "group_lasso_vs_skglm": out["group_lasso_vs_skglm"]}
    out.update(summary)
    out["errors"] = {name: e.tolist() for name, e in errors.items()}
    (ROOT / "_build" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "_build" / "bench" / "group_sparsity.json").write_text(json.dumps(out, indent=1))
    (ROOT / "book" / "group_sparsity" / "full_size_results.json").write_text(
        json.dumps(summary, indent=1) + "\n")
    print(f"grid {args.noise_levels} noise levels x {args.repetitions} repetitions on {device}")
    for name, t in times.items():
        print(f"  {name:28s} {t:8.2f} s")
    print(f"  per instance: ours {per_instance['ours_float64_s']:.4f} s (float64), "
          f"{per_instance['ours_float32_s']:.4f} s (float32); conventional reference "
          f"{per_instance['conventional_reference_float32_s']:.2f} s -> speed-up "
          f"{per_instance['speedup_float32']:.0f}x (float32), "
          f"{per_instance['speedup_float64']:.0f}x (float64)")
    print(f"  group lasso vs skglm: max rel coef diff {max(diffs):.2e}")
    for name, m in medians.items():
        print(f"  median log2 error {name:14s}", " ".join(f"{math.log2(v):6.2f}" for v in m))
    print("  fraction of instances where DGLNN beats:", wins)


if __name__ == "__main__":
    main()
