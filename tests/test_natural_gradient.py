"""Unit tests of gradynamics.natural_gradient (charts, Fisher metrics, flows, iterations)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics.natural_gradient as ng

F64 = torch.float64


def random_simplex(shape: tuple[int, ...], n_outcomes: int, seed: int,
                   floor: float = 0.05) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(*shape, n_outcomes, generator=gen, dtype=F64) + floor
    return u / u.sum(-1, keepdim=True)


def theta_chart(theta: torch.Tensor) -> torch.Tensor:
    """The exponential chart from its definition (softmax of (theta, 0)), no library code."""
    return torch.softmax(torch.cat([theta, theta.new_zeros(1)]), dim=-1)


@pytest.fixture
def q() -> torch.Tensor:
    return random_simplex((), 6, 0)


# ------------------------------------------------------------------ charts and identities
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_charts_round_trip(n: int, seed: int) -> None:
    p = random_simplex((3,), n + 1, seed)
    torch.testing.assert_close(ng.p_from_eta(p[:, :-1]), p, rtol=0, atol=1e-14)
    torch.testing.assert_close(ng.p_from_theta(ng.theta_from_p(p)), p, rtol=0, atol=1e-14)
    # theta_i = log(p_i / p_{n+1}) from its definition
    torch.testing.assert_close(ng.theta_from_p(p), torch.log(p[:, :-1] / p[:, -1:]))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_fisher_metrics_are_inverse_and_natural_gradient(n: int, seed: int) -> None:
    p, q = random_simplex((2,), n + 1, seed)
    eta, theta = p[:-1], ng.theta_from_p(p)
    eye = torch.eye(n, dtype=F64)
    torch.testing.assert_close(ng.fisher_eta(eta) @ ng.fisher_theta(theta), eye,
                               rtol=0, atol=1e-10)
    grad = ng.grad_loss_eta(q, eta)
    torch.testing.assert_close(grad, ng.fisher_eta(eta) @ (eta - q[:-1]), rtol=1e-10, atol=1e-12)
    natural = torch.linalg.solve(ng.fisher_eta(eta), grad)
    torch.testing.assert_close(natural, ng.natural_gradient(q, eta), rtol=0, atol=1e-10)
    torch.testing.assert_close(ng.grad_loss_theta(q, theta), eta - q[:-1], rtol=0, atol=1e-14)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_closed_forms_match_autograd(n: int, seed: int) -> None:
    p, q = random_simplex((2,), n + 1, seed)
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=gen, dtype=F64) + 3 * torch.eye(n, dtype=F64)
    pairs = ng.closed_forms_vs_autograd(q, p, A)
    assert set(pairs) == {"grad L(eta)", "grad V(theta)", "natural gradient", "score covariance",
                          "Hessian L at optimum", "Hessian V(theta)", "gradient in A eta + b"}
    for name, (closed, reference) in pairs.items():
        torch.testing.assert_close(closed, reference, rtol=1e-9, atol=1e-11, msg=name)
    # the references are autograd's, not the closed forms again: a wrong closed form shows
    wrong = ng.grad_loss_eta(q, p[:-1]) * 1.001
    assert not torch.allclose(wrong, pairs["grad L(eta)"][1], rtol=1e-9, atol=1e-11)


def test_integrate_natural_flow_in_theta_chart_is_the_mixture_geodesic(q: torch.Tensor) -> None:
    p0 = random_simplex((2,), 6, 13)
    t = torch.linspace(0, 5, 11, dtype=F64)
    path = ng.integrate_natural_flow(q, theta_chart, ng.theta_from_p(p0), t)
    assert path.shape == (11, 2, 5)
    torch.testing.assert_close(ng.p_from_theta(path), ng.ngd_closed_form(q, p0, t),
                               rtol=0, atol=1e-8)
    one = ng.integrate_natural_flow(q, theta_chart, ng.theta_from_p(p0[0]), t)
    torch.testing.assert_close(one, path[:, 0], rtol=0, atol=1e-9)


def test_chord_deviation_of_segment_and_arc() -> None:
    s = torch.linspace(0, 1, 50, dtype=F64)[:, None]
    segment = torch.tensor([1.0, -2.0, 0.5], dtype=F64) + s * torch.tensor([0.3, 1.0, -1.0],
                                                                           dtype=F64)
    assert float(ng.chord_deviation(segment)) < 1e-15
    angle = torch.linspace(0, math.pi / 2, 2001, dtype=F64)
    arc = torch.stack([angle.cos(), angle.sin()], -1)
    both = torch.stack([arc, 2 * arc], 1)  # [T, 2 paths, 2]: scale-free
    expected = (1 - 1 / math.sqrt(2)) / math.sqrt(2)  # sagitta over chord of a quarter circle
    torch.testing.assert_close(ng.chord_deviation(both), torch.full((2,), expected, dtype=F64),
                               rtol=1e-6, atol=0)


def test_autograd_natural_gradient_matches_closed_form(q: torch.Tensor) -> None:
    points = random_simplex((4,), 6, 11)
    theta = ng.theta_from_p(points)
    # in the theta chart the natural gradient is G_theta^{-1} grad V
    expected = torch.linalg.solve(ng.fisher_theta(theta), ng.grad_loss_theta(q, theta)
                                  .unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ng.autograd_natural_gradient(q, theta, theta_chart), expected)
    # in the eta chart: eta - eta_q; single point (no vmap)
    eta_chart = lambda e: torch.cat([e, 1 - e.sum(-1, keepdim=True)])  # noqa: E731
    torch.testing.assert_close(ng.autograd_natural_gradient(q, points[0, :-1], eta_chart),
                               ng.natural_gradient(q, points[0, :-1]))


def test_losses_agree_across_charts(q: torch.Tensor) -> None:
    p = random_simplex((4,), 6, 2)
    kl = ng.kl_divergence(q, p)
    reference = (q * torch.log(q / p)).sum(-1)
    torch.testing.assert_close(kl, reference)
    torch.testing.assert_close(ng.loss_eta(q, p[..., :-1]), kl)
    torch.testing.assert_close(ng.loss_theta(q, ng.theta_from_p(p)), kl)
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
    # Hessian of L in the chart S eta (autograd) is diag(lam) at the optimum
    hess_tilde = torch.autograd.functional.hessian(
        lambda z: ng.loss_eta(q, torch.linalg.solve(S, z)), S @ eta)
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
    torch.testing.assert_close(ng.linearised_flow_matrix("ngd", q), torch.eye(5, dtype=F64))
    assert ng.stability_limit("ngd", q) == pytest.approx(2.0)
    # the best contraction, measured on real GD-theta steps at alpha* near the optimum
    g_theta = torch.linalg.eigvalsh(ng.fisher_theta(ng.theta_from_p(q)))
    alpha_star = 2 / float(g_theta.min() + g_theta.max())
    theta_q = ng.theta_from_p(q)
    x = theta_q + 1e-4 * torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=F64)
    norms = []  # ||x_k - theta_q|| for k = 0..60; at k = 60 still far above rounding
    for _ in range(61):
        norms.append(float((x - theta_q).norm()))
        x = ng.discrete_step("gd_theta", q, x, alpha_star)
    measured = (norms[60] / norms[20]) ** (1 / 40)
    assert measured == pytest.approx(ng.best_contraction(q), rel=1e-2)


def test_integrate_flow_matches_ngd_closed_form_and_rates(q: torch.Tensor) -> None:
    p0 = random_simplex((2,), 6, 5)
    t = torch.linspace(0, 12, 241, dtype=F64)
    result = ng.integrate_flow("ngd", q, p0, t)
    exact = ng.ngd_closed_form(q, p0, t)
    torch.testing.assert_close(result.p, exact, rtol=0, atol=1e-9)
    rates = ng.fit_rate(t, result.kl, window=(1e-10, 1e-4))
    torch.testing.assert_close(rates, torch.full((2,), 2.0, dtype=F64), rtol=1e-3, atol=0)
    predicted = ng.asymptotic_rate("gd_theta", q)
    t_theta = torch.linspace(0, 100 / predicted, 1001, dtype=F64)
    slow = ng.integrate_flow("gd_theta", q, p0, t_theta)
    fitted = ng.fit_rate(t_theta, slow.kl)
    assert float(((fitted - predicted) / predicted).abs().max()) < 1e-2
    assert bool((slow.kl.diff(dim=0) <= 1e-15).all())  # gradient flow: KL never increases


@pytest.mark.parametrize("seed", [22, 23, 24, 26, 30])
def test_fit_rate_default_window_reads_gd_eta_rate_on_other_targets(seed: int) -> None:
    """On targets the chapter never uses (close slow eigenvalues), the default tail window
    gives 2 lambda_min within 1%, where the shallow window (1e-14, 1e-6) is off by 2-20%."""
    target = random_simplex((), 11, seed, floor=0.0)
    starts = random_simplex((4,), 11, seed + 100, floor=0.0)
    predicted = ng.asymptotic_rate("gd_eta", target)
    t = torch.linspace(0, 100 / predicted, 2001, dtype=F64)
    kl = ng.integrate_flow("gd_eta", target, starts, t).kl
    error = float((ng.fit_rate(t, kl) / predicted - 1).abs().max())
    shallow = float((ng.fit_rate(t, kl, (1e-14, 1e-6)) / predicted - 1).abs().max())
    assert error < 1e-2
    assert shallow > 0.02 and shallow > 3 * error


def test_integrate_flow_follows_autograd_gradient_in_affine_chart(q: torch.Tensor) -> None:
    """A short LSODA run moves along -grad of the loss in the chart A eta (autograd)."""
    p0 = random_simplex((3,), 6, 8)
    A = ng.whitening_map(q, 2.0)
    h = 1e-6
    t = torch.tensor([0.0, h], dtype=F64)
    for k in range(3):
        z = (A @ p0[k, :-1]).requires_grad_(True)
        (g_z,) = torch.autograd.grad(ng.loss_eta(q, torch.linalg.solve(A, z)), z)
        velocity_eta = -torch.linalg.solve(A, g_z)  # GD in z, mapped back to eta
        end = ng.integrate_flow("gd_eta", q, p0[k], t, A=A).p[-1, 0]
        torch.testing.assert_close((end[:-1] - p0[k, :-1]) / h, velocity_eta,
                                   rtol=2e-3, atol=1e-6)


def test_fit_rate_recovers_exact_exponential() -> None:
    t = torch.linspace(0, 10, 101, dtype=F64)
    kl = torch.stack([3 * torch.exp(-1.5 * t), torch.exp(-0.5 * t)], dim=1)
    torch.testing.assert_close(ng.fit_rate(t, kl, window=(1e-8, 1.0)),
                               torch.tensor([1.5, 0.5], dtype=F64))
    with pytest.raises(ValueError, match=r"^kl: fewer than 3 points"):
        ng.fit_rate(t, kl, window=(1e-30, 1e-20))
    with pytest.raises(ValueError, match=r"^kl: fewer than 3 points"):
        ng.fit_rate(t[:2], kl[:2])


# ------------------------------------------------------------------ discrete time
def test_projection_and_one_step_ngd(q: torch.Tensor) -> None:
    out = ng.project_to_simplex(torch.tensor([[-0.5, 0.9, 0.6]], dtype=F64), tol=1e-3)
    assert bool((out > 0).all()) and float(out.sum()) < 1
    p0 = random_simplex((7,), 6, 6)
    # the NGD step with the autograd natural gradient (independent of the closed form) lands on q
    eta_chart = lambda e: torch.cat([e, 1 - e.sum(-1, keepdim=True)])  # noqa: E731
    step = p0[:, :-1] - ng.autograd_natural_gradient(q, p0[:, :-1], eta_chart)
    torch.testing.assert_close(step, q[:-1].expand_as(step), rtol=0, atol=1e-12)
    kl = ng.run_iterations("ngd", q, p0, 1.0, 1)
    assert float(kl[1].max()) < 1e-12
    kl_gd = ng.run_iterations("gd_eta", q, p0, torch.tensor([[0.5], [1e-3]], dtype=F64), 3,
                              project=False)
    assert kl_gd.shape == (4, 2, 7)
    assert bool(torch.isinf(kl_gd[-1, 0]).any())  # a huge GD-eta step leaves the simplex
    assert bool(torch.isfinite(kl_gd[-1, 1]).all())  # a small one does not


def test_run_iterations_matches_discrete_step_and_lr_zero(q: torch.Tensor) -> None:
    p0 = random_simplex((3,), 6, 9)
    lrs = torch.tensor([[0.0], [1e-3], [0.3]], dtype=F64)
    for method in ng.METHODS:
        x = ng.theta_from_p(p0) if method == "gd_theta" else p0[:, :-1]
        lr = 1e-3 if method == "gd_eta" else 0.3
        for _ in range(3):
            x = ng.discrete_step(method, q, x, lr)
        p = ng.p_from_theta(x) if method == "gd_theta" else ng.p_from_eta(x)
        kl = ng.run_iterations(method, q, p0, lrs, 3)
        torch.testing.assert_close(kl[-1, 1 if method == "gd_eta" else 2],
                                   ng.kl_divergence(q, p))
        torch.testing.assert_close(kl[-1, 0], ng.kl_divergence(q, p0))  # lr = 0: stays put


def test_discrete_step_is_euler_step_of_autograd_gradient(q: torch.Tensor) -> None:
    p0 = random_simplex((), 6, 10)
    eta = p0[:-1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ng.loss_eta(q, eta), eta)
    torch.testing.assert_close(ng.discrete_step("gd_eta", q, p0[:-1], 1e-3, project=False),
                               p0[:-1] - 1e-3 * g)


def test_stability_limit_separates_convergence_from_divergence(q: torch.Tensor) -> None:
    p0 = torch.cat([q[:-1] + 1e-7, q[-1:] - 5e-7])
    for method in ng.METHODS:
        limit = ng.stability_limit(method, q)
        kl = ng.run_iterations(method, q, p0, torch.tensor([0.95 * limit, 1.05 * limit],
                                                           dtype=F64), 150, project=False)
        assert float(kl[-1, 0]) < float(kl[0, 0])
        assert float(kl[-1, 1]) > float(kl[0, 0])


def test_rise_time_counts_from_zero() -> None:
    excess = torch.tensor([[5.0, 5.0], [0.5, 0.5], [2.0, 0.5], [0.5, 0.5]])
    torch.testing.assert_close(ng.rise_time(excess, 1.0), torch.tensor([3, 1]))
    torch.testing.assert_close(ng.rise_time(torch.full((4, 1), 3.0), 1.0), torch.tensor([4]))
    torch.testing.assert_close(ng.rise_time(torch.full((4, 1), 0.1), 1.0), torch.tensor([0]))


def test_rise_time_sweep_and_summary(q: torch.Tensor) -> None:
    starts = random_simplex((6,), 6, 12)
    lrs = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.5], dtype=F64)
    worst = ng.rise_time_sweep("ngd", q, starts, lrs, num_iters=20)
    entropy = float(-(q * q.log()).sum())
    # reference: the same runs through run_iterations and rise_time
    kl = ng.run_iterations("ngd", q, starts, lrs[:, None], 20)
    torch.testing.assert_close(worst, ng.rise_time(kl, 0.05 * entropy).amax(-1))
    assert int(worst[2]) == 1 and int(worst[0]) == 21 and int(worst[4]) == 21
    summary = ng.summarise_sweep(lrs, worst, 20)
    assert summary.best == 1 and summary.lr_best == float(lrs[worst == 1].min())
    assert (summary.lr_min, summary.lr_max, summary.converging) == (0.5, 1.5, 3)


def test_sweep_instance_and_table() -> None:
    q, q_hat, starts = ng.sweep_instance(n=4, samples=500, num_starts=6, seed=3)
    again = ng.sweep_instance(n=4, samples=500, num_starts=6, seed=3)
    for a, b in zip((q, q_hat, starts), again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    u = torch.rand(5, generator=torch.Generator().manual_seed(3), dtype=F64)
    torch.testing.assert_close(q, u / u.sum())  # the authors' draw: uniform, normalised
    assert starts.shape == (6, 5) and float((q_hat * 500).frac().abs().max()) < 1e-9
    table = ng.rise_time_table(q_hat, starts, num_lrs=5, num_iters=30)
    for method, (lrs, worst, summary) in table.items():
        torch.testing.assert_close(lrs, torch.linspace(0, ng.AUTHORS_LR_TOPS[method], 5,
                                                       dtype=F64))
        torch.testing.assert_close(worst, ng.rise_time_sweep(method, q_hat, starts, lrs, 30))
        assert summary == ng.summarise_sweep(lrs, worst, 30)
        assert int(worst[0]) == 31  # lr = 0 never moves: not converged


def test_minibatch_iterations_noise_floor(q: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(7)
    alphas = torch.tensor([[0.2], [0.5]], dtype=F64)
    kl = ng.run_iterations("ngd", q, q.expand(100, -1), alphas, 120, project=False, batch=400,
                           generator=gen)
    for k, a in enumerate((0.2, 0.5)):
        measured = float(kl[40:, k].mean())
        assert measured == pytest.approx(ng.noise_floor("ngd", q, a, 400), rel=0.2)
    assert ng.noise_floor("ngd", q, 0.5, 400) == pytest.approx(0.5 * 5 / (2 * 1.5 * 400))
    # the same seed gives the same numbers
    again = ng.run_iterations("ngd", q, q.expand(100, -1), alphas, 120, project=False, batch=400,
                              generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(kl, again, rtol=0, atol=0)


def test_minibatch_ngd_at_lr_one_is_the_batch_histogram() -> None:
    """With step 1, NGD jumps to the batch histogram: every KL after a step is KL(q || c/B)
    for counts c of a batch of B = 5 draws (infinite when a count is 0)."""
    q_small = torch.tensor([0.01, 0.49, 0.5], dtype=F64)
    gen = torch.Generator().manual_seed(0)
    kl = ng.run_iterations("ngd", q_small, q_small.expand(50, -1), 1.0, 10, project=False,
                           batch=5, generator=gen)[1:]
    counts = torch.tensor([(a, b, 5 - a - b) for a in range(1, 5) for b in range(1, 5 - a)],
                          dtype=F64)
    possible = ng.kl_divergence(q_small, counts / 5)
    finite = kl[torch.isfinite(kl)]
    assert finite.numel() > 0 and bool(torch.isinf(kl).any())
    assert float((finite[:, None] - possible[None]).abs().amin(1).max()) < 1e-12


def test_noise_floor_of_gradient_descent_matches_simulation(q: torch.Tensor) -> None:
    """The floor formula for GD (noise Q / B in the method's chart) against mini-batch runs."""
    gen = torch.Generator().manual_seed(8)
    for method in ("gd_eta", "gd_theta"):
        lam_max = float(torch.linalg.eigvalsh(ng.linearised_flow_matrix(method, q)).max())
        lr = 1 / lam_max
        kl = ng.run_iterations(method, q, q.expand(200, -1), lr, 300, project=False,
                               batch=400, generator=gen)
        predicted = ng.noise_floor(method, q, lr, 400)
        assert float(kl[100:].mean()) == pytest.approx(predicted, rel=0.1), method


def _plain_worst_rise_times(method, q_hat, starts, lrs, num_iters, tol=1e-3):
    """The authors' loop, one run at a time, gradients by autograd of the plain cross-entropy
    (no kernel of the library); rise time counted from 0, num_iters + 1 if never settled."""
    entropy = float(-(q_hat * q_hat.log()).sum())
    to_p = {"gd_theta": theta_chart,
            "gd_eta": lambda e: torch.cat([e, 1 - e.sum(-1, keepdim=True)])}
    to_p["ngd"] = to_p["gd_eta"]
    worst = []
    for lr in lrs:
        rises = []
        for p0 in starts:
            x = torch.log(p0[:-1] / p0[-1]) if method == "gd_theta" else p0[:-1].clone()
            excess = []
            for k in range(num_iters + 1):
                if k:
                    if method == "ngd":
                        step = ng.autograd_natural_gradient(q_hat, x, to_p["ngd"])
                    else:
                        z = x.clone().requires_grad_(True)
                        (step,) = torch.autograd.grad(
                            -(q_hat * torch.log(to_p[method](z))).sum(), z)
                    x = x - lr * step
                    if method != "gd_theta":  # the authors' project_simplex
                        x = torch.where(x < tol, torch.full_like(x, tol), x)
                        if float(x.sum()) > 1 - tol:
                            x = x / (x + tol).sum()
                excess.append(float(-(q_hat * torch.log(to_p[method](x))).sum()) - entropy)
            above = [k for k, e in enumerate(excess) if not e < 0.05 * entropy]
            rises.append(above[-1] + 1 if above else 0)
        worst.append(max(rises))
    return worst


@pytest.mark.parametrize(("method", "lrs"), [
    ("gd_eta", [0.004, 0.02, 0.08]), ("ngd", [0.3, 1.0, 2.5]), ("gd_theta", [2.0, 8.0, 60.0])])
def test_rise_time_sweep_matches_a_plain_autograd_loop(method: str, lrs: list) -> None:
    _, q_hat, starts = ng.sweep_instance(n=4, samples=500, num_starts=3, seed=3)
    worst = ng.rise_time_sweep(method, q_hat, starts, torch.tensor(lrs, dtype=F64), 25)
    assert worst.tolist() == _plain_worst_rise_times(method, q_hat, starts, lrs, 25)


def test_load_sweep_results(tmp_path) -> None:
    import json
    from pathlib import Path
    committed = Path(__file__).parents[1] / "book" / "natural_gradient" / "full_size_results.json"
    data = ng.load_sweep_results(committed)
    assert data["num_lrs"] == len(data["sweeps"]["minibatch"]["ngd"]["worst"])
    assert ng.load_sweep_results(tmp_path / "absent.json", missing_ok=True) is None
    broken = tmp_path / "broken.json"
    data["sweeps"]["full"]["ngd"]["worst"] = data["sweeps"]["full"]["ngd"]["worst"][:-1]
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"^path: sweep 'full', method 'ngd'"):
        ng.load_sweep_results(broken)


