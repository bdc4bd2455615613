"""Unit tests of gradynamics.group_sparsity (DGLNN model, Algorithms 1 and 2, baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradynamics.group_sparsity as gs

F64 = torch.float64


def small_data(design: str = "gaussian", reps: int = 2, n=30, noise=0.3, b: int = 3,
               seed: int = 0) -> gs.GroupData:
    w = torch.zeros(24, dtype=F64)
    w[:6] = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0, -1.0])
    return gs.make_data(n, 24, b, w, noise, repetitions=reps, design=design,
                        generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- data
def test_make_data_shapes_padding_and_orthogonal_design() -> None:
    data = small_data(n=[12, 30], noise=[0.0, 1.0], reps=3)
    assert data.grid_shape == (2, 2, 3) and data.batch == 12
    assert data.X.shape == (12, 30, 24) and data.n_samples.tolist()[:6] == [12] * 6
    assert float(data.X[0, 12:].abs().max()) == 0 and float(data.y[0, 12:].abs().max()) == 0
    noiseless = data.y[0, :12] - data.X[0, :12] @ data.w_star[0]
    assert float(noiseless.abs().max()) < 1e-12              # sigma = 0 rows are exact
    orth = gs.make_data(40, 24, 3, data.w_star[0], 1.0, design="orthogonal")
    gram = orth.X[0].T @ orth.X[0] / 40
    torch.testing.assert_close(gram, torch.eye(24, dtype=F64), rtol=0, atol=1e-12)
    rad = small_data("rademacher")
    assert set(rad.X[0].unique().tolist()) == {-1.0, 1.0}


def test_make_data_errors() -> None:
    w = torch.zeros(24, dtype=F64)
    with pytest.raises(ValueError, match=r"^group_size: "):
        gs.make_data(30, 24, 5, w, 0.1)
    with pytest.raises(ValueError, match=r"^design: "):
        gs.make_data(30, 24, 3, w, 0.1, design="bernoulli")
    with pytest.raises(ValueError, match=r"^n: "):
        gs.make_data(10, 24, 3, w, 0.1, design="orthogonal")
    with pytest.raises(ValueError, match=r"^w_star: "):
        gs.make_data(30, 24, 3, torch.zeros(12), 0.1)
    with pytest.raises(ValueError, match=r"^noise: "):
        gs.make_data(30, 24, 3, w, -1.0)
    with pytest.raises(ValueError, match=r"^w_star: contains"):
        gs.make_data(30, 24, 3, torch.full((24,), float("nan")), 0.1)


# ------------------------------------------------------------------------ model and loss
def test_gradients_match_autograd_and_finite_differences() -> None:
    data = small_data()
    gen = torch.Generator().manual_seed(1)
    u = 0.5 + torch.rand(2, 8, generator=gen, dtype=F64)
    V = torch.randn(2, 8, 3, generator=gen, dtype=F64)
    u_req, V_req = u.clone().requires_grad_(True), V.clone().requires_grad_(True)
    gs.dglnn_loss(data, u_req, V_req).sum().backward()
    grad_u, grad_V = gs.dglnn_gradients(data, u, V)
    torch.testing.assert_close(grad_u, u_req.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_V, V_req.grad, rtol=1e-12, atol=1e-12)
    w = gs.dglnn_weights(u, V)
    from gradynamics.verify import finite_difference_gradient
    fd = finite_difference_gradient(
        lambda x: ((data.X[0] @ x - data.y[0]).square().sum() / 30), w[0])
    torch.testing.assert_close(gs.loss_gradient_w(data, w)[0], fd, rtol=1e-7, atol=1e-7)


def test_model_errors() -> None:
    data = small_data()
    u, V = gs.init_dglnn(2, 8, 3)
    with pytest.raises(ValueError, match=r"^u and V: expected shapes"):
        gs.dglnn_weights(u, V[:, :4])
    with pytest.raises(ValueError, match=r"^u and V: dtypes differ"):
        gs.dglnn_weights(u.float(), V)
    with pytest.raises(ValueError, match=r"^w: expected shape"):
        gs.loss_gradient_w(data, torch.zeros(3, 24, dtype=F64))
    with pytest.raises(ValueError, match=r"^data: expected a GroupData"):
        gs.dglnn_loss("data", u, V)
    with pytest.raises(ValueError, match=r"^u: dtype torch.float32 differs from data's"):
        gs.dglnn_loss(data, u.float(), V.float())
    with pytest.raises(ValueError, match=r"^V: expected shape \(2, 8, 3\)"):
        gs.dglnn_gradients(data, *gs.init_dglnn(2, 6, 4))
    with pytest.raises(ValueError, match=r"^u: contains 1 NaN"):
        gs.dglnn_gradients(data, u.index_put((torch.tensor([0]), torch.tensor([0])),
                                             torch.tensor(float("nan"), dtype=F64)), V)
    with pytest.raises(ValueError, match=r"^u and V: expected shapes"):
        gs.conserved_quantity(u[0], V)
    with pytest.raises(ValueError, match=r"^index: expected entries in \[0, 2\)"):
        data.select([0, 2])
    with pytest.raises(ValueError, match=r"^index: expected a non-empty 1-D integer"):
        data.select([0.5])
    with pytest.raises(ValueError, match=r"^alpha: "):
        gs.init_dglnn(2, 8, 3, alpha=0.0)
    with pytest.raises(ValueError, match=r"^w: last axis"):
        gs.group_norms(torch.zeros(5), 3)


# ------------------------------------------------------------------------------ training
def test_alg1_step_equals_literal_step_and_gate_step() -> None:
    data = small_data()
    gen = torch.Generator().manual_seed(2)
    u = 0.3 + torch.rand(2, 8, generator=gen, dtype=F64)
    V = torch.nn.functional.normalize(torch.randn(2, 8, 3, generator=gen, dtype=F64), dim=-1)
    run = gs.train_dglnn(data, "alg1", 1e-2, 1, init=(u, V), keep_u=True, keep_w=True)
    grad_u, grad_V = gs.dglnn_gradients(data, u, V)
    literal = torch.nn.functional.normalize(V - grad_V / u.unsqueeze(-1) ** 4, dim=-1)
    u_next = u - 1e-2 * grad_u
    torch.testing.assert_close(run.u_history[1], u_next, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(run.w_history[1], gs.dglnn_weights(u_next, literal),
                               rtol=1e-10, atol=1e-12)


def test_plain_gd_is_a_real_gradient_step_and_conserves_at_first_order() -> None:
    data = small_data()
    u, V = gs.init_dglnn(2, 8, 3, alpha=0.5)
    run = gs.train_dglnn(data, "gd", 1e-3, 1, init=(u, V), keep_u=True)
    grad_u, _ = gs.dglnn_gradients(data, u, V)
    torch.testing.assert_close(run.u_history[1], u - 1e-3 * grad_u, rtol=1e-13, atol=0)
    drifts = []
    for eta in (4e-3, 2e-3):                 # to time T = 0.5: first order, drift halves
        r = gs.train_dglnn(data, "gd", eta, round(0.5 / eta), init=(u, V), keep_u=True,
                           keep_w=True)
        u_T = r.u_history[-1]
        v_T = r.w_history[-1].reshape(2, 8, 3) / u_T.unsqueeze(-1) ** 2
        q = gs.conserved_quantity(u_T, v_T) - gs.conserved_quantity(u, V)
        drifts.append(float(q.abs().max()))
    assert 1.8 < drifts[0] / drifts[1] < 2.2


def test_alg2_switch_rules() -> None:
    data = small_data()
    fixed = gs.train_dglnn(data, "alg2", 1e-3, 20, switch_epoch=7)
    assert fixed.switch_epoch.tolist() == [7, 7]
    tol = gs.train_dglnn(data, "alg2", 1e-3, 20, switch_tol=0.5)
    assert tol.switch_epoch.tolist() == [2, 2]     # first check compares with u = 1
    never = gs.train_dglnn(data, "alg2", 1e-3, 5, switch_tol=1e-9)
    assert never.switch_epoch.tolist() == [-1, -1]
    alg1 = gs.train_dglnn(data, "alg1", 1e-3, 5)
    torch.testing.assert_close(never.est_err, alg1.est_err)


def test_batched_trainer_matches_conventional_reference() -> None:
    data = small_data(reps=1, n=40)
    n, m = int(data.n_samples[0]), int(data.n_val[0])
    ref = gs.conventional_reference_train(data.X[0, :n], data.y[0, :n], data.X_val[0, :m],
                                          data.y_val[0, :m], data.w_star[0], 3, lr=1e-2,
                                          epochs=60, alpha=1e-3, switch_tol=0.1, dtype=F64)
    ours = gs.train_dglnn(data, "alg2", 1e-2, 60, alpha=1e-3, switch_tol=0.1)
    assert 10 < int(ours.switch_epoch[0]) < 60     # both phases of Algorithm 2 are compared
    np.testing.assert_allclose(ref["est_err"], ours.est_err[:, 0].numpy(), rtol=1e-8)
    np.testing.assert_allclose(ref["val_mse"], ours.val_mse[:, 0].numpy(), rtol=1e-8)


def test_train_errors() -> None:
    data = small_data()
    with pytest.raises(ValueError, match=r"^algorithm: "):
        gs.train_dglnn(data, "adam", 1e-3, 5)
    with pytest.raises(ValueError, match=r"^lr: "):
        gs.train_dglnn(data, "alg1", -1.0, 5)
    with pytest.raises(ValueError, match=r"^switch_tol/switch_epoch: Algorithm 2"):
        gs.train_dglnn(data, "alg2", 1e-3, 5)
    with pytest.raises(ValueError, match=r"^switch_tol/switch_epoch: only"):
        gs.train_dglnn(data, "alg1", 1e-3, 5, switch_tol=0.1)
    with pytest.raises(ValueError, match=r"^init: expected V"):
        gs.train_dglnn(data, "gd", 1e-3, 5, init=gs.init_dglnn(2, 4, 6))
    with pytest.raises(ValueError, match=r"^epochs: "):
        gs.train_dlnn(data, 1e-3, 0)
    with pytest.raises(ValueError, match=r"^result: "):
        gs.select_by_validation(None)
    with pytest.raises(ValueError, match=r"^patience: "):
        gs.patience_stop_epoch(torch.ones(5), 0)
    with pytest.raises(ValueError, match=r"^X: expected"):
        gs.conventional_reference_train(torch.zeros(5, 7), torch.zeros(5), torch.zeros(2, 7),
                                        torch.zeros(2), torch.zeros(7), 3, 1e-3, 2)
    good = (torch.zeros(5, 6), torch.zeros(5), torch.zeros(2, 6), torch.zeros(2), torch.zeros(6))
    with pytest.raises(ValueError, match=r"^y_val: expected shape \(2,\)"):
        gs.conventional_reference_train(*good[:3], torch.zeros(3), good[4], 3, 1e-3, 2)
    with pytest.raises(ValueError, match=r"^alpha: "):
        gs.conventional_reference_train(*good, 3, 1e-3, 2, alpha=0.0)
    with pytest.raises(ValueError, match=r"^switch_tol/switch_epoch: give at most one"):
        gs.conventional_reference_train(*good, 3, 1e-3, 2, switch_tol=0.1, switch_epoch=1)
    with pytest.raises(ValueError, match=r"^switch_epoch: "):
        gs.train_dglnn(data, "alg2", 1e-3, 5, switch_epoch=-1)
    with pytest.raises(ValueError, match=r"^alpha: "):
        gs.train_dlnn(data, 1e-3, 5, alpha=-1.0)
    with pytest.raises(ValueError, match=r"^curve: expected shape"):
        gs.patience_stop_epoch(torch.ones(2, 3, 4))


def test_dlnn_step_matches_autograd() -> None:
    data = small_data()
    alpha, lr = 0.3, 0.05
    a = torch.full((2, 24), alpha, dtype=F64, requires_grad=True)
    c = torch.full((2, 24), alpha, dtype=F64, requires_grad=True)
    residual = torch.einsum("bnp,bp->bn", data.X, a.square() - c.square()) - data.y
    (residual.square().sum(-1) / data.n_samples).sum().backward()
    a1, c1 = a.detach() - lr * a.grad, c.detach() - lr * c.grad
    run = gs.train_dlnn(data, lr, 1, alpha=alpha)
    torch.testing.assert_close(run.w_final, a1.square() - c1.square(), rtol=1e-12, atol=1e-14)
    positive = gs.train_dlnn(data, lr, 1, alpha=alpha, only_positive=True)
    a_pos = torch.full((2, 24), alpha, dtype=F64, requires_grad=True)
    residual = torch.einsum("bnp,bp->bn", data.X, a_pos.square()) - data.y
    (residual.square().sum(-1) / data.n_samples).sum().backward()
    expected = (a_pos.detach() - lr * a_pos.grad).square()
    torch.testing.assert_close(positive.w_final, expected, rtol=1e-12, atol=1e-14)


def test_validation_selection_tracks_the_weights_it_reports() -> None:
    data = small_data("orthogonal", n=48, noise=0.05)
    run = gs.train_dlnn(data, 0.05, 600, alpha=1e-3)
    epoch, err = gs.select_by_validation(run)
    # best_w is tracked during training; its errors are recomputed here from the raw data
    for k in range(2):
        m = int(data.n_val[k])
        val = (data.X_val[k, :m] @ run.best_w[k] - data.y_val[k, :m]).square().mean()
        torch.testing.assert_close(val, run.val_mse[:, k].min(), rtol=1e-12, atol=0)
        assert int(epoch[k]) == int(np.argmin(run.val_mse[:, k].numpy()))
    torch.testing.assert_close(err, (run.best_w - data.w_star).square().sum(-1))
    assert float(err.max()) < 0.05


def _patience_loop(values: list[float], patience: int) -> int:
    """The authors' EarlyStopping, written as the plain loop it is."""
    best, counter = float("inf"), 0
    for epoch, value in enumerate(values):
        if value < best:
            best, counter = value, 0
        else:
            counter += 1
            if counter >= patience:
                return epoch
    return len(values) - 1


