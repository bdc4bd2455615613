"""Benchmark: the DEQ chapter's gamma sweep to convergence and the digits backward cost.

Runs, on the library (``gradynamics.deq``) and the chapter's problems:

- the gamma sweep of Experiment 4 (narrow layer, m = 5 < n = 40, m_y = 8, the theorem's step
  size ``0.5 (1 - gamma)^2 / lambda_max``) for gamma in {0.5, 0.9, 0.95, 0.99}, batched into one
  ``train_gd`` program and run until every arm's excess loss is below 1e-8 of its start
  (3 * 10^5 steps): steps needed, fitted rate, rate bound, worst step against the bound;
- the over-parameterised layer of Experiment 1 (m = 30 random ReLU features, n = 10,
  gamma = 0.5) run to 1e-8;
- the digits classifier of Experiment 5 at width 64: test accuracy of the implicit and the
  unrolled backward (K = 30, 200 Adam steps), then saved-for-backward bytes, wall time and
  (on CUDA) peak memory of one forward + backward pass for K = 10 ... 640.

It prints the device, the wall time of each part and the key numbers, and writes
``_build/bench/deq.json``. ``--quick`` runs tiny sizes through the same code and writes
``_build/bench/quick/deq.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _record import write_timed_record

from gradynamics import deq
from gradynamics.datasets import load_digits
from gradynamics.runtime import get_device, seed_everything, time_call

ROOT = Path(__file__).resolve().parents[1]
DTYPE = torch.float64


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _randn(generator: torch.Generator, device: torch.device, *shape: int,
           scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.randn(*shape, generator=generator, dtype=DTYPE)).to(device)


def _steps_to(relative: torch.Tensor, level: float) -> list[int | None]:
    """First step at which each arm's relative excess is below ``level`` (None if never)."""
    below = relative < level
    first = below.long().argmax(dim=0)
    return [int(f) if bool(b) else None for f, b in zip(first, below.any(dim=0), strict=True)]


def gamma_sweep(quick: bool, device: torch.device) -> dict:
    """Narrow layer, one batched GD program over gamma, run until every arm reaches 1e-8."""
    gen = seed_everything(21)
    gammas = [0.5, 0.9] if quick else [0.5, 0.9, 0.95, 0.99]
    n_steps = 300 if quick else 300_000
    Phi = deq.standardized_features(_randn(gen, device, 40, 5))
    Y = _randn(gen, device, 8, 5) @ Phi + 0.5 * _randn(gen, device, 8, 40)
    k = len(gammas)
    A0 = _randn(gen, device, 5, 5).expand(k, 5, 5)
    B0 = _randn(gen, device, 8, 5, scale=5**-0.5).expand(k, 8, 5)
    g = torch.tensor(gammas, dtype=DTYPE, device=device)
    eta = deq.stable_step_size(Phi, g)
    log = deq.train_gd(A0, B0, Phi, Y, g, eta, n_steps)
    summary = deq.convergence_summary(log, log.loss - deq.optimal_loss(Phi, Y))
    return {"gammas": gammas, "n_steps": n_steps, "step_size": eta.tolist(),
            "steps_to_1e-8": _steps_to(summary.relative, 1e-8),
            "final_relative_excess": summary.relative[-1].tolist(),
            "fitted_rate": summary.fitted_rate.tolist(),
            "rate_bound": summary.min_bound.tolist(),
            "worst_step_gap": summary.worst_step_gap.tolist(),
            "min_sigma_min_U": log.sigma_min_U.amin(dim=0).tolist()}


def overparameterised(quick: bool, device: torch.device) -> dict:
    """m = 30 random ReLU features of n = 10 points, gamma = 0.5, run to 1e-8."""
    gen = seed_everything(22)
    n_steps = 300 if quick else 60_000
    Phi = deq.random_relu_features(_randn(gen, device, 10, 5), 30, gen)
    Y = _randn(gen, device, 2, 10)
    A0, B0 = _randn(gen, device, 30, 30), _randn(gen, device, 2, 30, scale=30**-0.5)
    log = deq.train_gd(A0, B0, Phi, Y, 0.5, deq.stable_step_size(Phi, 0.5), n_steps)
    summary = deq.convergence_summary(log, log.loss - deq.optimal_loss(Phi, Y))
    kappa = float(torch.linalg.svdvals(Phi)[0] ** 2 / deq.lambda_min_plus(Phi))
    return {"n_steps": n_steps, "condition_number": kappa,
            "steps_to_1e-8": _steps_to(summary.relative[:, None], 1e-8)[0],
            "final_relative_excess": float(summary.relative[-1]),
            "fitted_rate": float(summary.fitted_rate), "rate_bound": float(summary.min_bound),
            "worst_step_gap": float(summary.worst_step_gap)}


