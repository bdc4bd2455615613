"""Unit tests of gradynamics.self_penalization (objective, gradient, slope at zero, PGD)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import laplacian_kernel, rbf_kernel

import gradynamics as gd
import gradynamics.self_penalization as sp

F64 = torch.float64


def additive_data(n: int, p: int, seed: int, seeds: int | None = None):
    gen = torch.Generator().manual_seed(seed)
    shape = (n, p) if seeds is None else (seeds, n, p)
    X = torch.randn(*shape, generator=gen, dtype=F64)
    y = torch.sin(X[..., 0]) + X[..., 1] ** 2
    y = y + 0.1 * torch.randn(y.shape, generator=gen, dtype=F64)
    return X, y - y.mean(-1, keepdim=True)


@pytest.mark.parametrize("q", [0.5, 1.0, 2.0])
def test_distances_match_scipy_pdist(q: float) -> None:
    X, _ = additive_data(15, 3, 0)
    dist = sp.feature_distances(X, q)
    for j in range(3):
        ref = squareform(pdist(X[:, [j]].numpy(), "minkowski", p=1.0) ** q)
        np.testing.assert_allclose(dist.values[0, j].numpy(), ref, rtol=1e-13, atol=1e-14)


def test_kernel_matches_sklearn() -> None:
    X, _ = additive_data(20, 4, 1)
    beta = torch.tensor([0.3, 0.0, 1.2, 0.05], dtype=F64)
    K1 = sp.kernel_matrix(beta, sp.feature_distances(X, 1))[0, 0]
    np.testing.assert_allclose(K1.numpy(), laplacian_kernel((X * beta).numpy(), gamma=1.0),
                               rtol=1e-12, atol=1e-14)
    K2 = sp.kernel_matrix(beta, sp.feature_distances(X, 2))[0, 0]
    np.testing.assert_allclose(K2.numpy(), rbf_kernel((X * beta.sqrt()).numpy(), gamma=1.0),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("q", [1.0, 2.0])
def test_objective_is_the_inner_ridge_minimum(q: float) -> None:
    X, y = additive_data(40, 3, 2)
    dist, lam = sp.feature_distances(X, q), 0.03
    beta = torch.tensor([0.4, 0.7, 0.1], dtype=F64)
    K = sp.kernel_matrix(beta, dist)[0, 0]
    ridge = KernelRidge(alpha=40 * lam, kernel="precomputed").fit(K.numpy(), y.numpy())
    coef = torch.as_tensor(ridge.dual_coef_)
    best = sp.ridge_primal_value(K, y, coef, lam)
    value, _ = sp.objective_and_gradient(beta, dist, y, lam)
    assert abs(float(value - best)) < 1e-12
    assert abs(float(sp.objective(beta, dist, y, lam) - best)) < 1e-12
    worse = sp.ridge_primal_value(K, y, coef + 1e-3 * torch.randn(40, dtype=F64), lam)
    assert float(worse) > float(best)


@pytest.mark.parametrize("q", [1.0, 2.0])
def test_gradient_matches_autograd_and_finite_differences(q: float) -> None:
    X, y = additive_data(30, 4, 3)
    dist, lam = sp.feature_distances(X, q), 0.05
    beta = torch.tensor([0.2, 0.5, 0.0, 0.9], dtype=F64)
    _, grad = sp.objective_and_gradient(beta, dist, y, lam)
    auto = torch.func.grad(lambda b: sp.objective(b, dist, y, lam))(beta)
    gd.compare(grad, auto).assert_below(rel_tol=1e-10, label="autograd")
    inner = torch.tensor([0.2, 0.5, 0.3, 0.9], dtype=F64)  # FD needs an interior point
    _, grad_in = sp.objective_and_gradient(inner, dist, y, lam)
    fd = gd.finite_difference_gradient(lambda b: sp.objective(b, dist, y, lam), inner)
    gd.compare(grad_in, fd).assert_below(rel_tol=1e-7, label="finite differences")


def test_batched_objective_matches_single_runs() -> None:
    X, y = additive_data(25, 3, 4, seeds=2)
    dist = sp.feature_distances(X, 1)
    lam = torch.tensor([0.01, 0.1], dtype=F64)
    beta = torch.rand(2, 2, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    values, grads = sp.objective_and_gradient(beta, dist, y, lam)
    assert values.shape == (2, 2) and grads.shape == (2, 2, 3)
    for s in range(2):
        single = sp.feature_distances(X[s], 1)
        for k in range(2):
            v, g = sp.objective_and_gradient(beta[s, k], single, y[s], float(lam[k]))
            torch.testing.assert_close(values[s, k], v, rtol=1e-12, atol=0)
            torch.testing.assert_close(grads[s, k], g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("q", [1, 2])
def test_gradient_at_zero_matches_general_gradient(q: int) -> None:
    X, y = additive_data(50, 3, 5)
    y = y + 0.3  # not centred: exercises the Sherman-Morrison mean term
    fast = sp.gradient_at_zero(X, y, 0.02, q)
    _, general = sp.objective_and_gradient(torch.zeros(3, dtype=F64),
                                           sp.feature_distances(X, q), y, 0.02)
    torch.testing.assert_close(fast, general, rtol=1e-10, atol=1e-13)


def test_abs_pair_form_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(6)
    a, x = torch.randn(2, 3, 40, generator=gen, dtype=F64)
    brute = (a[..., :, None] * a[..., None, :] * (x[..., :, None] - x[..., None, :]).abs())
    torch.testing.assert_close(sp.abs_pair_form(a, x), brute.sum((-1, -2)))


@pytest.mark.parametrize("q", [0.5, 2.0])
def test_noise_slope_samples_equal_appended_column_gradient(q: float) -> None:
    X, y = additive_data(30, 2, 9)
    dist, lam = sp.feature_distances(X, q), 0.05
    beta = torch.tensor([0.3, 0.6], dtype=F64)
    cols = torch.randn(3, 30, generator=torch.Generator().manual_seed(10), dtype=F64)
    samples = sp.noise_slope_samples(beta, dist, y, lam, cols)
    for r in range(3):
        X_aug = torch.cat([X, cols[r, :, None]], dim=1)
        _, grad = sp.objective_and_gradient(torch.cat([beta, beta.new_zeros(1)]),
                                            sp.feature_distances(X_aug, q), y, lam)
        torch.testing.assert_close(samples[r], grad[-1], rtol=1e-10, atol=1e-14)


def test_noise_slope_mean_matches_formula() -> None:
    X, y = additive_data(80, 2, 7)
    dist, lam = sp.feature_distances(X, 1), 0.02
    beta = torch.tensor([0.2, 0.8], dtype=F64)
    cols = torch.randn(4000, 80, generator=torch.Generator().manual_seed(8), dtype=F64)
    samples = sp.noise_slope_samples(beta, dist, y, lam, cols)
    predicted = sp.expected_noise_slope(beta, dist, y, lam, sp.distance_moment(1))
    stderr = samples.std() / 4000**0.5
    assert abs(float(samples.mean() - predicted)) < 4 * float(stderr)
    # one sample equals the gradient of the problem with the column appended
    X_aug = torch.cat([X, cols[0, :, None]], dim=1)
    _, grad = sp.objective_and_gradient(torch.cat([beta, beta.new_zeros(1)]),
                                        sp.feature_distances(X_aug, 1), y, lam)
    torch.testing.assert_close(samples[0], grad[-1], rtol=1e-10, atol=1e-14)


def test_distance_moment_by_monte_carlo() -> None:
    gen = torch.Generator().manual_seed(9)
    z = torch.randn(2, 400_000, generator=gen, dtype=F64)
    for q in (0.5, 1.0, 2.0):
        mc = float(((z[0] - z[1]).abs() ** q).mean())
        assert abs(mc - sp.distance_moment(q)) < 0.01 * sp.distance_moment(q)


def test_pgd_exact_zeros_kkt_and_no_reentry() -> None:
    X, y = additive_data(120, 6, 10)
    dist = sp.feature_distances(X, 1)
    res = sp.projected_gradient_descent(0.1, dist, y, 0.02, tol=1e-8, max_iter=3000,
                                        record_path=True)
    beta, grad = res.beta[0, 0], res.gradient[0, 0]
    assert bool(res.converged.all())
    assert torch.equal(beta[2:], torch.zeros(4, dtype=F64))   # exact zeros
    assert bool((beta[:2] > 0).all())
    assert float(grad[beta == 0].min()) > 0
    assert float(grad[beta > 0].abs().max()) < 1e-6
    assert bool((res.first_zero[0, 0, 2:] > 0).all()) and not bool(res.reentered.any())
    path = res.path[:, 0, 0]
    values = torch.stack([sp.objective(b, dist, y, 0.02) for b in path])
    assert bool((values[1:] <= values[:-1] + 1e-15).all())   # Armijo: monotone decrease
    assert res.path.shape[0] == int(res.n_iter.max()) + 1


def test_pgd_batched_equals_single() -> None:
    X, y = additive_data(60, 4, 11, seeds=3)
    lam = torch.tensor([0.01, 0.05], dtype=F64)
    dist = sp.feature_distances(X, 1)
    batched = sp.projected_gradient_descent(0.05, dist, y, lam, tol=1e-6)
    for s in (0, 2):
        single = sp.projected_gradient_descent(0.05, sp.feature_distances(X[s], 1), y[s],
                                               float(lam[1]), tol=1e-6)
        torch.testing.assert_close(batched.beta[s, 1], single.beta[0, 0], rtol=0, atol=1e-12)
        assert int(batched.n_iter[s, 1]) == int(single.n_iter[0, 0])


def test_selected_support_is_exact_positivity() -> None:
    beta = torch.tensor([0.0, 1e-300, 0.5], dtype=F64)
    assert sp.selected_support(beta).tolist() == [False, True, True]


def test_errors_name_the_argument() -> None:
    X, y = additive_data(10, 2, 12)
    dist = sp.feature_distances(X, 1)
    beta = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match=r"^X: "):
        sp.feature_distances(torch.zeros(3), 1)
    with pytest.raises(ValueError, match=r"^q: "):
        sp.feature_distances(X, 3)
    with pytest.raises(ValueError, match=r"^beta: "):
        sp.objective_and_gradient(-torch.ones(2, dtype=F64), dist, y, 0.1)
    with pytest.raises(ValueError, match=r"^beta: "):
        sp.objective(torch.zeros(2, dtype=torch.float32), dist, y, 0.1)
    with pytest.raises(ValueError, match=r"^y: "):
        sp.objective_and_gradient(beta, dist, y[:5], 0.1)
    with pytest.raises(ValueError, match=r"^lam: "):
        sp.objective_and_gradient(beta, dist, y, -1.0)
    with pytest.raises(ValueError, match=r"^dist: "):
        sp.kernel_matrix(beta, X)
    with pytest.raises(ValueError, match=r"^step: "):
        sp.projected_gradient_descent(0.1, dist, y, 0.1, step=0.0)
    with pytest.raises(ValueError, match=r"^shrink: "):
        sp.projected_gradient_descent(0.1, dist, y, 0.1, shrink=1.5)
    with pytest.raises(ValueError, match=r"^beta0: "):
        sp.projected_gradient_descent(-0.1, dist, y, 0.1)
    with pytest.raises(ValueError, match=r"^max_iter: "):
        sp.projected_gradient_descent(0.1, dist, y, 0.1, max_iter=0)
    with pytest.raises(ValueError, match=r"^K: "):
        sp.ridge_primal_value(torch.zeros(2, 3, dtype=F64), y, y, 0.1)
    with pytest.raises(ValueError, match=r"^moment: "):
        sp.expected_noise_slope(beta, dist, y, 0.1, -1.0)
    with pytest.raises(ValueError, match=r"^columns: "):
        sp.noise_slope_samples(beta, dist, y, 0.1, torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"^q: "):
        sp.gradient_at_zero(X, y, 0.1, 3)
    with pytest.raises(ValueError, match=r"^X and y: "):
        sp.gradient_at_zero(X, y[:4], 0.1, 1)
    with pytest.raises(ValueError, match=r"^a and x: "):
        sp.abs_pair_form(y, y[:3])
    with pytest.raises(ValueError, match=r"^beta: "):
        sp.selected_support(-beta - 1)


def test_mixed_dtypes_are_rejected() -> None:
    X, y = additive_data(10, 2, 12)
    dist = sp.feature_distances(X, 1)
    beta, f32 = torch.zeros(2, dtype=F64), torch.float32
    K = sp.kernel_matrix(beta, dist)[0, 0]
    with pytest.raises(ValueError, match=r"^y: dtype torch.float32 differs"):
        sp.objective(beta, dist, y.to(f32), 0.1)
    with pytest.raises(ValueError, match=r"^coef: dtype torch.float32 differs"):
        sp.ridge_primal_value(K, y, y.to(f32), 0.1)
    with pytest.raises(ValueError, match=r"^columns: dtype torch.float32 differs"):
        sp.noise_slope_samples(beta, dist, y, 0.1, torch.zeros(3, 10, dtype=f32))
    with pytest.raises(ValueError, match=r"^y: dtype torch.float32 differs"):
        sp.gradient_at_zero(X, y.to(f32), 0.1, 1)
    with pytest.raises(ValueError, match=r"^x: dtype torch.float32 differs"):
        sp.abs_pair_form(y, y.to(f32))


def test_selection_summary_counts() -> None:
    beta = torch.tensor([[0.5, 0.0, 0.2, 0.0], [0.5, 0.1, 0.0, 0.0]], dtype=F64)
    truth = torch.tensor([True, True, False, False])
    summary = sp.selection_summary(beta, truth)
    assert summary["exact"].tolist() == [False, True]
    assert summary["false_pos"].tolist() == [1, 0]
    assert summary["missed"].tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"^truth: "):
        sp.selection_summary(beta, torch.ones(3, dtype=torch.bool))


def test_baseline_supports_find_strong_linear_features() -> None:
    gen = np.random.default_rng(0)
    X = gen.standard_normal((120, 6))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 0.1 * gen.standard_normal(120)
    out = sp.baseline_supports(X, y, k=2, random_state=0)
    assert set(out) == {"lasso_cv", "forest_top_k", "mutual_info_top_k"}
    for name in ("forest_top_k", "mutual_info_top_k"):
        assert out[name][0].tolist() == [True, True, False, False, False, False], name
    assert out["lasso_cv"][0][:2].all() and all(t >= 0 for _, t in out.values())
    with pytest.raises(ValueError, match=r"^k: "):
        sp.baseline_supports(X, y, k=7)
    with pytest.raises(ValueError, match=r"^X and y: "):
        sp.baseline_supports(X, y[:5], k=2)


def test_interaction_benchmark_has_no_main_effect_for_the_pair() -> None:
    X, y, truth = sp.interaction_benchmark(range(3), n=4000, n_noise=4)
    assert X.shape == (3, 4000, 7) and y.shape == (3, 4000)
    assert truth.tolist() == [True, True, True, False, False, False, False]
    np.testing.assert_allclose(X.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(1), 1, rtol=1e-12)
    corr = np.einsum("sni,sn->si", X, y) / X.shape[1]  # standardised: correlation
    assert np.abs(corr[:, :2]).max() < 0.06  # x1, x2: interaction only, no main effect
    assert corr[:, 2].min() > 0.3             # x3: a main effect
    product = X[:, :, 0] * X[:, :, 1]
    assert np.einsum("sn,sn->s", product, y).min() / X.shape[1] > 0.5


def test_compare_selectors_agrees_with_its_parts() -> None:
    X, y, truth = sp.interaction_benchmark(range(2), n=60, n_noise=3, noise=0.1)
    out = sp.compare_selectors(X, y, truth, lam=0.01, k=3)
    res = sp.projected_gradient_descent(
        0.02, sp.feature_distances(torch.as_tensor(X), 1), torch.as_tensor(y), 0.01,
        tol=1e-4, max_iter=300)
    direct = sp.selection_summary(res.beta[:, 0], torch.as_tensor(truth))
    assert out["pgd"]["exact"] == pytest.approx(direct["exact"].double().mean().item())
    assert out["pgd"]["false_pos"] == pytest.approx(direct["false_pos"].double().mean().item())
    assert out["pgd"]["missed"] == pytest.approx(direct["missed"].double().mean().item())
    assert out["pgd"]["cpu_ratio"] == 1.0
    forest = [sp.baseline_supports(X[s], y[s], k=3, random_state=s)["forest_top_k"][0]
              for s in range(2)]
    assert out["forest_top_k"]["exact"] == np.mean([(m == truth).all() for m in forest])
    assert out["forest_top_k"]["size"] == 3.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(lam=-1.0, k=3), "lam"), (dict(lam=0.01, k=0), "k"),
    (dict(lam=0.01, k=3, truth=np.ones(2, dtype=bool)), "truth"),
    (dict(lam=0.01, k=3, y=np.zeros((2, 5))), "X and y"),
])
def test_compare_selectors_rejects_bad_input(kwargs, name) -> None:
    X, y, truth = sp.interaction_benchmark(range(2), n=20, n_noise=2)
    args = dict(X=X, y=y, truth=truth) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: "):
        sp.compare_selectors(**args)


@pytest.mark.parametrize("kwargs, name", [
    (dict(seeds=[]), "seeds"), (dict(seeds=[0], n=0), "n"),
    (dict(seeds=[0], n_noise=0), "n_noise"), (dict(seeds=[0], noise=-1.0), "noise"),
])
def test_interaction_benchmark_rejects_bad_input(kwargs, name) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        sp.interaction_benchmark(**kwargs)


def test_selection_data_is_reproducible_per_seed_and_follows_its_model() -> None:
    X, y, truth = sp.selection_data("additive", range(4), n=3000, p=5)
    assert X.shape == (4, 3000, 5) and y.shape == (4, 3000) and X.dtype == torch.float64
    assert truth.tolist() == [True, True, False, False, False]
    X3, y3, _ = sp.selection_data("additive", [3], n=3000, p=5)
    assert torch.equal(X3[0], X[3]) and torch.equal(y3[0], y[3])  # batching does not matter
    torch.testing.assert_close(y.mean(1), torch.zeros(4, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    signal = torch.sin(X[..., 0]) + X[..., 1] ** 2
    residual = y - (signal - signal.mean(1, keepdim=True))
    assert 0.09 < float(residual.std(1).min()) and float(residual.std(1).max()) < 0.11
    Xi, yi, _ = sp.selection_data("interaction", range(4), n=3000, p=5)
    corr = torch.einsum("snp,sn->sp", Xi, yi) / 3000
    assert float(corr[:, :2].abs().max()) < 0.1          # no main effect
    product = torch.einsum("sn,sn->s", Xi[..., 0] * Xi[..., 1], yi) / 3000
    assert float(product.min()) > 0.85                     # E[(X1 X2) y] = 1


@pytest.mark.parametrize("kwargs, name", [
    (dict(model="cubic"), "model"), (dict(seeds=[]), "seeds"), (dict(seeds=[-1]), "seeds"),
    (dict(n=0), "n"), (dict(p=1), "p"), (dict(dtype=torch.int64), "dtype"),
])
def test_selection_data_rejects_bad_input(kwargs, name) -> None:
    args = dict(model="additive", seeds=[0], n=10, p=3) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: "):
        sp.selection_data(**args)


def test_selection_study_matches_a_direct_run_whatever_the_chunk() -> None:
    lams = [0.01, 0.5]
    X, y, truth = sp.selection_data("interaction", range(3), n=40, p=6)
    res = sp.projected_gradient_descent(0.02, sp.feature_distances(X, 1), y,
                                        torch.tensor(lams, dtype=torch.float64),
                                        tol=1e-6, max_iter=400)
    direct = sp.selection_summary(res.beta, truth)
    for chunk in (1, 2, 3):
        out = sp.selection_study("interaction", range(3), 1, lams, n=40, p=6, tol=1e-6,
                                 max_iter=400, chunk=chunk)
        assert out["exact"].shape == (3, 2)
        for key in ("exact", "false_pos", "missed"):
            assert torch.equal(out[key], direct[key]), (chunk, key)
        assert torch.equal(out["n_iter"], res.n_iter)
        assert torch.equal(out["converged"], res.converged)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lams=[0.1, -1.0]), "lams"), (dict(lams=[]), "lams"), (dict(lams="a"), "lams"),
    (dict(lams=[float("nan")]), "lams"), (dict(q=3.0), "q"), (dict(chunk=0), "chunk"),
    (dict(model="cubic"), "model"),
])
def test_selection_study_rejects_bad_input(kwargs, name) -> None:
    args = dict(model="additive", seeds=[0], q=1, lams=[0.1], n=10, p=3) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: "):
        sp.selection_study(**args)