def test_patience_stop_epoch_matches_a_loop() -> None:
    curve = torch.tensor([[5.0, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2]]).T
    assert gs.patience_stop_epoch(curve, 3).tolist() == [7]   # 3 flat epochs after epoch 4
    assert gs.patience_stop_epoch(curve[:, 0], 20).item() == 12   # never fires
    gen = torch.Generator().manual_seed(3)
    curves = torch.randint(0, 6, (40, 7), generator=gen).double()
    for patience in (1, 2, 4):
        expected = [_patience_loop(curves[:, j].tolist(), patience) for j in range(7)]
        assert gs.patience_stop_epoch(curves, patience).tolist() == expected


# ----------------------------------------------------------------------------- baselines
@pytest.fixture(scope="module")
def skglm_problem() -> tuple[gs.GroupData, np.ndarray]:
    """One small group-lasso problem solved once by skglm (its numba kernels compile on the
    first call, about 15 s of CPU: the only skglm call of this module)."""
    data = small_data(n=20, noise=0.5, reps=1)
    return data, gs.group_lasso_skglm(data.X[0].numpy(), data.y[0].numpy(), 3, 0.1)


def test_group_lasso_matches_skglm(skglm_problem) -> None:
    data, peer = skglm_problem
    assert np.count_nonzero(peer) not in (0, peer.size)   # a penalty with some groups at 0
    path = gs.group_lasso_path(data, torch.tensor([0.3, 0.1]), iterations=1000)
    np.testing.assert_allclose(path[1, 0].numpy(), peer, atol=1e-6)


