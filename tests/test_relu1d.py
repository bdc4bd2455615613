"""Unit tests of gradynamics.relu1d (shallow univariate ReLU networks, knots and splines)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, interpolate, stats

from gradynamics import relu1d as R

DT = torch.float64


def _data(n: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, n, dtype=DT)
    y = torch.randn(n, generator=g, dtype=DT)
    return x, y


def _params(m: int, batch=(), seed: int = 1, scale_c: float = 0.7) -> R.Params:
    g = torch.Generator().manual_seed(seed)
    return R.init_params(m, 1.0, scale_c, batch=batch, generator=g)


def _jittered(n: int, rng: np.random.Generator):
    """n points on [-1, 1]: a uniform grid with interior points jittered by up to 30% of h."""
    x = np.linspace(-1, 1, n)
    x[1:-1] += rng.uniform(-0.3, 0.3, n - 2) * (2 / (n - 1))
    return x, rng.normal(0, 0.5, n)


def test_relu_net_matches_loop():
    x, _ = _data()
    p = _params(5, batch=(3,))
    out = R.relu_net(x, p.a, p.b, p.c)
    assert out.shape == (3, 7)
    loop = torch.stack([sum(p.c[k, i] * torch.relu(p.a[k, i] * x + p.b[k, i]) for i in range(5))
                        for k in range(3)])
    torch.testing.assert_close(out, loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(R.relu_net(x, p.a, p.b, p.c, chunk=2), out, rtol=1e-12,
                               atol=1e-12)


def _autograd_grads(x, y, p):
    leaves = [t.clone().requires_grad_(True) for t in (p.a, p.b, p.c)]
    R.loss(x, y, *leaves).sum().backward()
    return [t.grad for t in leaves]


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_gradients_match_autograd(m, n, seed):
    x, y = _data(n, seed)
    p = _params(m, batch=(2,), seed=seed + 1)
    grads, value = R.loss_gradients(x, y, p.a, p.b, p.c)
    loop = 0.5 * sum((sum(p.c[:, i] * torch.relu(p.a[:, i] * x[j] + p.b[:, i])
                          for i in range(m)) - y[j]) ** 2 for j in range(n))
    torch.testing.assert_close(value, loop, rtol=1e-12, atol=1e-12)
    for mine, ref in zip((grads.a, grads.b, grads.c), _autograd_grads(x, y, p), strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-12)


def test_tangent_kernel_matches_jacobian():
    x, _ = _data(6)
    x2 = torch.tensor([-1.5, -0.2, 0.45], dtype=DT)
    p = _params(4)
    theta = torch.cat([p.a, p.b, p.c])

    def jac(points):
        return torch.autograd.functional.jacobian(
            lambda t: R.relu_net(points, t[:4], t[4:8], t[8:]), theta)

    torch.testing.assert_close(R.tangent_kernel(x, p.a, p.b, p.c), jac(x) @ jac(x).T,
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(R.tangent_kernel(x, p.a, p.b, p.c, x2=x2), jac(x) @ jac(x2).T,
                               rtol=1e-10, atol=1e-12)


def test_gd_train_per_arm_steps_equal_separate_runs():
    x, y = _data()
    p = _params(30, scale_c=1.0)
    lrs, counts = (1e-3, 5e-4, 2.5e-4), (500, 1000, 2000)
    batch = R.Params(*(t.expand(3, -1).clone() for t in (p.a, p.b, p.c)))
    res = R.gd_train(x, y, batch, torch.tensor(lrs, dtype=DT), torch.tensor(counts))
    for k, (lr, steps) in enumerate(zip(lrs, counts, strict=True)):
        alone = R.gd_train(x, y, p, lr, steps).params
        for mine, ref in zip((res.params.a[k], res.params.b[k], res.params.c[k]),
                             (alone.a, alone.b, alone.c), strict=True):
            torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-13)


def test_gd_train_step_is_a_gradient_step_and_records():
    x, y = _data()
    p = _params(40, batch=(2,), scale_c=0.1)
    lr = torch.tensor([1e-3, 2e-3], dtype=DT)
    res = R.gd_train(x, y, p, lr, 200, record=[0, 1, 50, 200])
    assert res.a.shape == (4, 2, 40) and res.loss.shape == (4, 2)
    leaves = [t.clone().requires_grad_(True) for t in (p.a, p.b, p.c)]
    R.loss(x, y, *leaves).sum().backward()
    for t, leaf, snap in zip((p.a, p.b, p.c), leaves, (res.a, res.b, res.c), strict=True):
        torch.testing.assert_close(snap[1], t - lr.unsqueeze(-1) * leaf.grad, rtol=1e-12,
                                   atol=1e-14)
    mid = R.gd_train(x, y, p, lr, 50).params
    torch.testing.assert_close(res.a[2], mid.a, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res.loss[-1], R.loss(x, y, res.params.a, res.params.b,
                                                    res.params.c))
    assert torch.all(res.loss[-1] < 0.9 * res.loss[0])


def test_conservation_drift_shrinks_linearly_with_step():
    x, y = _data()
    p = _params(30, scale_c=1.0)
    lrs = torch.tensor([1e-3, 5e-4, 2.5e-4], dtype=DT)
    batch = R.Params(*(t.expand(3, -1).clone() for t in (p.a, p.b, p.c)))
    res = R.gd_train(x, y, batch, lrs, torch.round(0.5 / lrs).long())
    drift = (R.conserved_quantity(*res.params.__dict__.values())
             - R.conserved_quantity(p.a, p.b, p.c)).abs().amax(-1).numpy()
    ratios = drift[:-1] / drift[1:]
    assert drift[-1] < 1e-2
    assert np.all((ratios > 1.7) & (ratios < 2.4)), (drift, ratios)


def test_reduced_velocity_matches_autograd_flow():
    x, y = _data()
    p = _params(6, batch=(2,))
    grads, _ = R.loss_gradients(x, y, p.a, p.b, p.c)

    def coords(a, b, c):
        red = R.reduced_coordinates(a, b, c)
        return red["u"], red["theta"]

    _, (du, dtheta) = torch.autograd.functional.jvp(coords, (p.a, p.b, p.c),
                                                   (-grads.a, -grads.b, -grads.c))
    red = R.reduced_coordinates(p.a, p.b, p.c)
    torch.testing.assert_close(red["r"] * torch.cos(red["theta"]), p.a)
    du_r, dtheta_r = R.reduced_velocity(x, y, red["u"], red["theta"], red["delta"])
    torch.testing.assert_close(du_r, du, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(dtheta_r, dtheta, rtol=1e-9, atol=1e-12)


def test_knot_velocity_and_force_match_autograd():
    x, y = _data()
    p = _params(8)
    grads, _ = R.loss_gradients(x, y, p.a, p.b, p.c)
    _, de = torch.autograd.functional.jvp(lambda a, b: -b / a, (p.a, p.b), (-grads.a, -grads.b))
    velocity, force = R.knot_velocity(x, y, p.a, p.b, p.c)
    torch.testing.assert_close(velocity, de, rtol=1e-9, atol=1e-12)
    # dL/de at fixed (a, c), by autograd through b = -a e.
    e = R.knots(p.a, p.b).clone().requires_grad_(True)
    R.loss(x, y, p.a, -p.a * e, p.c).backward()
    torch.testing.assert_close(force, e.grad, rtol=1e-12, atol=1e-14)


def test_knot_force_piecewise_constant_between_data():
    x, y = _data()
    a = torch.tensor([1.3], dtype=DT)
    c = torch.tensor([0.8], dtype=DT)
    forces = []
    for e in (0.05, 0.1, 0.3, 0.4):       # the first three lie between the data points 0 and 1/3
        b = -a * e
        shifted = y + R.relu_net(x, a, b, c)    # keeps the residuals fixed at -y
        forces.append(R.knot_velocity(x, shifted, a, b, c)[1])
    torch.testing.assert_close(forces[0], forces[1], rtol=0, atol=1e-15)
    torch.testing.assert_close(forces[0], forces[2], rtol=0, atol=1e-15)
    expected = -c * a * (-y[x > 0.05]).sum()
    torch.testing.assert_close(forces[0], expected, rtol=1e-12, atol=1e-15)
    assert not torch.allclose(forces[2], forces[3])     # jumps when the knot crosses x = 1/3


def test_weighted_spline_constant_weight_is_natural_cubic():
    x = np.array([-1.0, -0.6, -0.1, 0.3, 0.8, 1.0])
    y = np.array([0.2, -0.5, 0.9, 0.1, 0.4, -0.3])
    grid = np.linspace(-1.5, 1.5, 301)
    spline = R.weighted_spline(x, y, lambda t: 0.25)
    reference = interpolate.CubicSpline(x, y, bc_type="natural")
    inside = (grid >= x[0]) & (grid <= x[-1])
    np.testing.assert_allclose(spline(grid[inside]), reference(grid[inside]), atol=1e-11)
    np.testing.assert_allclose(spline(x), y, atol=1e-11)
    outside = spline(np.array([-1.5, -1.25, -1.0]))       # affine to the left of the data
    assert abs(outside[0] - 2 * outside[1] + outside[2]) < 1e-11
    # our wrapper against a second SciPy routine (B-spline form), not against CubicSpline itself
    bspline = interpolate.make_interp_spline(x, y, k=3, bc_type="natural")
    np.testing.assert_allclose(R.natural_cubic_spline(x, y)(grid[inside]),
                               bspline(grid[inside]), atol=1e-12)
    np.testing.assert_allclose(R.linear_interpolant(x, y)(grid[inside]),
                               np.interp(grid[inside], x, y), atol=1e-14)


def test_weighted_smoothing_spline_matches_scipy():
    x = np.linspace(0.0, 1.0, 9)
    y = np.sin(5 * x) + 0.1 * np.cos(17 * x)
    nu0, lam = 0.5, 1e-3
    ours = R.weighted_spline(x, y, lambda t: nu0, smoothing=lam)(x)
    ref = interpolate.make_smoothing_spline(x, y, lam=lam / nu0)(x)
    np.testing.assert_allclose(ours, ref, atol=1e-8)


@pytest.mark.parametrize("sa,sb", [(1.0, 1.0), (0.5, 2.0), (1.7, 0.8)])
def test_gaussian_curvature_weight_by_quadrature(sa, sb):
    def q(a, b):
        return np.exp(-a ** 2 / (2 * sa ** 2) - b ** 2 / (2 * sb ** 2)) / (2 * np.pi * sa * sb)

    for x in (-1.3, 0.0, 0.7):
        num = integrate.quad(lambda a, x=x: abs(a) ** 3 * q(a, -a * x), -np.inf, np.inf)[0]
        assert abs(num - float(R.curvature_weight_gaussian(x, sa, sb))) < 1e-10


def test_uniform_curvature_weight_is_knot_density_times_a_squared():
    g = np.random.default_rng(0)
    a = g.choice([-1.0, 1.0], 400_000)
    e = -g.uniform(-2, 2, a.size) / a                  # knots of a = +-1, b ~ U[-2, 2]
    hist, edges = np.histogram(e, bins=8, range=(-2.0, 2.0), density=True)
    mids = (edges[:-1] + edges[1:]) / 2
    np.testing.assert_allclose(hist, R.curvature_weight_uniform(mids, 2.0), atol=0.01)
    assert float(R.curvature_weight_uniform(2.5, 2.0)) == 0.0


def test_uniform_feature_kernel_by_quadrature():
    big_m = 1.5
    points = np.array([-2.0, -1.0, -0.3, 0.0, 0.7, 1.4, 1.9])
    kmat = R.uniform_feature_kernel(points, points, big_m)
    for i, p in enumerate(points):
        for j, q in enumerate(points):
            def integrand(b, p=p, q=q):
                return 0.5 * (max(p + b, 0) * max(q + b, 0) + max(-p + b, 0) * max(-q + b, 0))

            ref = integrate.quad(integrand, -big_m, big_m, points=[-p, -q, p, q])[0] / (2 * big_m)
            assert abs(kmat[i, j] - ref) < 1e-12


def test_random_feature_limit_affine_is_natural_cubic():
    rng = np.random.default_rng(3)
    for n in (7, 8, 9):
        x, y = _jittered(n, rng)
        grid = np.linspace(x[0], x[-1], 201)
        limit = R.random_feature_limit(x, y, 2.0, affine=True)(grid)
        cubic = interpolate.CubicSpline(x, y, bc_type="natural")(grid)
        np.testing.assert_allclose(limit, cubic, atol=1e-9)


def test_random_feature_limit_is_the_wide_rf_fit_and_its_norm_is_the_functional():
    rng = np.random.default_rng(4)
    x, y = _jittered(7, rng)
    big_m = 2.0
    grid = np.linspace(-big_m, big_m, 40_001)
    limit_fn = R.random_feature_limit(x, y, big_m)
    # its RKHS norm y^T K^-1 y equals the functional (relu-eq-rkhs), by finite differences

    def functional(f):
        return R.uniform_kernel_norm(f, big_m)

    f = limit_fn(grid)
    norm = y @ np.linalg.solve(R.uniform_feature_kernel(x, x, big_m), y)
    assert abs(functional(f) - norm) < 1e-6 * norm
    # minimiser among interpolants <=> orthogonal to every function vanishing at the data:
    # the cross term of the quadratic form with phi = prod_j (t - x_j) vanishes for f_inf
    # and not for another interpolant (the natural cubic spline, affine outside the data)
    phi = 0.3 * np.prod([grid - xj for xj in x], axis=0)
    nat = interpolate.CubicSpline(x, y, bc_type="natural")
    inside = np.clip(grid, x[0], x[-1])
    other = nat(inside) + nat(inside, 1) * (grid - inside)
    cosines = [(functional(g + phi) - functional(g) - functional(phi))
               / (2 * np.sqrt(functional(g) * functional(phi))) for g in (f, other)]
    assert abs(cosines[0]) < 1e-6 and abs(cosines[1]) > 1e-3, cosines
    # the random-feature fit approaches it as the width grows
    g = torch.Generator().manual_seed(0)
    xt, yt, gt = (torch.tensor(v) for v in (x, y, np.linspace(x[0], x[-1], 101)))
    errs = []
    for m in (500, 20_000):
        feat = R.init_params(m, 1.0, 0.0, batch=(6,), law="uniform", knot_range=big_m,
                             generator=g)
        c, _ = R.random_feature_min_norm(xt, yt, feat.a, feat.b)
        errs.append(np.mean(R.sup_distance(R.relu_net(gt, feat.a, feat.b, c),
                                           limit_fn(gt.numpy()))))
    assert errs[1] < 0.4 * errs[0], errs


def test_uniform_kernel_norm_of_a_cubic_is_exact():
    # f = t^3 on [-M, M]: 2M int (6t)^2 = 48 M^4, f'(+-M) = 3M^2, f(M) + f(-M) = 0
    big_m = 1.5
    t = np.linspace(-big_m, big_m, 3001)
    expected = 48 * big_m ** 4 + 36 * big_m ** 4 + 3 / big_m ** 2 * 0.0
    assert abs(R.uniform_kernel_norm(t ** 3, big_m) - expected) < 1e-6 * expected
    # an affine f costs only the boundary terms: f = 1 + 2t
    affine = 1 + 2 * t
    expected_affine = 16 + 3 / big_m ** 2 * (2 - big_m * 0.0) ** 2
    assert abs(R.uniform_kernel_norm(affine, big_m) - expected_affine) < 1e-9


def test_random_feature_min_norm_interpolates_and_is_min_norm():
    x, y = _data()
    p = _params(50, batch=(2,))
    c, coef = R.random_feature_min_norm(x, y, p.a, p.b)
    torch.testing.assert_close(R.relu_net(x, p.a, p.b, c), y.expand(2, -1), atol=1e-10, rtol=0)
    assert torch.all(coef == 0)
    phi = torch.relu(p.a[0].unsqueeze(-1) * x + p.b[0].unsqueeze(-1)).T
    null = torch.linalg.svd(phi).Vh[7:]                     # null space of the features
    torch.testing.assert_close(null @ c[0], torch.zeros(43, dtype=DT), atol=1e-10, rtol=0)
    c2, coef2 = R.random_feature_min_norm(x, y, p.a, p.b, affine=True)
    fit = R.relu_net(x, p.a, p.b, c2) + coef2[..., :1] + coef2[..., 1:] * x
    torch.testing.assert_close(fit, y.expand(2, -1), atol=1e-10, rtol=0)
    # reference: the KKT system of min ||c||^2 s.t. Phi c + alpha + beta x = y, in numpy
    xs, ys = x.numpy(), y.numpy()
    for k in range(2):
        phi_k = np.maximum(p.a[k].numpy()[:, None] * xs + p.b[k].numpy()[:, None], 0).T
        kkt = np.zeros((9, 9))
        kkt[:7, :7] = phi_k @ phi_k.T
        kkt[:7, 7] = kkt[7, :7] = 1.0
        kkt[:7, 8] = kkt[8, :7] = xs
        sol = np.linalg.solve(kkt, np.concatenate([ys, [0.0, 0.0]]))
        np.testing.assert_allclose(c2[k].numpy(), phi_k.T @ sol[:7], atol=1e-9)
        np.testing.assert_allclose(coef2[k].numpy(), sol[7:], atol=1e-9)
    grid = torch.linspace(-1.3, 1.3, 27, dtype=DT)
    torch.testing.assert_close(R.random_feature_fit(x, y, p.a, p.b, grid, affine=True),
                               R.relu_net(grid, p.a, p.b, c2) + coef2[..., :1]
                               + coef2[..., 1:] * grid, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(R.random_feature_fit(x, y, p.a, p.b, x, chunk=3),
                               y.expand(2, -1), atol=1e-10, rtol=0)


def test_linearized_fit_matches_gd_on_the_linear_model():
    x, y = _data()
    p = _params(6, scale_c=0.5)
    theta0 = torch.cat([p.a, p.b, p.c])

    def net(t, points):
        return R.relu_net(points, t[:6], t[6:12], t[12:])

    jac = torch.autograd.functional.jacobian(lambda t: net(t, x), theta0)
    x_eval = torch.linspace(-1.2, 1.2, 9, dtype=DT)
    jac_eval = torch.autograd.functional.jacobian(lambda t: net(t, x_eval), theta0)
    lr, steps = 0.05, 30
    delta = torch.zeros_like(theta0)
    for _ in range(steps):                   # GD on the linear model f0 + J (theta - theta0)
        delta = delta - lr * jac.T @ (net(theta0, x) + jac @ delta - y)
    expected = net(theta0, x_eval) + jac_eval @ delta
    torch.testing.assert_close(R.linearized_fit(x, y, p, lr, steps, x_eval), expected,
                               rtol=1e-9, atol=1e-11)


def test_init_params_laws_and_scales():
    g = torch.Generator().manual_seed(0)
    p = R.init_params(20_000, 0.5, 0.01, law="uniform", knot_range=2.0, generator=g)
    assert torch.all(p.a.abs() == 0.5)
    assert abs(float((p.a > 0).double().mean()) - 0.5) < 0.02        # signs are fair coins
    # knots uniform on [-2, 2] and c ~ 0.01 N(0, 1): Kolmogorov-Smirnov against the laws
    assert stats.kstest(R.knots(p.a, p.b).numpy(), "uniform", args=(-2.0, 4.0)).pvalue > 1e-3
    assert stats.kstest(p.c.numpy() / 0.01, "norm").pvalue > 1e-3
    wrong = stats.kstest(R.knots(p.a, p.b).numpy(), "uniform", args=(-1.5, 3.0)).pvalue
    assert wrong < 1e-6                                   # the test can tell a wrong range
    gauss = R.init_params(20_000, 2.0, 1.0, generator=g)
    for t in (gauss.a, gauss.b):
        assert stats.kstest(t.numpy() / 2.0, "norm").pvalue > 1e-3
    s_ab, s_c = R.layer_scales(torch.tensor([0.01, 100.0]), 1e-2)
    torch.testing.assert_close(s_ab / s_c, torch.tensor([0.01, 100.0], dtype=DT))
    torch.testing.assert_close(s_ab * s_c, torch.full((2,), 1e-2, dtype=DT))
    q = R.init_params(10, s_ab, s_c, batch=(2,), generator=g)
    assert q.a.shape == (2, 10) and float(q.a[0].abs().max()) < float(q.a[1].abs().max())


def test_slope_mass_displacement_and_sup_distance():
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=DT)
    a = torch.tensor([1.0, 1.0, -2.0, 1.0], dtype=DT)
    e = torch.tensor([0.01, 0.5, 0.99, 5.0], dtype=DT)     # last knot outside the data range
    c = torch.tensor([1.0, 1.0, 1.0, 9.0], dtype=DT)
    mass = R.slope_mass_near_data(x, a, -a * e, c, eps=0.02)
    assert abs(float(mass) - 3.0 / 4.0) < 1e-12
    start = torch.zeros(3, dtype=DT)
    disp = R.knot_displacement(start, torch.tensor([0.1, -0.3, 5.0], dtype=DT))
    assert float(disp) == pytest.approx(0.3)
    masked = R.knot_displacement(start, torch.tensor([0.1, -0.3, 5.0], dtype=DT),
                                 mask=torch.tensor([True, False, True]))
    assert float(masked) == pytest.approx(0.1)      # nanmedian of {0.1, 5.0}: the lower one
    f = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, -3.0]])
    np.testing.assert_array_equal(R.sup_distance(f, np.zeros(3)), [2.0, 3.0])
    assert R.sup_distance(f[0], f[0] + 0.5) == 0.5


def test_regime_sweep_step_sizes_padding_and_convergence():
    x, y = _data()
    g = torch.Generator().manual_seed(3)
    ratios = torch.tensor([1e-2, 1e2, 1e4], dtype=DT)
    sw = R.regime_sweep(x, y, ratios, m=[20, 12, 20], steps=300, generator=g,
                        early_steps=300, n_records=5, loss_tol=1e-6)
    init = R.Params(sw.train.a[0], sw.train.b[0], sw.train.c[0])
    assert sw.f_final.shape == (3, 401) and sw.mask.sum(-1).tolist() == [20, 12, 20]
    torch.testing.assert_close(init.a[1, 12:], torch.zeros(8, dtype=DT), rtol=0, atol=0)
    lam = torch.linalg.eigvalsh(R.tangent_kernel(x, init.a, init.b, init.c))
    torch.testing.assert_close(sw.lr, torch.clamp(1 / lam[:, -1], max=0.02))
    # the padded arm trains exactly like its 12 neurons alone
    alone = R.gd_train(x, y, R.Params(init.a[1, :12], init.b[1, :12], init.c[1, :12]),
                       sw.lr[1], 300)
    torch.testing.assert_close(sw.train.c[-1, 1, :12], alone.params.c, rtol=1e-12, atol=1e-14)
    grid_f = R.relu_net(sw.grid, alone.params.a, alone.params.b, alone.params.c)
    torch.testing.assert_close(sw.f_final[1], grid_f, rtol=1e-12, atol=1e-13)
    final = sw.train.params
    torch.testing.assert_close(sw.final_loss, R.loss(x, y, final.a, final.b, final.c))
    assert sw.converged.tolist() == [bool(v) for v in R.loss(x, y, final.a, final.b,
                                                             final.c) <= 1e-6]
    # a lazy arm's predicted budget does bring the linearised model below the tolerance
    k = 2
    arm = R.Params(init.a[k], init.b[k], init.c[k])
    f_lin = R.linearized_fit(x, y, arm, sw.lr[k], int(sw.steps_needed[k]), x)
    assert 0.5 * float(((f_lin - y) ** 2).sum()) <= 1e-6
    f_short = R.linearized_fit(x, y, arm, sw.lr[k], int(sw.steps_needed[k]) // 20, x)
    assert 0.5 * float(((f_short - y) ** 2).sum()) > 1e-6


def test_width_sweep_is_the_regime_sweep_with_scaled_sizes():
    x, y = _data()
    widths, gammas = [10, 20, 40], [0.5, 1.5]
    ws = R.width_sweep(x, y, widths, gammas, 60, ratio=50.0, base_size=2e-3, base_width=20,
                       generator=torch.Generator().manual_seed(4), n_records=3)
    arm_m = widths * 2
    sizes = torch.tensor([2e-3 * (20 / m) ** g for g in gammas for m in widths], dtype=DT)
    ref = R.regime_sweep(x, y, torch.full((6,), 50.0, dtype=DT), m=arm_m, size=sizes,
                         steps=60, generator=torch.Generator().manual_seed(4), n_records=3)
    torch.testing.assert_close(ws.sweep.sizes, sizes)
    torch.testing.assert_close(torch.as_tensor(ws.change).flatten(), ref.first_layer_change,
                               rtol=1e-12, atol=0)
    for k, row in enumerate(ws.change):
        slope = stats.linregress(np.log(widths), np.log(row)).slope
        assert abs(ws.exponents[k] - slope) < 1e-12


# ----------------------------------------------------------------------------- bad input
def _bad_cases():
    x, y = _data()
    p = _params(5)
    nan_a, nan_u = p.a.clone(), p.a.clone()
    nan_a[0] = nan_u[1] = float("nan")
    red = R.reduced_coordinates(p.a, p.b, p.c)
    xs, ys = np.array([0.0, 1.0]), np.zeros(2)
    return [
        (lambda: R.relu_net(x, nan_a, p.b, p.c), "a"),
        (lambda: R.relu_net(x, p.a, p.b[:3], p.c), "b"),
        (lambda: R.relu_net(x.float(), p.a, p.b, p.c), "x"),          # mixed dtype
        (lambda: R.relu_net(x, p.a, p.b, p.c.float()), "c"),          # mixed dtype
        (lambda: R.relu_net(x.reshape(7, 1), p.a, p.b, p.c), "x"),    # wrong ndim
        (lambda: R.relu_net(x, p.a, p.b, p.c, chunk=0), "chunk"),
        (lambda: R.loss(x, y[:3], p.a, p.b, p.c), "y"),
        (lambda: R.loss_gradients(x, y.float(), p.a, p.b, p.c), "y"),
        (lambda: R.tangent_kernel(x, p.a, p.b, p.c, x2=torch.zeros(2, 2, dtype=DT)), "x2"),
        (lambda: R.layer_scales(-1.0, 1.0), "ratio"),
        (lambda: R.layer_scales(1.0, 0.0), "size"),
        (lambda: R.init_params(0, 1.0, 1.0), "m"),
        (lambda: R.init_params(5, 1.0, 1.0, batch=(0,)), "batch"),
        (lambda: R.init_params(5, -1.0, 1.0), "scale_ab"),
        (lambda: R.init_params(5, 1.0, 1.0, law="cauchy"), "law"),
        (lambda: R.init_params(5, torch.ones(3), 1.0, batch=(2,)), "scale_ab"),
        (lambda: R.init_params(5, 1.0, 1.0, knot_range=0.0), "knot_range"),
        (lambda: R.knots(p.a, p.b.float()), "b"),
        (lambda: R.conserved_quantity(p.a, p.b, p.c[None]), "c"),
        (lambda: R.reduced_coordinates(p.a, torch.ones(5, dtype=torch.int64), p.c), "b"),
        (lambda: R.reduced_velocity(x, y, nan_u, red["theta"], red["delta"]), "u"),
        (lambda: R.reduced_velocity(x, y, red["u"], red["theta"], red["delta"][:2]), "delta"),
        (lambda: R.reduced_velocity(x, y, torch.zeros(5, dtype=DT), red["theta"],
                                    torch.ones(5, dtype=DT)), "delta"),
        (lambda: R.knot_velocity(x, y, torch.zeros(5, dtype=DT), p.b, p.c), "a"),
        (lambda: R.gd_train(x, y, p, -0.1, 10), "lr"),
        (lambda: R.gd_train(x, y, p, 0.1, -1), "steps"),
        (lambda: R.gd_train(x, y, p, 0.1, torch.tensor([1.5])), "steps"),
        (lambda: R.gd_train(x, y, p, torch.ones(3, dtype=DT), 10), "lr"),
        (lambda: R.gd_train(x, y, p, torch.tensor(0.1), 10), "lr"),       # float32 lr
        (lambda: R.gd_train(x, y, p, 0.1, 10, record=[11]), "record"),
        (lambda: R.gd_train(x, y, R.Params(nan_a, p.b, p.c), 0.1, 10), "init.a"),
        (lambda: R.linearized_fit(x, y, p, 0.1, 10, x[None]), "x_eval"),
        (lambda: R.linearized_fit(x, y, p, 0.1, -1, x), "steps"),
        (lambda: R.knot_displacement(p.a, p.a[:2]), "e_end"),
        (lambda: R.knot_displacement(p.a, p.a, mask=torch.ones(5)), "mask"),
        (lambda: R.slope_mass_near_data(x, p.a, p.b, p.c, eps=0.0), "eps"),
        (lambda: R.slope_mass_near_data(x[None], p.a, p.b, p.c, eps=0.1), "x_data"),
        (lambda: R.sup_distance(np.zeros(3), np.zeros(4)), "g"),
        (lambda: R.sup_distance(np.array([np.nan]), np.zeros(1)), "f"),
        (lambda: R.curvature_weight_gaussian(0.0, sigma_a=0.0), "sigma_a"),
        (lambda: R.curvature_weight_uniform(0.0, knot_range=-1.0), "knot_range"),
        (lambda: R.natural_cubic_spline(np.array([0.0, 0.0, 1.0]), np.zeros(3)), "x"),
        (lambda: R.linear_interpolant(xs, np.array([0.0, np.inf])), "y"),
        (lambda: R.weighted_spline(xs, ys, lambda t: -1.0), "nu"),
        (lambda: R.weighted_spline(xs, np.zeros(3), lambda t: 1.0), "y"),
        (lambda: R.weighted_spline(xs, ys, lambda t: 1.0, -1.0), "smoothing"),
        (lambda: R.uniform_feature_kernel(np.zeros((2, 2)), xs), "p"),
        (lambda: R.uniform_kernel_norm(np.zeros(4)), "values"),
        (lambda: R.uniform_kernel_norm(np.full(9, np.nan)), "values"),
        (lambda: R.uniform_kernel_norm(np.zeros(9), knot_range=0.0), "knot_range"),
        (lambda: R.random_feature_limit(np.array([0.0, 3.0]), ys, knot_range=2.0), "x"),
        (lambda: R.random_feature_min_norm(x, y.expand(2, -1), p.a, p.b), "y"),
        (lambda: R.regime_sweep(x, y, torch.tensor([[1.0]]), m=5, steps=5), "ratios"),
        (lambda: R.regime_sweep(x, y, torch.ones(2), m=[5, 5, 5], steps=5), "m, size"),
        (lambda: R.regime_sweep(x, y, torch.ones(2), m=5, steps=0), "steps"),
        (lambda: R.regime_sweep(x, y, torch.ones(2), m=5, steps=5, loss_tol=0.0), "loss_tol"),
        (lambda: R.regime_sweep(x, y, torch.ones(2), m=5, steps=5, eps=-0.1), "eps"),
        (lambda: R.random_feature_fit(x, y, p.a, p.b, x[None]), "t"),
        (lambda: R.random_feature_fit(x, y, p.a, p.b, x, chunk=0), "chunk"),
        (lambda: R.width_sweep(x, y, [5, 5], [1.0], 5), "widths"),
        (lambda: R.width_sweep(x, y, [5, 10], [[1.0]], 5), "gammas"),
        (lambda: R.width_sweep(x, y, [5, 10], [1.0], 5, ratio=0.0), "ratio"),
        (lambda: R.width_sweep(x, y, [5, 10], [1.0], 5, base_width=0), "base_width"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_inputs_raise_value_error_naming_argument(case):
    call, name = _bad_cases()[case]
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: "):
        call()


def test_every_public_function_has_a_bad_input_case():
    called = set()
    for call, _ in _bad_cases():
        called.update(call.__code__.co_names)
    public = {name for name in R.__all__
              if callable(getattr(R, name)) and not isinstance(getattr(R, name), type)}
    assert public <= called, sorted(public - called)
