"""Unit tests of gradynamics.group_sparsity (DGLNN model, Algorithms 1 and 2, baselines)."""

from __future__ import annotations

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
    for eta in (2e-3, 1e-3):
        r = gs.train_dglnn(data, "gd", eta, round(1 / eta), init=(u, V), keep_u=True,
                           keep_w=True)
        u_T = r.u_history[-1]
        v_T = r.w_history[-1].reshape(2, 8, 3) / u_T.unsqueeze(-1) ** 2
        q = u_T**2 - 2 * v_T.square().sum(-1) - (u**2 - 2 * V.square().sum(-1))
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


def test_dlnn_orthogonal_design_and_selection() -> None:
    data = small_data("orthogonal", n=48, noise=0.05)
    run = gs.train_dlnn(data, 0.05, 600, alpha=1e-3)
    epoch, err = gs.select_by_validation(run)
    torch.testing.assert_close(err, run.est_err[epoch, torch.arange(2)])
    assert float(err.max()) < 0.05
    positive = gs.train_dlnn(data, 0.05, 50, only_positive=True)
    assert float(positive.w_final.min()) >= 0


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
def test_group_lasso_matches_skglm() -> None:
    data = small_data(n=20, noise=0.5)
    path = gs.group_lasso_path(data, torch.tensor([0.3, 0.1]), iterations=3000)
    for k in range(2):
        peer = gs.group_lasso_skglm(data.X[k].numpy(), data.y[k].numpy(), 3, 0.1)
        np.testing.assert_allclose(path[1, k].numpy(), peer, atol=1e-6)
    chosen = gs.group_lasso_validation(data, iterations=100)
    assert chosen.shape == (2, 24)


def test_lasso_and_least_squares_references() -> None:
    from sklearn.linear_model import LinearRegression

    data = small_data(n=60, noise=0.1)
    w_lasso = gs.lasso_path_validation(data)
    assert float((w_lasso - data.w_star).square().sum(-1).max()) < 0.5
    full = gs.least_squares_error(data)
    peer = LinearRegression(fit_intercept=False).fit(data.X[0].numpy(), data.y[0].numpy())
    np.testing.assert_allclose(full[0], ((peer.coef_ - data.w_star[0].numpy()) ** 2).sum())
    assert float((gs.oracle_least_squares_error(data) < full).all())


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
    with pytest.raises(ValueError, match=r"^data: full least squares"):
        gs.least_squares_error(small_data(n=12))
    with pytest.raises(ValueError, match=r"^penalty: "):
        gs.group_lasso_skglm(np.eye(3), np.ones(3), 3, 0.0)
    with pytest.raises(ValueError, match=r"^n_penalties: "):
        gs.group_lasso_validation(data, n_penalties=1)