def test_group_lasso_validation_picks_the_least_validation_error() -> None:
    data = small_data(n=20, noise=0.5)
    chosen, penalty = gs.group_lasso_validation(data, iterations=100, return_penalty=True)
    lam_max = gs.group_norms(gs.correlation(data), 3).amax(-1)
    grid = lam_max[:, None] * torch.logspace(0, -2, 10, dtype=F64)
    for k in range(2):
        assert any(math.isclose(float(penalty[k]), float(g), rel_tol=1e-12) for g in grid[k])
        path = gs.group_lasso_path(data.select([k]), grid[k], 100)[:, 0]
        val = [float((data.X_val[k] @ w - data.y_val[k]).square().mean()) for w in path]
        torch.testing.assert_close(chosen[k], path[int(np.argmin(val))])
    # at lambda_max every group is exactly zero (the KKT condition of the group lasso)
    at_max = gs.group_lasso_path(data, lam_max[None] * 1.000001, 200)[0]
    assert float(at_max.abs().max()) == 0.0


def test_lasso_and_least_squares_references() -> None:
    from sklearn.linear_model import Lasso, LinearRegression

    data = small_data(n=60, noise=0.1)
    w_lasso = gs.lasso_path_validation(data)
    X0, y0, w0 = data.X[0].numpy(), data.y[0].numpy(), data.w_star[0].numpy()
    alphas = np.abs(X0.T @ y0).max() / 60 * np.geomspace(1.0, 1e-2, 15)
    fits = [Lasso(alpha=a, fit_intercept=False, tol=1e-10, max_iter=100_000).fit(X0, y0).coef_
            for a in alphas]
    val = [np.mean((data.X_val[0].numpy() @ f - data.y_val[0].numpy()) ** 2) for f in fits]
    np.testing.assert_allclose(w_lasso[0].numpy(), fits[int(np.argmin(val))], atol=1e-4)
    full = gs.least_squares_error(data)
    peer = LinearRegression(fit_intercept=False).fit(X0, y0)
    np.testing.assert_allclose(full[0], ((peer.coef_ - w0) ** 2).sum())
    support = np.flatnonzero(w0)
    peer_s = LinearRegression(fit_intercept=False).fit(X0[:, support], y0)
    np.testing.assert_allclose(gs.oracle_least_squares_error(data)[0],
                               ((peer_s.coef_ - w0[support]) ** 2).sum())