# ------------------------------------------------------------------ bad input
Q3 = [0.2, 0.3, 0.5]
T32 = torch.tensor(Q3, dtype=torch.float32)
T64 = torch.tensor(Q3, dtype=F64)


@pytest.mark.parametrize(("func", "args", "name"), [
    (ng.p_from_eta, ([0.7, 0.4],), "eta"),
    (ng.theta_from_p, ([1.0],), "p"),
    (ng.p_from_theta, (1.0,), "theta"),
    (ng.p_from_theta, ("abc",), "theta"),
    (ng.theta_from_p, ([0.5, 0.6],), "p"),
    (ng.kl_divergence, ([0.5, 0.5, 0.0], Q3), "q"),
    (ng.kl_divergence, (Q3, [0.5, 0.6, 0.1]), "p"),
    (ng.kl_divergence, ([0.2, float("nan"), 0.8], Q3), "q"),
    (ng.kl_divergence, (T64, T32), "p"),
    (ng.kl_from_eta_displacement, (Q3, [0.1]), "d_eta"),
    (ng.kl_from_eta_displacement, (Q3, [0.6, 0.0]), "d_eta"),
    (ng.kl_from_theta_displacement, (T64, torch.zeros(2)), "d_theta"),
    (ng.loss_eta, (Q3, [0.2, 0.3, 0.1]), "eta"),
    (ng.loss_theta, (Q3, [[0.0]]), "theta"),
    (ng.fisher_theta, (float("inf"),), "theta"),
    (ng.fisher_eta, ([0.0, 0.5],), "eta"),
    (ng.grad_loss_eta, (T64, T32[:2]), "eta"),
    (ng.grad_loss_theta, (Q3, [1.0]), "theta"),
    (ng.natural_gradient, ([[0.2, 0.3, 0.5]] * 2, [0.9, 0.2]), "eta"),
    (ng.autograd_natural_gradient, ([Q3], [0.1, 0.2], torch.exp), "q"),
    (ng.autograd_natural_gradient, (Q3, [0.1, 0.2], "softmax"), "chart"),
    (ng.autograd_natural_gradient, (T64, torch.zeros(1, 1, 2, dtype=F64), torch.exp), "x"),
    (ng.affine_dual_maps, ([0.1, 0.2], [0.0], torch.eye(2)), "theta"),
    (ng.closed_forms_vs_autograd, (T64, T64, None), "A"),
    (ng.closed_forms_vs_autograd, (T64, T32, torch.eye(2, dtype=F64)), "p"),
    (ng.closed_forms_vs_autograd, (T64, T64, torch.eye(2)), "A"),
    (ng.integrate_natural_flow, (Q3, torch.exp, [0.1, 0.2], [1.0, 2.0]), "t"),
    (ng.integrate_natural_flow, (Q3, "softmax", [0.1, 0.2], [0.0, 1.0]), "chart"),
    (ng.chord_deviation, ([[0.0, 1.0]],), "path"),
    (ng.chord_deviation, ([[0.0, 1.0], [0.0, 1.0]],), "path"),
    (ng.load_sweep_results, ("/nonexistent/results.json",), "path"),
    (ng.affine_dual_maps, (T64[:2], T64[:2], torch.eye(2)), "A"),
    (ng.spectral_map, (Q3, [1.0, -1.0]), "eigenvalues"),
    (ng.whitening_map, (Q3, 0.0), "c"),
    (ng.linearised_flow_matrix, ("gd_eta", [Q3, Q3]), "q"),
    (ng.asymptotic_rate, ("adam", Q3), "method"),
    (ng.asymptotic_rate, ("gd_eta", Q3, [[1.0, 2.0], [2.0, 4.0]]), "A"),
    (ng.asymptotic_rate, ("gd_eta", Q3, [[1.0, 0.0, 0.0]]), "A"),
    (ng.stability_limit, ("ngd", [0.5, 0.6]), "q"),
    (ng.best_contraction, ([Q3],), "q"),
    (ng.ngd_closed_form, (T64, T32, [0.0]), "p0"),
    (ng.integrate_flow, ("ngd", Q3, [[[0.2, 0.3, 0.5]]], [0.0, 1.0]), "p0"),
    (ng.integrate_flow, ("ngd", Q3, Q3, [0.0, 2.0, 1.0]), "t"),
    (ng.integrate_flow, ("ngd", Q3, Q3, [0.0, 1.0], None, -1.0), "rtol"),
    (ng.fit_rate, ([[0.0, 1.0]], [1.0, 0.5]), "t"),
    (ng.fit_rate, ([0.0, 1.0], [1.0, 0.5], (1e-3,)), "window"),
    (ng.project_to_simplex, ([0.2, 0.3], 0.6), "tol"),
    (ng.discrete_step, ("ngd", Q3, [0.2, 0.3], -1.0), "lr"),
    (ng.discrete_step, ("ngd", Q3, [0.2, 0.3, 0.1], 0.5), "x"),
    (ng.discrete_step, ("ngd", T64, T32[:2], 0.5), "x"),
    (ng.run_iterations, ("ngd", Q3, [[0.2, 0.3, 0.5]], 0.5, 0), "num_iters"),
    (ng.run_iterations, ("ngd", Q3, [Q3], 0.5, 5, True, 1e-3, 0), "batch"),
    (ng.run_iterations, ("ngd", Q3, [Q3], 0.5, 5, True, 1e-3, 5, 3), "generator"),
    (ng.run_iterations, ("ngd", T64, T32, 0.5, 5), "p0"),
    (ng.rise_time, (torch.ones(3), -1.0), "threshold"),
    (ng.rise_time, (torch.tensor(1.0), 1.0), "excess"),
    (ng.rise_time_sweep, ("ngd", Q3, Q3, [0.5]), "starts"),
    (ng.rise_time_sweep, ("ngd", Q3, [Q3], [[0.5]]), "lrs"),
    (ng.rise_time_table, ([Q3], [Q3]), "q_hat"),
    (ng.rise_time_table, (Q3, [Q3], 1), "num_lrs"),
    (ng.sweep_instance, (10, 1000, 0), "num_starts"),
    (ng.sweep_instance, (10, 3), "samples"),
    (ng.summarise_sweep, ([0.1, 0.2], [1]), "worst"),
    (ng.noise_floor, ("ngd", Q3, 0.5, 0), "batch"),
    (ng.noise_floor, ("ngd", Q3, 2.0, 10), "lr"),
])
def test_bad_input_names_argument(func, args, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        func(*args)


def test_every_public_function_has_a_bad_input_case() -> None:
    covered = {row.__name__ for row, *_ in test_bad_input_names_argument.pytestmark[0].args[1]}
    public = {name for name in ng.__all__ if callable(getattr(ng, name))
              and not isinstance(getattr(ng, name), type)}
    assert public - covered == set()


def test_noise_floor_gd_exceeds_ngd_at_equal_slow_contraction(q: torch.Tensor) -> None:
    lam = torch.linalg.eigvalsh(ng.fisher_theta(ng.theta_from_p(q)))
    alpha = 1 / float(lam.max())
    gd_floor = ng.noise_floor("gd_theta", q, alpha, 100)
    ngd_floor = ng.noise_floor("ngd", q, alpha * float(lam.min()), 100)
    assert gd_floor > ngd_floor  # each term lambda_i / (2 - alpha lambda_i) grows with lambda_i


def test_check_same_dtype_names_the_differing_argument() -> None:
    from gradynamics.validation import check_same_dtype
    check_same_dtype(q=T64, p=T64, A=None)
    with pytest.raises(ValueError, match=r"^p: dtype torch\.float32 differs from q's"):
        check_same_dtype(q=T64, p=T32)
