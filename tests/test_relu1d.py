"""Unit tests of gradynamics.relu1d (shallow univariate ReLU networks, knots and splines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, interpolate

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


def test_relu_net_matches_loop():
    x, _ = _data()
    p = _params(5, batch=(3,))
    out = R.relu_net(x, p.a, p.b, p.c)
    assert out.shape == (3, 7)
    loop = torch.stack([sum(p.c[k, i] * torch.relu(p.a[k, i] * x + p.b[k, i]) for i in range(5))
                        for k in range(3)])
    torch.testing.assert_close(out, loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(R.evaluate(x, p.a, p.b, p.c, chunk=2), out, rtol=1e-12, atol=1e-12)


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
    torch.testing.assert_close(value, R.loss(x, y, p.a, p.b, p.c), rtol=1e-12, atol=1e-12)
    for mine, ref in zip((grads.a, grads.b, grads.c), _autograd_grads(x, y, p), strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-12)


def test_tangent_kernel_matches_jacobian():
    x, _ = _data(6)
    p = _params(4)
    theta = torch.cat([p.a, p.b, p.c])
    jac = torch.autograd.functional.jacobian(
        lambda t: R.relu_net(x, t[:4], t[4:8], t[8:]), theta)
    torch.testing.assert_close(R.tangent_kernel(x, p.a, p.b, p.c), jac @ jac.T,
                               rtol=1e-10, atol=1e-12)


def test_conservation_drift_shrinks_linearly_with_step():
    x, y = _data()
    p = _params(30, scale_c=1.0)
    drifts = []
    for lr in (1e-3, 5e-4, 2.5e-4):
        res = R.gd_train(x, y, p, lr, int(round(0.5 / lr)))
        delta_end = R.conserved_quantity(res.params.a, res.params.b, res.params.c)
        drifts.append(float((delta_end - R.conserved_quantity(p.a, p.b, p.c)).abs().max()))
    ratios = np.array(drifts[:-1]) / np.array(drifts[1:])
    assert drifts[-1] < 1e-2
    assert np.all((ratios > 1.7) & (ratios < 2.4)), (drifts, ratios)


def test_reduced_velocity_matches_autograd_flow():
    x, y = _data()
    p = _params(6, batch=(2,))
    grads, _ = R.loss_gradients(x, y, p.a, p.b, p.c)

    def coords(a, b, c):
        red = R.reduced_coordinates(a, b, c)
        return red["u"], red["theta"]

    _, (du, dtheta) = torch.func.jvp(coords, (p.a, p.b, p.c), (-grads.a, -grads.b, -grads.c))
    red = R.reduced_coordinates(p.a, p.b, p.c)
    du_r, dtheta_r = R.reduced_velocity(x, y, red["u"], red["theta"], red["delta"])
    torch.testing.assert_close(du_r, du, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(dtheta_r, dtheta, rtol=1e-9, atol=1e-12)


def test_knot_velocity_and_force_match_autograd():
    x, y = _data()
    p = _params(8)
    grads, _ = R.loss_gradients(x, y, p.a, p.b, p.c)
    _, de = torch.func.jvp(lambda a, b: -b / a, (p.a, p.b), (-grads.a, -grads.b))
    velocity, force = R.knot_velocity(x, y, p.a, p.b, p.c)
    torch.testing.assert_close(velocity, de, rtol=1e-9, atol=1e-12)
    # dL/de at fixed (a, c): b = -a e, so dL/de = -a dL/db.
    torch.testing.assert_close(force, -p.a * grads.b, rtol=1e-12, atol=1e-12)


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


def test_uniform_curvature_weight():
    vals = R.curvature_weight_uniform(np.array([-1.9, 0.0, 1.5, 2.5]), knot_range=2.0)
    np.testing.assert_allclose(vals, [0.25, 0.25, 0.25, 0.0])


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
    assert float(c2.norm(dim=-1).max()) <= float(c.norm(dim=-1).max()) + 1e-12


def test_init_params_laws_and_scales():
    g = torch.Generator().manual_seed(0)
    p = R.init_params(20_000, 0.5, 0.01, law="uniform", knot_range=2.0, generator=g)
    assert torch.all(p.a.abs() == 0.5)
    e = R.knots(p.a, p.b)
    assert float(e.abs().max()) <= 2.0 and abs(float(e.mean())) < 0.05
    assert abs(float(p.c.std()) - 0.01) < 1e-3
    s_ab, s_c = R.layer_scales(torch.tensor([0.01, 100.0]), 1e-2)
    torch.testing.assert_close(s_ab / s_c, torch.tensor([0.01, 100.0], dtype=DT))
    torch.testing.assert_close(s_ab * s_c, torch.full((2,), 1e-2, dtype=DT))
    q = R.init_params(10, s_ab, s_c, batch=(2,), generator=g)
    assert q.a.shape == (2, 10) and float(q.a[0].abs().max()) < float(q.a[1].abs().max())


def test_slope_mass_and_displacement():
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=DT)
    a = torch.tensor([1.0, 1.0, -2.0, 1.0], dtype=DT)
    e = torch.tensor([0.01, 0.5, 0.99, 5.0], dtype=DT)     # last knot outside the data range
    c = torch.tensor([1.0, 1.0, 1.0, 9.0], dtype=DT)
    mass = R.slope_mass_near_data(x, a, -a * e, c, eps=0.02)
    assert abs(float(mass) - 3.0 / 4.0) < 1e-12
    disp = R.knot_displacement(torch.zeros(3, dtype=DT), torch.tensor([0.1, -0.3, 5.0], dtype=DT))
    assert float(disp) == pytest.approx(0.3)


def test_gd_train_decreases_loss_and_records():
    x, y = _data()
    p = _params(40, batch=(2,), scale_c=0.1)
    res = R.gd_train(x, y, p, torch.tensor([1e-3, 2e-3], dtype=DT), 200, record=[0, 50, 200])
    assert res.a.shape == (3, 2, 40) and res.loss.shape == (3, 2)
    assert torch.all(res.loss[-1] < res.loss[0])
    torch.testing.assert_close(res.loss[-1], R.loss(x, y, *res.params.__dict__.values()))
    assert res.knots.shape == (3, 2, 40)


def test_regime_sweep_smoke():
    x, y = _data()
    g = torch.Generator().manual_seed(3)
    sw = R.regime_sweep(x, y, torch.tensor([1e-2, 1e2]), m=20, steps=60, generator=g,
                        early_steps=60, n_records=5)
    assert sw.dist_cubic.shape == (2,) and sw.f_final.shape == (2, 401)
    assert torch.all(sw.early_mass <= 1.0) and torch.all(sw.lr > 0)


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_value_error_naming_argument():
    x, y = _data()
    p = _params(5)
    nan_a = p.a.clone()
    nan_a[0] = float("nan")
    cases = [
        (lambda: R.relu_net(x, nan_a, p.b, p.c), "a"),
        (lambda: R.relu_net(x, p.a, p.b[:3], p.c), "a, b, c"),
        (lambda: R.loss(x, y[:3], p.a, p.b, p.c), "y"),
        (lambda: R.relu_net(x.reshape(7, 1), p.a, p.b, p.c), "x"),
        (lambda: R.gd_train(x, y, p, -0.1, 10), "lr"),
        (lambda: R.gd_train(x, y, p, 0.1, -1), "steps"),
        (lambda: R.gd_train(x, y, p, torch.ones(3, dtype=DT), 10), "lr"),
        (lambda: R.gd_train(x, y, p, 0.1, 10, record=[11]), "record"),
        (lambda: R.init_params(0, 1.0, 1.0), "m"),
        (lambda: R.init_params(5, -1.0, 1.0), "scale_ab"),
        (lambda: R.init_params(5, 1.0, 1.0, law="cauchy"), "law"),
        (lambda: R.init_params(5, torch.ones(3), 1.0, batch=(2,)), "scale_ab"),
        (lambda: R.layer_scales(-1.0, 1.0), "ratio"),
        (lambda: R.layer_scales(1.0, 0.0), "size"),
        (lambda: R.slope_mass_near_data(x, p.a, p.b, p.c, eps=0.0), "eps"),
        (lambda: R.weighted_spline(np.array([0.0, 0.0, 1.0]), np.zeros(3), lambda t: 1.0), "x"),
        (lambda: R.weighted_spline(np.array([0.0, 1.0]), np.zeros(2), lambda t: -1.0), "nu"),
        (lambda: R.weighted_spline(np.array([0.0, 1.0]), np.zeros(3), lambda t: 1.0), "y"),
        (lambda: R.weighted_spline(np.array([0.0, 1.0]), np.zeros(2), lambda t: 1.0, -1.0),
         "smoothing"),
        (lambda: R.curvature_weight_gaussian(0.0, sigma_a=0.0), "sigma_a"),
        (lambda: R.evaluate(x, p.a, p.b, p.c, chunk=0), "chunk"),
        (lambda: R.sup_distance(np.zeros(3), np.zeros(4)), "f and g"),
        (lambda: R.knot_velocity(x, y, torch.zeros(5, dtype=DT), p.b, p.c), "a"),
        (lambda: R.regime_sweep(x, y, torch.tensor([[1.0]]), m=5, steps=5), "ratios"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
