"""Unit tests of gradynamics.deq: the implicit layer, its solvers and backward, GD on (A, B)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics.deq as deq
from gradynamics.datasets import load_digits
from gradynamics.verify import finite_difference_gradient

F64 = torch.float64


def problem(m: int = 5, n: int = 12, my: int = 3, seed: int = 0, batch: tuple[int, ...] = ()):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(*batch, m, m, generator=gen, dtype=F64)
    Phi = torch.randn(m, n, generator=gen, dtype=F64)
    B = torch.randn(*batch, my, m, generator=gen, dtype=F64)
    Y = torch.randn(my, n, generator=gen, dtype=F64)
    return A, Phi, B, Y


# ------------------------------------------------------------------ the layer and its solvers
def test_column_softmax_is_column_stochastic_and_matches_scipy() -> None:
    from scipy.special import softmax

    A, *_ = problem()
    S = deq.column_softmax(A)
    torch.testing.assert_close(S, torch.from_numpy(softmax(A.numpy(), axis=0)), rtol=1e-14,
                               atol=1e-15)
    torch.testing.assert_close(S.sum(0), torch.ones(5, dtype=F64), rtol=0, atol=1e-14)
    assert float(torch.linalg.matrix_norm(S, ord=1)) == pytest.approx(1.0, abs=1e-14)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 7), seed=st.integers(0, 1000),
       gamma=st.floats(0.1, 0.95))
def test_solvers_agree_with_numpy_linear_solve(m: int, seed: int, gamma: float) -> None:
    from scipy.special import softmax

    A, Phi, *_ = problem(m=m, n=4, seed=seed)
    S = softmax(A.numpy(), axis=0)
    reference = torch.from_numpy(np.linalg.solve(np.eye(m) - gamma * S, Phi.numpy()))
    for solver in deq.SOLVERS:
        Z = deq.deq_layer(A, Phi, gamma, solver=solver, max_iter=2000, tol=1e-13)
        torch.testing.assert_close(Z, reference, rtol=0, atol=1e-9)
    torch.testing.assert_close(deq.solve_linear(A, Phi, gamma), reference, rtol=1e-12,
                               atol=1e-12)


def test_l1_contraction_is_exactly_gamma_for_nonnegative_features() -> None:
    A, Phi, *_ = problem()
    gamma = 0.8
    exact = deq.solve_linear(A, Phi.abs(), gamma)
    iterates = deq.fixed_point_iterates(A, Phi.abs(), gamma, 30)
    errors = (iterates - exact).abs().sum(dim=(-2, -1))
    torch.testing.assert_close(errors[1:] / errors[:-1], torch.full((30,), gamma, dtype=F64),
                               rtol=1e-9, atol=0)
    # Mixed signs: never more than gamma (the l1 operator norm), typically less.
    iterates = deq.fixed_point_iterates(A, Phi, gamma, 30)
    errors = (iterates - deq.solve_linear(A, Phi, gamma)).abs().sum(dim=(-2, -1))
    assert bool((errors[1:] / errors[:-1] <= gamma + 1e-12).all())


def test_anderson_beats_plain_iteration_and_matches_torchdeq_anderson() -> None:
    from torchdeq.solver import get_solver

    A, Phi, *_ = problem(m=8, n=6)
    GS = 0.95 * deq.column_softmax(A)

    def fn(z):
        return GS @ z + Phi

    plain = deq.fixed_point_solve(fn, torch.zeros_like(Phi), max_iter=2000, tol=1e-12)
    anderson = deq.anderson_solve(fn, torch.zeros_like(Phi), tol=1e-12)
    exact = deq.solve_linear(A, Phi, 0.95)
    assert anderson.n_iter < plain.n_iter / 4
    torch.testing.assert_close(anderson.z, exact, rtol=0, atol=1e-9)
    assert float(anderson.residuals[-1]) < 1e-12
    # torchdeq mixes each sample (row of Z^T) separately. Its Tikhonov term ``lam`` is absolute
    # (ours is scaled by the residuals), so lam must sit far below the squared residuals it
    # should resolve; with lam = 1e-14 it still misses tol = 1e-12 after 100 iterations.
    peer, _, info = get_solver("anderson")(lambda zt: (fn(zt.T)).T, torch.zeros_like(Phi.T),
                                           max_iter=100, tol=1e-12, stop_mode="rel", lam=1e-20)
    assert float(info["rel_lowest"].max()) < 1e-12
    torch.testing.assert_close(peer.T, exact, rtol=0, atol=1e-9)
    assert abs(int(info["nstep"].max()) - anderson.n_iter) <= 5


def test_function_class_any_w_is_reachable() -> None:
    A, Phi, B, _ = problem()
    W = torch.randn(3, 5, dtype=F64)
    B = deq.output_weights_for(W, A, 0.7)
    torch.testing.assert_close(deq.end_to_end_matrix(A, B, 0.7), W, rtol=1e-12, atol=1e-12)
    Z = deq.fixed_point_iterates(A, Phi, 0.7, 200)[-1]  # the DEQ output, by iteration
    torch.testing.assert_close(B @ Z, W @ Phi, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ implicit backward
def test_implicit_gradient_matches_finite_differences_and_unrolled_autograd() -> None:
    A, Phi, B, Y = problem()
    gamma = 0.8

    def loss(A_, Phi_, backward="implicit", solver="linear", max_iter=300):
        Z = deq.deq_layer(A_, Phi_, gamma, solver=solver, backward=backward, max_iter=max_iter)
        return 0.5 * (B @ Z - Y).square().sum()

    grads = {}
    for name, kwargs in {"implicit": {"solver": "anderson"},
                         "unrolled": {"backward": "unrolled"}}.items():
        A_, Phi_ = A.clone().requires_grad_(True), Phi.clone().requires_grad_(True)
        loss(A_, Phi_, **kwargs).backward()
        grads[name] = (A_.grad, Phi_.grad)
    fd_A = finite_difference_gradient(lambda a: loss(a, Phi), A)
    fd_Phi = finite_difference_gradient(lambda p: loss(A, p), Phi)
    for got, ref in zip(grads["implicit"], (fd_A, fd_Phi), strict=True):
        assert float((got - ref).abs().max() / ref.abs().max()) < 1e-7
    for got, ref in zip(grads["implicit"], grads["unrolled"], strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-8)


def test_closed_form_gradients_match_autograd_batched_over_instances() -> None:
    A, Phi, B, Y = problem(batch=(3,))
    gamma = torch.tensor([0.3, 0.6, 0.9], dtype=F64)
    # Reference: torch's own autograd through a dense solve (not our adjoint backward).
    A_, B_ = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    M = torch.eye(5, dtype=F64) - gamma[:, None, None] * torch.softmax(A_, dim=-2)
    (0.5 * (B_ @ torch.linalg.solve(M, Phi) - Y).square().sum()).backward()
    loss, grad_A, grad_B = deq.loss_and_gradients(A, B, Phi, Y, gamma)
    torch.testing.assert_close(grad_A, A_.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grad_B, B_.grad, rtol=1e-9, atol=1e-9)
    direct = torch.stack([0.5 * (B[k] @ deq.solve_linear(A[k], Phi, float(gamma[k])) - Y)
                          .square().sum() for k in range(3)])
    torch.testing.assert_close(loss, direct, rtol=1e-12, atol=0)


def test_shared_a_with_batched_features_sums_the_gradient() -> None:
    A, Phi, *_ = problem()
    Phis = torch.stack([Phi, 2 * Phi])
    A1 = A.clone().requires_grad_(True)
    deq.deq_layer(A1, Phis, 0.5, solver="linear").sum().backward()
    A2 = A.clone().requires_grad_(True)
    torch.linalg.solve(torch.eye(5, dtype=F64) - 0.5 * torch.softmax(A2, 0), Phis).sum().backward()
    torch.testing.assert_close(A1.grad, A2.grad, rtol=1e-12, atol=1e-12)


def test_torchdeq_exact_settings_agree_and_defaults_do_not() -> None:
    A, Phi, B, Y = problem()
    _, reference, _ = deq.loss_and_gradients(A, B, Phi, Y, 0.8)
    exact = {"ift": True, "f_max_iter": 400, "b_max_iter": 400, "f_tol": 1e-15, "b_tol": 1e-15}
    errors = {}
    for name, kwargs in {"exact": exact, "defaults": {}}.items():
        A_ = A.clone().requires_grad_(True)
        Z = deq.torchdeq_fixed_point(A_, Phi, 0.8, **kwargs)
        (0.5 * (B @ Z - Y).square().sum()).backward()
        errors[name] = float((A_.grad - reference).abs().max() / reference.abs().max())
    assert errors["exact"] < 1e-10
    assert errors["defaults"] > 1e-2  # one-step (phantom) gradient: an approximation


# ------------------------------------------------------------------ training and the flow
def test_flow_velocity_matches_a_small_gradient_step() -> None:
    A, Phi, B, Y = problem()
    B = B / 3
    _, grad_A, grad_B = deq.loss_and_gradients(A, B, Phi, Y, 0.6)
    eps = 1e-6
    up = deq.end_to_end_matrix(A - eps * grad_A, B - eps * grad_B, 0.6)
    down = deq.end_to_end_matrix(A + eps * grad_A, B + eps * grad_B, 0.6)
    numeric = (up - down) / (2 * eps)
    closed = deq.flow_velocity(A, B, Phi, Y, 0.6)
    assert float((closed - numeric).abs().max() / numeric.abs().max()) < 1e-7


def test_train_gd_matches_autograd_steps_and_logs() -> None:
    A, Phi, B, Y = problem(m=4, n=10, my=2)
    eta = float(deq.stable_step_size(Phi, 0.5))
    log = deq.train_gd(A, B, Phi, Y, 0.5, eta, 3)
    A_, B_ = A.clone(), B.clone()
    for _ in range(3):
        A_.requires_grad_(True)
        B_.requires_grad_(True)
        U = torch.linalg.inv(torch.eye(4, dtype=F64) - 0.5 * torch.softmax(A_, 0))
        loss = 0.5 * (B_ @ U @ Phi - Y).square().sum()
        gA, gB = torch.autograd.grad(loss, (A_, B_))
        A_, B_ = (A_ - eta * gA).detach(), (B_ - eta * gB).detach()
    torch.testing.assert_close(log.A, A_, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log.B, B_, rtol=1e-12, atol=1e-12)
    assert log.loss.shape == (4,)
    U0 = torch.linalg.inv(torch.eye(4, dtype=F64) - 0.5 * torch.softmax(A, 0))
    assert float(log.sigma_min_U[0]) == pytest.approx(float(torch.linalg.svdvals(U0)[-1]),
                                                      rel=1e-12)
    lam = float(torch.linalg.eigvalsh(Phi @ Phi.T)[0])
    assert float(log.rate_bound[0]) == pytest.approx(
        2 * eta * lam * float(torch.linalg.svdvals(U0)[-1]) ** 2, rel=1e-10)


def test_stable_step_size_and_logged_norms_against_numpy() -> None:
    A, Phi, B, Y = problem(m=4, n=10, my=2, batch=(2,))
    gammas = torch.tensor([0.5, 0.9], dtype=F64)
    lam_max = np.linalg.eigvalsh((Phi @ Phi.T).numpy())[-1]
    expected = 0.5 * (1 - gammas.numpy()) ** 2 / lam_max
    np.testing.assert_allclose(deq.stable_step_size(Phi, gammas).numpy(), expected, rtol=1e-12)
    assert float(deq.stable_step_size(Phi, 0.5, factor=1.0)) == pytest.approx(
        0.25 / lam_max, rel=1e-12)
    log = deq.train_gd(A, B, Phi, Y, gammas, 1e-4, 2)
    S0 = torch.softmax(A, dim=-2).numpy()
    np.testing.assert_allclose(log.sigma_norm2[0].numpy(),
                               np.linalg.norm(S0, ord=2, axis=(-2, -1)), rtol=1e-12)


def test_optimal_loss_and_lambda_min_plus_against_numpy() -> None:
    gen = torch.Generator().manual_seed(3)
    Phi = torch.randn(6, 3, generator=gen, dtype=F64)  # rank 3: Phi Phi^T is singular
    Y = torch.randn(2, 3, generator=gen, dtype=F64)
    eig = np.linalg.eigvalsh((Phi @ Phi.T).numpy())
    assert float(deq.lambda_min_plus(Phi)) == pytest.approx(eig[eig > 1e-9].min(), rel=1e-10)
    Phi2 = torch.randn(3, 9, generator=gen, dtype=F64)
    Y2 = torch.randn(2, 9, generator=gen, dtype=F64)
    sol, *_ = np.linalg.lstsq(Phi2.numpy().T, Y2.numpy().T, rcond=None)
    expected = 0.5 * np.sum((sol.T @ Phi2.numpy() - Y2.numpy()) ** 2)
    assert float(deq.optimal_loss(Phi2, Y2)) == pytest.approx(expected, rel=1e-10)
    assert float(deq.optimal_loss(Phi, Y)) < 1e-20


def test_linear_gd_converges_to_min_distance_interpolant() -> None:
    gen = torch.Generator().manual_seed(4)
    Phi = torch.randn(8, 4, generator=gen, dtype=F64)
    Y, W0 = torch.randn(2, 4, generator=gen, dtype=F64), torch.randn(2, 8, generator=gen,
                                                                      dtype=F64)
    eta = 1 / float(torch.linalg.svdvals(Phi)[0]) ** 2
    W = deq.linear_gd(W0, Phi, Y, eta, 3000)
    torch.testing.assert_close(W, deq.min_distance_interpolant(W0, Phi, Y), rtol=0, atol=1e-8)


def test_fit_log_rate_recovers_an_exponential() -> None:
    t = torch.arange(50, dtype=F64)
    excess = torch.stack([3 * torch.exp(-0.1 * t), 0.5 * torch.exp(-0.02 * t)], dim=1)
    torch.testing.assert_close(deq.fit_log_rate(excess, 5, 40),
                               torch.tensor([0.1, 0.02], dtype=F64), rtol=1e-12, atol=0)


def test_convergence_summary_on_exact_geometric_runs() -> None:
    # Two instances whose excess shrinks by exactly (1 - 2 bound) and (1 - bound) per step:
    # the first beats the bound everywhere, the second sits on it.
    T, bound = 300, torch.tensor([0.05, 0.02], dtype=F64)
    t = torch.arange(T + 1, dtype=F64)[:, None]
    excess = 7.0 * (1 - torch.stack([2 * bound[0], bound[1]])) ** t
    zeros = torch.zeros(T + 1, 2, dtype=F64)
    log = deq.TrainingLog(loss=excess, sigma_min_U=zeros, sigma_norm2=zeros,
                          rate_bound=bound.expand(T + 1, 2), A=zeros, B=zeros)
    summary = deq.convergence_summary(log, excess, floor=1e-2)
    expected_valid = [int(math.ceil(math.log(1e-2) / math.log(1 - r))) for r in (0.1, 0.02)]
    assert summary.valid.tolist() == expected_valid
    torch.testing.assert_close(summary.fitted_rate, -torch.log1p(-torch.tensor(
        [0.1, 0.02], dtype=F64)), rtol=1e-12, atol=0)
    torch.testing.assert_close(summary.min_bound, bound, rtol=0, atol=0)
    assert float(summary.worst_step_gap[0]) == pytest.approx(-0.05, abs=1e-12)
    assert abs(float(summary.worst_step_gap[1])) < 1e-12
    torch.testing.assert_close(summary.envelope[:, 1], summary.relative[:, 1], rtol=1e-12,
                               atol=0)
    assert float(summary.worst_envelope_ratio[1]) == pytest.approx(1.0, rel=1e-12)
    assert float(summary.worst_envelope_ratio[0]) == pytest.approx(0.9 / 0.95, rel=1e-12)


def test_convergence_summary_of_a_real_gd_run_respects_its_bound() -> None:
    A, Phi, B, Y = problem(m=4, n=10, my=2)
    log = deq.train_gd(A, B / 2, Phi, Y, 0.5, float(deq.stable_step_size(Phi, 0.5)), 400)
    summary = deq.convergence_summary(log, log.loss - deq.optimal_loss(Phi, Y))
    assert float(summary.worst_step_gap) <= 0
    assert float(summary.worst_envelope_ratio) <= 1 + 1e-12
    assert float(summary.fitted_rate) >= float(summary.min_bound)


def test_features_and_digits() -> None:
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(20, 4, generator=gen, dtype=F64) * 3 + 1
    Phi = deq.standardized_features(X)
    torch.testing.assert_close(Phi.mean(1), torch.zeros(4, dtype=F64), rtol=0, atol=1e-14)
    torch.testing.assert_close(Phi.std(1), torch.ones(4, dtype=F64), rtol=1e-14, atol=0)
    R = deq.random_relu_features(X, 30, torch.Generator().manual_seed(6))
    assert R.shape == (30, 20) and bool((R >= 0).all())
    # Reference: the same draws, by hand (V then c from the generator), through numpy.
    gen = torch.Generator().manual_seed(6)
    V = torch.randn(30, 4, generator=gen, dtype=F64).numpy() / 2
    c = torch.randn(30, 1, generator=gen, dtype=F64).numpy()
    expected = np.maximum(V @ X.numpy().T + c, 0) / np.sqrt(30)
    torch.testing.assert_close(R, torch.from_numpy(expected), rtol=1e-13, atol=1e-15)


def digits_flat(test_fraction: float):
    data = load_digits(test_fraction=test_fraction, dtype=F64)
    return data.x_train.flatten(1), data.y_train, data.x_test.flatten(1), data.y_test


# ------------------------------------------------------------------ classifier and memory
def test_classifier_implicit_and_unrolled_gradients_agree_when_converged() -> None:
    X_tr, y_tr, *_ = digits_flat(0.9)
    grads = {}
    for backward in deq.BACKWARDS:
        model = deq.DEQClassifier(64, 8, 10, 0.5, n_iter=60, backward=backward,
                                  generator=torch.Generator().manual_seed(0))
        torch.nn.functional.cross_entropy(model(X_tr), y_tr).backward()
        grads[backward] = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads["implicit"], grads["unrolled"], rtol=0, atol=1e-12)
    model = deq.DEQClassifier(64, 8, 10, 0.5, n_iter=30)
    losses = deq.train_classifier(model, X_tr, y_tr, 20, lr=0.05)
    assert float(losses[-1]) < 0.5 * float(losses[0])


def test_saved_bytes_count_exactly_and_implicit_memory_stays_flat() -> None:
    x = torch.randn(100, dtype=F64, requires_grad=True)
    report = deq.measure_backward_memory(lambda: (x * x).sum())
    assert report.saved_bytes == 100 * 8 and report.peak_bytes is None
    A, Phi, *_ = problem(m=6, n=50)
    A.requires_grad_(True)
    saved = {}
    for backward in deq.BACKWARDS:
        saved[backward] = [deq.measure_backward_memory(
            lambda b=backward, k=k: deq.deq_layer(A, Phi, 0.5, solver="fixed_point",
                                                  backward=b, max_iter=k, tol=0.0).sum()
        ).saved_bytes for k in (5, 10, 20)]
    assert saved["implicit"][0] == saved["implicit"][-1]
    assert saved["unrolled"][2] - saved["unrolled"][1] == 10 * 6 * 50 * 8


# ------------------------------------------------------------------ input validation
_A, _PHI, _B, _Y = problem()


def _log():
    return deq.train_gd(_A, _B, _PHI, _Y, 0.5, 1e-3, 3)


# One parametrised case per public entry point (plus a few second cases), each anchored to
# the name of the argument the caller passed.
ERROR_CASES = {
    "column_softmax": (lambda: deq.column_softmax(torch.tensor([[0.0, math.nan], [1.0, 2.0]])),
                       r"^A: contains 1 NaN"),
    "solve_linear": (lambda: deq.solve_linear(_A, _PHI, torch.tensor([0.5, 1.5], dtype=F64)),
                     r"^gamma: expected every entry in \(0, 1\)"),
    "solve_linear-normalizer": (lambda: deq.solve_linear(_A[:, :4], _PHI, 0.5),
                                r"^A: expected square matrices"),
    "end_to_end_matrix": (lambda: deq.end_to_end_matrix(_A, _B[:, :2], 0.5),
                          r"^B: expected 5 columns"),
    "output_weights_for": (lambda: deq.output_weights_for(torch.zeros(2, 3, dtype=F64), _A, 0.5),
                           r"^W: expected 5 columns"),
    "fixed_point_iterates": (lambda: deq.fixed_point_iterates(_A, _PHI, 0.5, 0),
                             r"^n_iter: expected an integer >= 1"),
    "fixed_point_iterates-z0": (lambda: deq.fixed_point_iterates(_A, _PHI, 0.5, 3, _PHI[:2]),
                                r"^z0: expected shape \(5, 12\)"),
    "fixed_point_solve": (lambda: deq.fixed_point_solve(lambda z: z, _PHI, max_iter=0),
                          r"^max_iter: expected an integer >= 1"),
    "anderson_solve": (lambda: deq.anderson_solve(lambda z: z, _PHI, memory=1),
                       r"^memory: expected an integer >= 2"),
    "anderson_solve-fn": (lambda: deq.anderson_solve(None, _PHI), r"^fn: expected a callable"),
    "deq_layer": (lambda: deq.deq_layer(_A, _PHI[:4], 0.5), r"^Phi: expected 5 rows"),
    "deq_layer-gamma": (lambda: deq.deq_layer(_A, _PHI, 1.0),
                        r"^gamma: expected a number in \(0, 1\)"),
    "deq_layer-solver": (lambda: deq.deq_layer(_A, _PHI, 0.5, solver="newton"),
                         r"^solver: expected one of"),
    "deq_layer-backward": (lambda: deq.deq_layer(_A, _PHI, 0.5, backward="phantom"),
                           r"^backward: expected one of"),
    "deq_layer-dtype": (lambda: deq.deq_layer(_A, _PHI.float(), 0.5),
                        r"^Phi: dtype torch.float32 differs"),
    "torchdeq_fixed_point": (lambda: deq.torchdeq_fixed_point(_A, _PHI[None], 0.5),
                             r"^Phi: expected 2 dimensions"),
    "torchdeq_fixed_point-gamma": (
        lambda: deq.torchdeq_fixed_point(_A, _PHI, torch.tensor([0.5, 0.6], dtype=F64)),
        r"^gamma: expected one number in \(0, 1\)"),
    "standardized_features": (lambda: deq.standardized_features(torch.ones(5, 2, dtype=F64)),
                              r"^X: a column is constant"),
    "random_relu_features": (
        lambda: deq.random_relu_features(torch.ones(5, 2, dtype=F64), 0, torch.Generator()),
        r"^width: expected an integer >= 1"),
    "loss_and_gradients": (lambda: deq.loss_and_gradients(_A, _B, _PHI, _Y[:2], 0.5),
                           r"^Y: expected 3 rows"),
    "flow_velocity": (lambda: deq.flow_velocity(_A, _B, _PHI, _Y[:, :5], 0.5),
                      r"^Y: expected 12 columns"),
    "optimal_loss": (lambda: deq.optimal_loss(_PHI, _Y[:, :3]), r"^Y: expected 12 columns"),
    "lambda_min_plus": (lambda: deq.lambda_min_plus(_PHI, rtol=-1.0), r"^rtol: expected > 0"),
    "stable_step_size": (lambda: deq.stable_step_size(_PHI, 0.5, factor=0.0),
                         r"^factor: expected > 0"),
    "train_gd": (lambda: deq.train_gd(_A, _B, _PHI, _Y, 0.5, -1.0, 10),
                 r"^step_size: expected > 0"),
    "train_gd-n_steps": (lambda: deq.train_gd(_A, _B, _PHI, _Y, 0.5, 0.1, 0),
                         r"^n_steps: expected an integer >= 1"),
    "train_gd-dtype": (lambda: deq.train_gd(_A, _B.float(), _PHI, _Y, 0.5, 0.1, 3),
                       r"^B: dtype torch.float32 differs from A"),
    "linear_gd": (lambda: deq.linear_gd(torch.zeros(3, 4, dtype=F64), _PHI, _Y, 0.1, 5),
                  r"^W0: expected shape \(3, 5\)"),
    "min_distance_interpolant": (
        lambda: deq.min_distance_interpolant(torch.zeros(3, 5, dtype=F64), _PHI, _Y[:, :2]),
        r"^Y: expected 12 columns"),
    "fit_log_rate": (lambda: deq.fit_log_rate(torch.ones(10, dtype=F64), 0, 20),
                     r"^stop: expected an integer in"),
    "fit_log_rate-excess": (lambda: deq.fit_log_rate(torch.zeros(10, dtype=F64), 0, 5),
                            r"^excess: expected positive values"),
    "convergence_summary": (lambda: deq.convergence_summary(_log(), torch.ones(4, 2, dtype=F64)),
                            r"^excess: expected shape \(4,\)"),
    "convergence_summary-log": (lambda: deq.convergence_summary(None, torch.ones(4, dtype=F64)),
                                r"^log: expected a TrainingLog"),
    "DEQClassifier": (lambda: deq.DEQClassifier(64, 8, 10, 0.5, 10, backward="phantom"),
                      r"^backward: expected one of"),
    "DEQClassifier-forward": (lambda: deq.DEQClassifier(5, 4, 2, 0.5, 5)(_PHI),
                              r"^X: expected shape \(n, 5\)"),
    "train_classifier": (lambda: deq.train_classifier(deq.DEQClassifier(5, 4, 2, 0.5, 5), _PHI.T,
                                                      torch.zeros(3, dtype=torch.long), 5),
                         r"^y: expected shape \(12,\)"),
    "train_classifier-labels": (
        lambda: deq.train_classifier(deq.DEQClassifier(5, 4, 2, 0.5, 5), _PHI.T,
                                     torch.full((12,), 2), 5),
        r"^y: labels must lie in \[0, 1\]"),
    "measure_backward_memory": (
        lambda: deq.measure_backward_memory(lambda: _PHI.clone().requires_grad_(True) * 2),
        r"^closure: expected a scalar tensor loss"),
}


@pytest.mark.parametrize("entry", sorted(ERROR_CASES))
def test_public_entry_points_reject_bad_input(entry: str) -> None:
    call, pattern = ERROR_CASES[entry]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_every_public_function_has_an_error_case() -> None:
    functions = {name for name in deq.__all__ if callable(getattr(deq, name))
                 and not isinstance(getattr(deq, name), type)} | {"DEQClassifier"}
    covered = {entry.split("-")[0] for entry in ERROR_CASES}
    assert functions <= covered, sorted(functions - covered)