def test_support_recovered() -> None:
    w_star = torch.tensor([[1.0, 1.0, 0.0, 0.0, 2.0, 0.0]])
    assert gs.support_recovered(w_star, w_star, 2).item()
    wrong = torch.tensor([[1.0, 1.0, 0.9, 0.0, 2.0, 0.0]])
    assert not gs.support_recovered(wrong, w_star, 2).item()
    assert gs.support_recovered(wrong, w_star, 2, threshold=1.0).item()
    with pytest.raises(ValueError, match=r"^w and w_star: "):
        gs.support_recovered(torch.zeros(1, 4), w_star, 2)


def test_baseline_errors() -> None:
    data = small_data()
    with pytest.raises(ValueError, match=r"^penalties: expected shape"):
        gs.group_lasso_path(data, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"^penalties: expected >= 0"):
        gs.group_lasso_path(data, torch.tensor([-1.0]))
    with pytest.raises(ValueError, match=r"^n_alphas: "):
        gs.lasso_path_validation(data, n_alphas=1)
    with pytest.raises(ValueError, match=r"^tol: "):
        gs.lasso_path_validation(data, tol=0.0)
    with pytest.raises(ValueError, match=r"^data: full least squares"):
        gs.least_squares_error(small_data(n=12))
    with pytest.raises(ValueError, match=r"^penalty: "):
        gs.group_lasso_skglm(np.eye(3), np.ones(3), 3, 0.0)
    with pytest.raises(ValueError, match=r"^n_penalties: "):
        gs.group_lasso_validation(data, n_penalties=1)
    with pytest.raises(ValueError, match=r"^y: expected a numeric array of shape \(3,\)"):
        gs.group_lasso_skglm(np.eye(3), np.ones(4), 3, 0.1)
    with pytest.raises(ValueError, match=r"^group_size: expected a divisor of p=3"):
        gs.group_lasso_skglm(np.eye(3), np.ones(3), 2, 0.1)
    with pytest.raises(ValueError, match=r"^X: contains 1 NaN"):
        gs.group_lasso_skglm(np.diag([1.0, np.nan, 1.0]), np.ones(3), 3, 0.1)
    with pytest.raises(ValueError, match=r"^data: the oracle needs a nonzero w_star"):
        gs.oracle_least_squares_error(gs.make_data(30, 24, 3, torch.zeros(24), 0.1))
    with pytest.raises(ValueError, match=r"^w_star: expected at least one nonzero group"):
        gs.support_recovered(torch.zeros(1, 4), torch.zeros(1, 4), 2)
    with pytest.raises(ValueError, match=r"^threshold: "):
        gs.support_recovered(torch.ones(1, 4), torch.ones(1, 4), 2, threshold=-1.0)


