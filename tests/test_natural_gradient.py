"""Unit tests of gradynamics.natural_gradient (charts, Fisher metrics, flows, iterations)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics.natural_gradient as ng

F64 = torch.float64


def random_simplex(shape: tuple[int, ...], n_outcomes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(*shape, n_outcomes, generator=gen, dtype=F64) + 0.05
    return u / u.sum(-1, keepdim=True)


@pytest.fixture
def q() -> torch.Tensor:
    return random_simplex((), 6, 0)


# ------------------------------------------------------------------ charts and identities
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_charts_round_trip(n: int, seed: int) -> None:
    p = random_simplex((3,), n + 1, seed)
    torch.testing.assert_close(ng.p_from_eta(ng.eta_from_p(p)), p, rtol=0, atol=1e-14)
    torch.testing.assert_close(ng.p_from_theta(ng.theta_from_p(p)), p, rtol=0, atol=1e-14)
    torch.testing.assert_close(ng.theta_from_eta(ng.eta_from_p(p)), ng.theta_from_p(p))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_fisher_metrics_are_inverse_and_natural_gradient(n: int, seed: int) -> None:
    p, q = random_simplex((2,), n + 1, seed)
    eta, theta = p[:-1], ng.theta_from_p(p)
    eye = torch.eye(n, dtype=F64)
    torch.testing.assert_close(ng.fisher_eta(eta) @ ng.fisher_theta(theta), eye,
                               rtol=0, atol=1e-10)
    grad = ng.grad_loss_eta(eta, q)
    torch.testing.assert_close(grad, ng.fisher_eta(eta) @ (eta - q[:-1]), rtol=1e-10, atol=1e-12)
    natural = torch.linalg.solve(ng.fisher_eta(eta), grad)
    torch.testing.assert_close(natural, ng.natural_gradient(eta, q), rtol=0, atol=1e-10)
    torch.testing.assert_close(ng.grad_loss_theta(theta, q), eta - q[:-1], rtol=0, atol=1e-14)


def test_gradients_match_autograd(q: torch.Tensor) -> None:
    p = random_simplex((), 6, 1)
    eta = p[:-1].clone().requires_grad_(True)
    (g_eta,) = torch.autograd.grad(ng.loss_eta(eta, q), eta)
    torch.testing.assert_close(g_eta, ng.grad_loss_eta(p[:-1], q), rtol=1e-12, atol=1e-12)
    theta = ng.theta_from_p(p).requires_grad_(True)
    (g_theta,) = torch.autograd.grad(ng.loss_theta(theta, q), theta)
    torch.testing.assert_close(g_theta, ng.grad_loss_theta(theta.detach(), q),
                               rtol=1e-12, atol=1e-12)
    hess_v = torch.autograd.functional.hessian(lambda th: ng.loss_theta(th, q), theta.detach())
    torch.testing.assert_close(hess_v, ng.fisher_theta(theta.detach()), rtol=1e-10, atol=1e-12)


def test_losses_agree_across_charts(q: torch.Tensor) -> None:
    p = random_simplex((4,), 6, 2)
    kl = ng.kl_divergence(q, p)
    torch.testing.assert_close(ng.loss_eta(p[..., :-1], q), kl)
    torch.testing.assert_close(ng.loss_theta(ng.theta_from_p(p), q), kl)
    assert float(ng.kl_divergence(q, q)) == 0.0


def test_accurate_kl_forms(q: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(3)
    direction = torch.randn(5, generator=gen, dtype=F64)
    for scale in (1e-2, 1e-9):  # moderate: same as plain formula; tiny: quadratic form
        d = scale * direction
        p = torch.cat([q[:-1] + d, q[-1:] - d.sum(-1, keepdim=True)])
        quad = 0.5 * d @ ng.fisher_eta(q[:-1]) @ d
        kl_eta = ng.kl_from_eta_displacement(q, d)
        theta_d = ng.theta_from_p(p) - ng.theta_from_p(q)
        kl_theta = ng.kl_from_theta_displacement(q, theta_d)
        if scale > 1e-6:
            torch.testing.assert_close(kl_eta, ng.kl_divergence(q, p), rtol=1e-10, atol=0)
            torch.testing.assert_close(kl_theta, ng.kl_divergence(q, p), rtol=1e-10, atol=0)
        else:
            torch.testing.assert_close(kl_eta, quad, rtol=1e-6, atol=0)
            quad_theta = 0.5 * theta_d @ ng.fisher_theta(torch.log(q[:-1] / q[-1])) @ theta_d
            torch.testing.assert_close(kl_theta, quad_theta, rtol=1e-6, atol=0)


def test_affine_dual_maps_preserve_pairing(q: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(4)
    A = torch.randn(5, 5, generator=gen, dtype=F64) + 3 * torch.eye(5, dtype=F64)
    b = torch.randn(5, generator=gen, dtype=F64)
    eta, theta = q[:-1], ng.theta_from_p(q)
    eta_t, theta_t = ng.affine_dual_maps(eta, theta, A, b)
    # <theta~, eta~ - b> = <theta, eta>: the duality pairing is preserved
    torch.testing.assert_close(theta_t @ (eta_t - b), theta @ eta)
    lam = torch.tensor([0.5, 0.5, 1.0, 2.0, 3.0], dtype=F64)
    S = ng.spectral_map(q, lam)
    hess_tilde = torch.linalg.solve(S.T, torch.linalg.solve(S.T, ng.fisher_eta(eta)).T).T
    torch.testing.assert_close(hess_tilde, torch.diag(lam))
    white = ng.whitening_map(q, 2.0)
    torch.testing.assert_close(white.T @ white, ng.fisher_eta(eta) / 2.0)


# ------------------------------------------------------------------ rates and limits
def test_asymptotic_rates_and_whitening(q: torch.Tensor) -> None:
    g_eta = torch.linalg.eigvalsh(ng.fisher_eta(q[:-1]))
    assert ng.asymptotic_rate("ngd", q) == pytest.approx(2.0)
    assert ng.asymptotic_rate("gd_eta", q) == pytest.approx(2 * float(g_eta.min()))
    assert ng.asymptotic_rate("gd_theta", q) == pytest.approx(2 / float(g_eta.max()))
    for c in (0.5, 3.0):
        A = ng.whitening_map(q, c)
        assert ng.asymptotic_rate("gd_eta", q, A) == pytest.approx(2 * c)
        assert ng.asymptotic_rate("gd_theta", q, A) == pytest.approx(2 / c)
    assert ng.stability_limit("ngd", q) == pytest.approx(2.0)
    kappa = float(g_eta.max() / g_eta.min())
    assert ng.best_contraction(q) == pytest.approx((kappa - 1) / (kappa + 1))


def test_integrate_flow_matches_ngd_closed_form_and_rates(q: torch.Tensor) -> None:
    p0 = random_simplex((2,), 6, 5)
    t = torch.linspace(0, 12, 241, dtype=F64)
    result = ng.integrate_flow("ngd", p0, q, t)
    exact = ng.ngd_closed_form(p0, q, t)
    torch.testing.assert_close(result.p, exact, rtol=0, atol=1e-9)
    rates = ng.fit_rate(t, result.kl, window=(1e-10, 1e-4))
    torch.testing.assert_close(rates, torch.full((2,), 2.0, dtype=F64), rtol=1e-3, atol=0)
    predicted = ng.asymptotic_rate("gd_theta", q)
    t_theta = torch.linspace(0, 60 / predicted, 801, dtype=F64)
    slow = ng.integrate_flow("gd_theta", p0, q, t_theta)
    fitted = ng.fit_rate(t_theta, slow.kl, window=(1e-24, 1e-16))
    assert float(((fitted - predicted) / predicted).abs().max()) < 1e-2
    assert bool((slow.kl.diff(dim=0) <= 1e-15).all())  # gradient flow: KL never increases


def test_flow_velocity_matches_integrator_and_discrete_step(q: torch.Tensor) -> None:
    p0 = random_simplex((3,), 6, 8)
    A = ng.whitening_map(q, 2.0)
    for method in ng.METHODS:
        x0 = ng.theta_from_p(p0) if method == "gd_theta" else p0[:, :-1]
        step = ng.discrete_step(method, x0, q, 1e-3, project=False)
        torch.testing.assert_close((step - x0) / 1e-3, ng.flow_velocity(method, x0, q))
        # a short LSODA run moves along the velocity (with the affine preconditioner)
        t = torch.tensor([0.0, 1e-6], dtype=F64)
        end = ng.integrate_flow(method, p0, q, t, A=A).p[-1]
        x1 = ng.theta_from_p(end) if method == "gd_theta" else end[:, :-1]
        # forward difference: truncation error O(h |J v|) ~ 1e-4 relative at h = 1e-6
        torch.testing.assert_close((x1 - x0) / 1e-6, ng.flow_velocity(method, x0, q, A),
                                   rtol=2e-3, atol=1e-6)


def test_fit_rate_recovers_exact_exponential() -> None:
    t = torch.linspace(0, 10, 101, dtype=F64)
    kl = torch.stack([3 * torch.exp(-1.5 * t), torch.exp(-0.5 * t)], dim=1)
    torch.testing.assert_close(ng.fit_rate(t, kl, window=(1e-8, 1.0)),
                               torch.tensor([1.5, 0.5], dtype=F64))
    with pytest.raises(ValueError, match="kl"):
        ng.fit_rate(t, kl, window=(1e-30, 1e-20))


# ------------------------------------------------------------------ discrete time
def test_projection_and_one_step_ngd(q: torch.Tensor) -> None:
    out = ng.project_to_simplex(torch.tensor([[-0.5, 0.9, 0.6]], dtype=F64), tol=1e-3)
    assert bool((out > 0).all()) and float(out.sum()) < 1
    p0 = random_simplex((7,), 6, 6)
    kl = ng.run_iterations("ngd", p0, q, 1.0, 1)
    assert float(kl[1].max()) < 1e-12
    kl_gd = ng.run_iterations("gd_eta", p0, q, torch.tensor([[0.5], [1e-3]], dtype=F64), 3,
                              project=False)
    assert kl_gd.shape == (4, 2, 7)
    assert bool(torch.isinf(kl_gd[-1, 0]).any())  # a huge GD-eta step leaves the simplex


def test_stability_limit_separates_convergence_from_divergence(q: torch.Tensor) -> None:
    p0 = torch.cat([q[:-1] + 1e-7, q[-1:] - 5e-7])
    for method in ng.METHODS:
        limit = ng.stability_limit(method, q)
        kl = ng.run_iterations(method, p0, q, torch.tensor([0.95 * limit, 1.05 * limit],
                                                           dtype=F64), 150, project=False)
        assert float(kl[-1, 0]) < float(kl[0, 0])
        assert float(kl[-1, 1]) > float(kl[0, 0])


def test_rise_time() -> None:
    excess = torch.tensor([[5.0, 5.0], [0.5, 0.5], [2.0, 0.5], [0.5, 0.5]])
    torch.testing.assert_close(ng.rise_time(excess, 1.0), torch.tensor([3, 1]))
    torch.testing.assert_close(ng.rise_time(torch.full((4, 1), 3.0), 1.0), torch.tensor([4]))


def test_minibatch_ngd_noise_floor(q: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(7)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: avoid thread oversubscription on a shared CPU
    try:
        kl = ng.minibatch_ngd(q, q.expand(100, -1).clone(), 0.5, 400, 120, generator=gen)
    finally:
        torch.set_num_threads(threads)
    measured = float(kl[40:].mean())
    assert measured == pytest.approx(ng.ngd_noise_floor(5, 0.5, 400), rel=0.2)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("func", "args", "name"), [
    (ng.kl_divergence, ([0.5, 0.5, 0.0], [0.2, 0.3, 0.5]), "q"),
    (ng.kl_divergence, ([0.2, 0.3, 0.5], [0.5, 0.6, 0.1]), "p"),
    (ng.kl_divergence, ([0.2, float("nan"), 0.8], [0.2, 0.3, 0.5]), "q"),
    (ng.theta_from_p, ([1.0],), "p"),
    (ng.p_from_eta, ([0.7, 0.4],), "eta"),
    (ng.whitening_map, ([0.2, 0.3, 0.5], 0.0), "c"),
    (ng.spectral_map, ([0.2, 0.3, 0.5], [1.0, -1.0]), "eigenvalues"),
    (ng.asymptotic_rate, ("adam", [0.2, 0.3, 0.5]), "method"),
    (ng.asymptotic_rate, ("gd_eta", [0.2, 0.3, 0.5], [[1.0, 2.0], [2.0, 4.0]]), "A"),
    (ng.asymptotic_rate, ("gd_eta", [0.2, 0.3, 0.5], [[1.0, 0.0, 0.0]]), "A"),
    (ng.discrete_step, ("ngd", [0.2, 0.3], [0.2, 0.3, 0.5], 0.0), "lr"),
    (ng.discrete_step, ("ngd", [0.2, 0.3], [0.2, 0.3, 0.5], -1.0), "lr"),
    (ng.ngd_noise_floor, (10, 0.5, 0), "batch"),
    (ng.minibatch_ngd, ([0.2, 0.3, 0.5], [[0.2, 0.3, 0.5]], 1.5, 10, 5), "lr"),
    (ng.run_iterations, ("ngd", [[0.2, 0.3, 0.5]], [0.2, 0.3, 0.5], 0.5, 0), "num_iters"),
])
def test_bad_input_names_argument(func, args, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}"):
        func(*args)


def test_integrate_flow_rejects_bad_grid(q: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="^t"):
        ng.integrate_flow("ngd", q, q, torch.tensor([0.0, 2.0, 1.0], dtype=F64))
    with pytest.raises(ValueError, match="^rtol"):
        ng.integrate_flow("ngd", q, q, torch.tensor([0.0, 1.0], dtype=F64), rtol=-1.0)
    assert math.isfinite(ng.ngd_noise_floor(10, 0.5, 100))
