"""Unit tests of gradynamics.deq: the implicit layer, its solvers and backward, GD on (A, B)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics.deq as deq
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
def test_column_softmax_is_column_stochastic_and_matches_definition() -> None:
    A, *_ = problem()
    S = deq.column_softmax(A)
    by_hand = A.exp() / A.exp().sum(dim=0, keepdim=True)
    torch.testing.assert_close(S, by_hand, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(S.sum(0), torch.ones(5, dtype=F64), rtol=0, atol=1e-14)
    assert float(torch.linalg.matrix_norm(S, ord=1)) == pytest.approx(1.0, abs=1e-14)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 7), seed=st.integers(0, 1000),
       gamma=st.floats(0.1, 0.95))
def test_solvers_agree_with_numpy_linear_solve(m: int, seed: int, gamma: float) -> None:
    A, Phi, *_ = problem(m=m, n=4, seed=seed)
    S = (A.exp() / A.exp().sum(0)).numpy()
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
    peer, _, _ = get_solver("anderson")(lambda zt: (fn(zt.T)).T, torch.zeros_like(Phi.T),
                                        max_iter=100, tol=1e-12, stop_mode="rel", lam=1e-14)
    # torchdeq mixes each sample (row of Z^T) separately and stalls near 1e-8 in float64.
    torch.testing.assert_close(peer.T, exact, rtol=0, atol=1e-6)


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
    A_, B_ = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    Z = deq.deq_layer(A_, Phi, gamma, solver="fixed_point", max_iter=2000, tol=1e-14)
    (0.5 * (B_ @ Z - Y).square().sum()).backward()
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
    reference = deq.loss_and_gradients(A, B, Phi, Y, 0.8)[1]
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


def test_features_and_digits() -> None:
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(20, 4, generator=gen, dtype=F64) * 3 + 1
    Phi = deq.standardized_features(X)
    torch.testing.assert_close(Phi.mean(1), torch.zeros(4, dtype=F64), rtol=0, atol=1e-14)
    torch.testing.assert_close(Phi.std(1), torch.ones(4, dtype=F64), rtol=1e-14, atol=0)
    R = deq.random_relu_features(X, 30, gen)
    assert R.shape == (30, 20) and bool((R >= 0).all())
    X_tr, y_tr, X_te, y_te = deq.load_digits_split(n_test=300)
    assert X_tr.shape == (1497, 64) and X_te.shape == (300, 64)
    assert set(y_tr.tolist()) == set(range(10))
    torch.testing.assert_close(X_tr.mean(0), torch.zeros(64, dtype=F64), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ classifier and memory
def test_classifier_implicit_and_unrolled_gradients_agree_when_converged() -> None:
    X_tr, y_tr, *_ = deq.load_digits_split(n_test=1600)
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
def test_layer_and_solver_errors() -> None:
    A, Phi, B, Y = problem()
    with pytest.raises(ValueError, match=r"^A: expected square matrices"):
        deq.deq_layer(A[:, :4], Phi, 0.5)
    with pytest.raises(ValueError, match=r"^Phi: expected 5 rows"):
        deq.deq_layer(A, Phi[:4], 0.5)
    with pytest.raises(ValueError, match=r"^gamma: expected a number in \(0, 1\)"):
        deq.deq_layer(A, Phi, 1.0)
    with pytest.raises(ValueError, match=r"^gamma: expected every entry in \(0, 1\)"):
        deq.solve_linear(A, Phi, torch.tensor([0.5, 1.5], dtype=F64))
    with pytest.raises(ValueError, match=r"^solver: expected one of"):
        deq.deq_layer(A, Phi, 0.5, solver="newton")
    with pytest.raises(ValueError, match=r"^backward: expected one of"):
        deq.deq_layer(A, Phi, 0.5, backward="phantom")
    with pytest.raises(ValueError, match=r"^Phi: dtype torch.float32 differs"):
        deq.deq_layer(A, Phi.float(), 0.5)
    with pytest.raises(ValueError, match=r"^A: contains 1 NaN"):
        deq.column_softmax(torch.tensor([[0.0, math.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"^max_iter: expected an integer >= 1"):
        deq.fixed_point_solve(lambda z: z, Phi, max_iter=0)
    with pytest.raises(ValueError, match=r"^memory: expected an integer >= 2"):
        deq.anderson_solve(lambda z: z, Phi, memory=1)
    with pytest.raises(ValueError, match=r"^fn: expected a callable"):
        deq.anderson_solve(None, Phi)
    with pytest.raises(ValueError, match=r"^n_iter: expected an integer >= 1"):
        deq.fixed_point_iterates(A, Phi, 0.5, 0)
    with pytest.raises(ValueError, match=r"^W: expected 5 columns"):
        deq.output_weights_for(torch.zeros(2, 3, dtype=F64), A, 0.5)
    with pytest.raises(ValueError, match=r"^B: expected 5 columns"):
        deq.end_to_end_matrix(A, B[:, :2], 0.5)
    with pytest.raises(ValueError, match=r"^Phi: expected 2 dimensions"):
        deq.torchdeq_fixed_point(A, Phi[None], 0.5)


def test_training_and_measurement_errors() -> None:
    A, Phi, B, Y = problem()
    with pytest.raises(ValueError, match=r"^Y: expected 3 rows"):
        deq.loss_and_gradients(A, B, Phi, Y[:2], 0.5)
    with pytest.raises(ValueError, match=r"^Y: expected 12 columns"):
        deq.flow_velocity(A, B, Phi, Y[:, :5], 0.5)
    with pytest.raises(ValueError, match=r"^step_size: expected > 0"):
        deq.train_gd(A, B, Phi, Y, 0.5, -1.0, 10)
    with pytest.raises(ValueError, match=r"^n_steps: expected an integer >= 1"):
        deq.train_gd(A, B, Phi, Y, 0.5, 0.1, 0)
    with pytest.raises(ValueError, match=r"^factor: expected > 0"):
        deq.stable_step_size(Phi, 0.5, factor=0.0)
    with pytest.raises(ValueError, match=r"^rtol: expected > 0"):
        deq.lambda_min_plus(Phi, rtol=-1.0)
    with pytest.raises(ValueError, match=r"^Y: expected 12 columns"):
        deq.optimal_loss(Phi, Y[:, :3])
    with pytest.raises(ValueError, match=r"^W0: expected shape \(3, 5\)"):
        deq.linear_gd(torch.zeros(3, 4, dtype=F64), Phi, Y, 0.1, 5)
    with pytest.raises(ValueError, match=r"^Y: expected 12 columns"):
        deq.min_distance_interpolant(torch.zeros(3, 5, dtype=F64), Phi, Y[:, :2])
    with pytest.raises(ValueError, match=r"^stop: expected an integer in"):
        deq.fit_log_rate(torch.ones(10, dtype=F64), 0, 20)
    with pytest.raises(ValueError, match=r"^excess: expected positive values"):
        deq.fit_log_rate(torch.zeros(10, dtype=F64), 0, 5)
    with pytest.raises(ValueError, match=r"^X: a column is constant"):
        deq.standardized_features(torch.ones(5, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"^width: expected an integer >= 1"):
        deq.random_relu_features(torch.ones(5, 2, dtype=F64), 0, torch.Generator())
    with pytest.raises(ValueError, match=r"^n_test: expected fewer than 1797"):
        deq.load_digits_split(n_test=5000)
    with pytest.raises(ValueError, match=r"^backward: expected one of"):
        deq.DEQClassifier(64, 8, 10, 0.5, 10, backward="phantom")
    with pytest.raises(ValueError, match=r"^y: expected shape \(12,\)"):
        deq.train_classifier(deq.DEQClassifier(5, 4, 2, 0.5, 5), Phi.T, torch.zeros(3), 5)
    with pytest.raises(ValueError, match=r"^closure: expected a scalar tensor loss"):
        deq.measure_backward_memory(lambda: Phi.clone().requires_grad_(True) * 2)