def digits_cost(quick: bool, device: torch.device) -> dict:
    """Accuracy of both backward modes, then memory and time of one pass against K."""
    data = load_digits(dtype=DTYPE, device=device)
    X_train, y_train = data.x_train.flatten(1), data.y_train
    X_test, y_test = data.x_test.flatten(1), data.y_test
    if quick:
        X_train, y_train, X_test, y_test = X_train[:200], y_train[:200], X_test[:100], y_test[:100]
    width, train_steps = (8, 5) if quick else (64, 200)
    counts = [5, 10] if quick else [10, 20, 40, 80, 160, 320, 640]
    out: dict = {"width": width, "train_steps": train_steps, "K": counts, "accuracy": {},
                 "saved_bytes": {}, "peak_bytes": {}, "seconds": {}}
    for backward in deq.BACKWARDS:
        model = deq.DEQClassifier(64, width, 10, 0.5, n_iter=30, backward=backward,
                                  generator=torch.Generator().manual_seed(0)).to(device)
        deq.train_classifier(model, X_train, y_train, train_steps, lr=0.02)
        with torch.no_grad():
            correct = (model(X_test).argmax(1) == y_test).double().mean()
        out["accuracy"][backward] = float(correct)
        saved, peak, seconds = [], [], []
        for K in counts:
            model = deq.DEQClassifier(64, width, 10, 0.5, n_iter=K, backward=backward).to(device)

            def loss(model=model):
                return torch.nn.functional.cross_entropy(model(X_train), y_train)

            memory = deq.measure_backward_memory(loss, device)
            _, best = time_call(lambda loss=loss: loss().backward(), device=device,
                                repeats=1 if quick else 3)
            saved.append(memory.saved_bytes)
            peak.append(memory.peak_bytes)
            seconds.append(best)
        out["saved_bytes"][backward] = saved
        out["peak_bytes"][backward] = peak
        out["seconds"][backward] = seconds
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` for a tiny smoke-test size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    device = get_device()
    numbers, wall = {}, {}
    for name, part in (("gamma_sweep", gamma_sweep), ("overparameterised", overparameterised),
                       ("digits", digits_cost)):
        start = _clock(device)
        numbers[name] = part(args.quick, device)
        wall[name] = _clock(device) - start
    sweep, over, digits = numbers["gamma_sweep"], numbers["overparameterised"], numbers["digits"]
    print(f"deq benchmark on {device} ({'quick' if args.quick else 'full'})")
    print(f"  gamma sweep, {sweep['n_steps']} GD steps (narrow layer m = 5 < n = 40):")
    for k, gamma in enumerate(sweep["gammas"]):
        print(f"    gamma {gamma:.2f}: step {sweep['step_size'][k]:.1e}, steps to 1e-8 "
              f"{sweep['steps_to_1e-8'][k]}, fitted rate {sweep['fitted_rate'][k]:.2e} "
              f"(bound {sweep['rate_bound'][k]:.2e}), worst step gap "
              f"{sweep['worst_step_gap'][k]:.1e}")
    print(f"  over-parameterised (kappa {over['condition_number']:.0f}): steps to 1e-8 "
          f"{over['steps_to_1e-8']}, rate {over['fitted_rate']:.2e} "
          f"(bound {over['rate_bound']:.2e})")
    print(f"  digits, width {digits['width']}: accuracy {digits['accuracy']}")
    for k, K in enumerate(digits["K"]):
        ratio = digits["saved_bytes"]["unrolled"][k] / digits["saved_bytes"]["implicit"][k]
        times = digits["seconds"]["implicit"][k] / digits["seconds"]["unrolled"][k]
        print(f"    K = {K:4d}: saved bytes unrolled / implicit {ratio:6.1f}, "
              f"time implicit / unrolled {times:.2f}")
    write_timed_record("deq", wall, numbers, args.quick, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