# ------------------------------------------------------------ orthogonal-design analysis
def test_logistic_entry_epoch_is_the_half_time_of_the_logistic_ode() -> None:
    from scipy.integrate import solve_ivp

    hat, alpha, lr = torch.tensor([0.5, 2.0, 4.0], dtype=F64), 1e-3, 1e-3
    predicted = gs.logistic_entry_epoch(hat, alpha, lr)
    for a, t_pred in zip(hat.tolist(), predicted.tolist(), strict=True):
        # x = u^2 obeys dx/dt = 8 eta x (a - x); integrate log x until x = a / 2
        def half(t, z, a=a):
            return math.exp(z[0]) - a / 2
        half.terminal = True
        sol = solve_ivp(lambda t, z, a=a: [8 * lr * (a - math.exp(z[0]))], (0, 10 * t_pred),
                        [math.log(alpha**2)], events=half, rtol=1e-10, atol=1e-12)
        # exact half-time log(a/alpha^2 - 1)/(8 eta a); the formula drops the -1
        assert math.isclose(sol.t_events[0][0], t_pred, rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"^hat_norms: expected positive"):
        gs.logistic_entry_epoch(torch.tensor([0.0, 1.0]), 1e-3, 1e-3)
    with pytest.raises(ValueError, match=r"^lr: "):
        gs.logistic_entry_epoch(hat, 1e-3, 0.0)


def test_entry_epochs_and_growth_slopes() -> None:
    t = torch.arange(101, dtype=F64)[:, None, None]
    rates = torch.tensor([[0.1, 0.2], [0.3, 0.05]], dtype=F64)
    u_hist = (1e-3 * torch.exp(rates * t)).sqrt()          # u^2 = 1e-6 exp(rate t): exact
    targets = torch.ones(2, 2, dtype=F64)
    slopes = gs.early_growth_slopes(u_hist, targets, below=0.01, skip=5)
    torch.testing.assert_close(slopes, rates, rtol=1e-10, atol=0)
    noisy = u_hist * torch.exp(0.01 * torch.randn(101, 2, 2, dtype=F64,
                                                  generator=torch.Generator().manual_seed(4)))
    ref = noisy[1:, 0, 0].square()
    epochs = torch.nonzero(ref < 0.01).squeeze(-1)[3:] + 1
    fit = np.polyfit(epochs.numpy(), noisy[epochs, 0, 0].square().log().numpy(), 1)[0]
    slope = gs.early_growth_slopes(noisy, targets, below=0.01, skip=3)[0, 0]
    assert math.isclose(float(slope), fit, rel_tol=1e-10)
    entry = gs.entry_epochs(u_hist.square(), targets, fraction=0.1)  # 1e-3 e^{rt} > 0.1
    expected = torch.ceil(torch.log(torch.tensor(100.0, dtype=F64)) / rates + 1e-12)
    assert entry.tolist() == expected.long().tolist()
    assert gs.entry_epochs(u_hist.square(), 1e12 * targets).tolist() == [[-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match=r"^norms: expected shape"):
        gs.entry_epochs(u_hist, torch.ones(3))
    with pytest.raises(ValueError, match=r"^u_history: expected shape"):
        gs.early_growth_slopes(u_hist, torch.ones(3))
    with pytest.raises(ValueError, match=r"^skip: "):
        gs.early_growth_slopes(u_hist, targets, skip=-1)


def test_transition_sample_size() -> None:
    ns = [20, 40, 60, 80]
    assert gs.transition_sample_size(ns, [0.0, 0.25, 0.75, 1.0]) == 50.0
    assert gs.transition_sample_size(ns, [0.6, 0.7, 0.8, 1.0]) == 20.0
    assert gs.transition_sample_size(ns, [0.0, 0.1, 0.2, 0.3]) == math.inf
    with pytest.raises(ValueError, match=r"^sample_sizes: expected an increasing"):
        gs.transition_sample_size([20, 10], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"^probability: expected 2 finite"):
        gs.transition_sample_size([10, 20], [0.0])


def test_noise_sweep_summary_on_an_exact_power_law() -> None:
    sigma = np.exp(np.linspace(0, 2, 6))
    base = torch.tensor(sigma, dtype=F64).repeat_interleave(3) ** 2   # 6 levels x 3 reps
    errors = {"DGLNN": 0.5 * base, "lasso": 2.0 * base ** 1.5}
    out = gs.noise_sweep_summary(sigma, errors, fit_levels=4)
    assert math.isclose(out["loglog_slope_low_noise"]["DGLNN"], 2.0, rel_tol=1e-12)
    assert math.isclose(out["loglog_slope_low_noise"]["lasso"], 3.0, rel_tol=1e-12)
    np.testing.assert_allclose(out["median_error"]["DGLNN"], 0.5 * sigma**2)
    assert out["fraction_reference_better"] == {"lasso": 1.0}
    assert out["median_below_at_every_level"] == {"lasso": True}
    with pytest.raises(ValueError, match=r"^errors: expected a dict"):
        gs.noise_sweep_summary(sigma, {"lasso": base})
    with pytest.raises(ValueError, match=r"^fit_levels: expected <= 6"):
        gs.noise_sweep_summary(sigma, errors, fit_levels=7)
    with pytest.raises(ValueError, match=r"^errors\['lasso'\]: expected a multiple of 6"):
        gs.noise_sweep_summary(sigma, {"DGLNN": base, "lasso": base[:5]})


def test_correlation_is_the_least_squares_estimate_on_an_orthogonal_design() -> None:
    data = small_data("orthogonal", n=48)
    w_ls = torch.linalg.lstsq(data.X, data.y.unsqueeze(-1)).solution.squeeze(-1)
    torch.testing.assert_close(gs.correlation(data), w_ls, rtol=1e-10, atol=1e-12)


def test_snr_and_dtype_moves() -> None:
    data = small_data("orthogonal", n=48, noise=0.5)
    noise_norm = (data.y - torch.einsum("bnp,bp->bn", data.X, data.w_star)).norm(dim=-1)
    # X^T X / n = I, so ||X w*|| = sqrt(n) ||w*|| exactly
    expected = math.sqrt(48) * data.w_star.norm(dim=-1) / noise_norm
    torch.testing.assert_close(data.snr(), expected, rtol=1e-12, atol=0)
    assert float(small_data(noise=0.0).snr().min()) > 1e12   # noiseless up to rounding
    single = data.to(torch.float32)
    assert single.X.dtype == torch.float32 and single.n_samples.dtype == torch.int64
    torch.testing.assert_close(single.y.double(), data.y, rtol=1e-6, atol=1e-6)
