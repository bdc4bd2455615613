"""Unit tests of gradynamics.attention: closed forms vs autograd and peers, the task, trainers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy

from gradynamics import attention as at

F64 = torch.float64


def random_head(seed: int, runs: int = 2, n: int = 6, d_x: int = 5, d_k: int = 3, d_v: int = 4,
                n_classes: int = 3, scale: float = 0.7, dtype: torch.dtype = F64):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return (torch.randn(*shape, generator=gen, dtype=F64) * scale).to(dtype)

    weights = at.HeadWeights(rnd(runs, d_x, d_k), rnd(runs, d_x, d_k), rnd(runs, d_x, d_v),
                             rnd(runs, d_v, n_classes))
    x = torch.randn(runs, n, d_x, generator=gen, dtype=F64).to(dtype)
    y = torch.randint(n_classes, (runs, n), generator=gen)
    return x, y, weights


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 9), d_v=st.integers(1, 5))
def test_routing_and_value_laws_match_autograd(seed, n, d_v):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, n, generator=gen, dtype=F64, requires_grad=True)
    v = torch.randn(n, d_v, generator=gen, dtype=F64, requires_grad=True)
    u = torch.randn(n, d_v, generator=gen, dtype=F64)
    alpha = torch.softmax(scores, dim=-1)
    loss = ((alpha @ v) * u).sum()  # dL/do_i = u_i by construction
    g_s, g_v = torch.autograd.grad(loss, (scores, v))
    b = at.compatibility(u, v.detach())
    routed = at.routing_gradient(alpha.detach(), b)
    torch.testing.assert_close(routed, g_s, atol=1e-12, rtol=0)
    torch.testing.assert_close(at.value_gradient(alpha.detach(), u), g_v, atol=1e-12, rtol=0)
    assert float(g_s.sum(-1).abs().max()) < 1e-12  # zero row sums, on autograd's gradient


def test_reference_gradients_match_autograd_batched():
    x, y, weights = random_head(3, runs=3, n=7)
    closed = at.head_gradients(x, y, weights)
    auto = at.autograd_gradients(x, y, weights)
    torch.testing.assert_close(closed.score_grad, auto["scores"], atol=1e-13, rtol=0)
    torch.testing.assert_close(closed.value_grad, auto["values"], atol=1e-13, rtol=0)
    for name, c in zip(("W_Q", "W_K", "W_V", "W_O"), closed.weights.as_tuple(), strict=True):
        assert rel_err(c, auto[name]) < 1e-10, name
    ce = torch.nn.functional.cross_entropy(closed.forward.z.reshape(-1, 3), y.reshape(-1),
                                           reduction="none").view(3, 7).mean(-1)
    torch.testing.assert_close(closed.loss, ce, atol=1e-13, rtol=0)


@pytest.mark.parametrize("block_size", [1, 3, 7, 64])
def test_blocked_step_matches_autograd_and_reference(block_size):
    x, y, weights = random_head(4, runs=3, n=17)
    blocked = at.blocked_head_gradients(x, y, weights, block_size=block_size)
    auto = at.autograd_gradients(x, y, weights)
    for name, c in zip(("W_Q", "W_K", "W_V", "W_O"), blocked.weights.as_tuple(), strict=True):
        assert rel_err(c, auto[name]) < 1e-12, name
    ref = at.head_gradients(x, y, weights)
    torch.testing.assert_close(blocked.loss, ref.loss, atol=1e-14, rtol=0)
    entropy = torch.distributions.Categorical(logits=ref.forward.z).entropy().mean(-1)
    torch.testing.assert_close(blocked.entropy, entropy, atol=1e-14, rtol=0)
    accuracy = (ref.forward.z.argmax(-1) == y).to(F64).mean(-1)
    torch.testing.assert_close(blocked.accuracy, accuracy, atol=0, rtol=0)


def test_blocked_step_float32_agrees_with_float64_reference():
    x, y, weights = random_head(9, runs=2, n=300, d_x=20, d_k=10, d_v=15, n_classes=8,
                                scale=0.3)
    ref = at.head_gradients(x, y, weights)
    w32 = at.HeadWeights(*(w.float() for w in weights.as_tuple()))
    blocked = at.blocked_head_gradients(x.float(), y, w32, block_size=64)
    assert float((blocked.loss.double() - ref.loss).abs().max()) < 1e-6
    for c, r in zip(blocked.weights.as_tuple(), ref.weights.as_tuple(), strict=True):
        assert rel_err(c.double(), r) < 1e-5  # float32 rounding over 300 positions


def test_query_key_gradients_match_autograd_including_a_rectangular_block():
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(4, 3, generator=gen, dtype=F64, requires_grad=True)
    k = torch.randn(6, 3, generator=gen, dtype=F64, requires_grad=True)
    upstream = torch.randn(4, 6, generator=gen, dtype=F64)
    loss = ((q @ k.T / math.sqrt(3)) * upstream).sum()
    gq, gk = torch.autograd.grad(loss, (q, k))
    cq, ck = at.query_key_gradients(upstream, q.detach(), k.detach())
    torch.testing.assert_close(cq, gq, atol=1e-13, rtol=0)
    torch.testing.assert_close(ck, gk, atol=1e-13, rtol=0)


def test_first_order_decrease_of_a_score_step():
    gen = torch.Generator().manual_seed(11)
    scores = torch.randn(4, 6, generator=gen, dtype=F64)
    v = torch.randn(6, 3, generator=gen, dtype=F64)
    u = torch.randn(4, 3, generator=gen, dtype=F64)

    def loss(s):
        return ((torch.softmax(s, -1) @ v) * u).sum()

    alpha = torch.softmax(scores, -1)
    b = at.compatibility(u, v)
    predicted = float(at.first_order_score_decrease(alpha, b))
    eta = 1e-6
    step = scores - eta * at.routing_gradient(alpha, b)
    measured = float(loss(step) - loss(scores)) / eta
    assert abs(measured - predicted) / abs(predicted) < 1e-4


def test_m_step_hard_routing_lands_on_weighted_mean():
    alpha = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=F64)
    targets = torch.tensor([[1.0, 2], [3, 4], [5, 6], [7, 8]], dtype=F64)
    means = at.mixture_m_step(alpha, targets)
    torch.testing.assert_close(means, torch.tensor([[3.0, 4], [3, 4], [7, 8]], dtype=F64))
    # the tied version with one-hot inputs (W_V = V) gives the same means
    w = at.value_weights_m_step(torch.eye(3, dtype=F64), alpha, targets)
    torch.testing.assert_close(w, means, atol=1e-12, rtol=0)


def test_tied_m_step_and_least_squares_match_numpy_lstsq():
    gen = torch.Generator().manual_seed(21)
    n, d_x, d_v = 9, 4, 3
    alpha = torch.softmax(torch.randn(n, n, generator=gen, dtype=F64), -1)
    x = torch.randn(n, d_x, generator=gen, dtype=F64)
    targets = torch.randn(n, d_v, generator=gen, dtype=F64)
    # weighted least squares: rows sqrt(alpha_ij) x_j^T W ~ sqrt(alpha_ij) t_i^T
    a, xs, ts = alpha.numpy(), x.numpy(), targets.numpy()
    rows = np.concatenate([np.sqrt(a[i, j]) * xs[j][None] for i in range(n) for j in range(n)])
    rhs = np.concatenate([np.sqrt(a[i, j]) * ts[i][None] for i in range(n) for j in range(n)])
    expected = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    got = at.value_weights_m_step(x, alpha, targets)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10, rtol=0)
    expected_ls = np.linalg.lstsq(a @ xs, ts, rcond=None)[0]
    got_ls = at.least_squares_value_weights(x, alpha, targets)
    np.testing.assert_allclose(got_ls.numpy(), expected_ls, atol=1e-10, rtol=0)


def test_one_trainer_step_equals_a_step_of_the_public_functions():
    chain = at.sticky_chain(42, T=30)
    names = ("sgd", "em_like", "m_step", "ls_step")
    arms = [at.ARMS[a] for a in names]
    x = chain.inputs.to(F64).expand(len(arms), -1, -1).contiguous()
    y = chain.targets.expand(len(arms), -1).contiguous()
    init = at.init_weights([42] * len(arms))
    after = at.train_runs(x, y, init, arms, n_steps=1, record_steps=(1,)).history[1]
    ref = at.head_gradients(x, y, init)
    n = x.shape[-2]
    targets = ref.forward.o - n * ref.u  # t_i = o_i - dl_i/do_i (target_step 1)
    for r, arm in enumerate(arms):
        lrs = (arm.lr_q, arm.lr_k, arm.lr_v, arm.lr_o)
        for name, w0, g, lr, w1 in zip(("W_Q", "W_K", "W_V", "W_O"), init.as_tuple(),
                                       ref.weights.as_tuple(), lrs, after.as_tuple(),
                                       strict=True):
            if name == "W_V" and arm.m_step == "mixture":
                expected = at.value_weights_m_step(x[r], ref.forward.alpha[r], targets[r])
            elif name == "W_V" and arm.m_step == "least_squares":
                expected = at.least_squares_value_weights(x[r], ref.forward.alpha[r], targets[r])
            else:
                expected = w0[r] - lr * g[r]
            torch.testing.assert_close(w1[r], expected, atol=1e-10, rtol=1e-10,
                                       msg=f"{arm.name} {name}")


def test_trainer_agrees_with_the_conventional_nn_module_and_sgd():
    chain = at.sticky_chain(2024, T=40)
    x, y = chain.inputs.to(F64), chain.targets
    init = at.init_weights([2024, 2024])
    arms = [at.ARMS["sgd"], at.ARMS["em_like"]]
    fast = at.train_runs(x.expand(2, -1, -1).contiguous(), y.expand(2, -1).contiguous(), init,
                         arms, n_steps=8)
    for r, arm in enumerate(arms):
        one = at.HeadWeights(*(w[r] for w in init.as_tuple()))
        conventional = at.conventional_train(x, y, one, arm, n_steps=8)
        torch.testing.assert_close(fast.loss[r], conventional, atol=1e-12, rtol=0)
    assert float(fast.loss[1, -1]) < float(fast.loss[0, -1]) < float(fast.loss[0, 0])


def test_frozen_routing_shortcut_agrees_with_the_conventional_nn_module():
    """Runs with W_Q, W_K frozen train on A X computed once; autograd + SGD is the reference."""
    chain = at.sticky_chain(7777, T=40)
    x, y = chain.inputs.to(F64), chain.targets
    names = ("frozen_routing", "readout_only")
    arms = [at.ARMS[a] for a in names]
    init = at.init_weights([7777, 7777])
    fast = at.train_runs(x.expand(2, -1, -1).contiguous(), y.expand(2, -1).contiguous(), init,
                         arms, n_steps=8, block_size=16)
    for r, arm in enumerate(arms):
        one = at.HeadWeights(*(w[r] for w in init.as_tuple()))
        conventional = at.conventional_train(x, y, one, arm, n_steps=8)
        torch.testing.assert_close(fast.loss[r], conventional, atol=1e-12, rtol=0)
    assert float(fast.loss[0, -1]) < float(fast.loss[1, -1]) < float(fast.loss[1, 0])


def test_worker_threads_and_blocks_do_not_change_the_numbers():
    chain = at.sticky_chain(1337, T=50)
    names = ("sgd", "em_like", "m_step", "frozen_routing", "readout_only")
    arms = [at.ARMS[a] for a in names]
    x = chain.inputs.expand(len(arms), -1, -1).contiguous()  # float32, as in the chapter
    y = chain.targets.expand(len(arms), -1).contiguous()
    init = at.init_weights([1337] * len(arms), dtype=torch.float32)
    one = at.train_runs(x, y, init, arms, n_steps=4, workers=1, block_size=16)
    two = at.train_runs(x, y, init, arms, n_steps=4, workers=2, block_size=16)
    assert torch.equal(one.loss, two.loss) and torch.equal(one.final.W_V, two.final.W_V)
    other_blocks = at.train_runs(x, y, init, arms, n_steps=4, workers=1, block_size=7)
    torch.testing.assert_close(other_blocks.loss, one.loss, atol=1e-5, rtol=0)
    frozen = one.final
    torch.testing.assert_close(frozen.W_Q[3], init.W_Q[3])  # frozen routing stays put
    torch.testing.assert_close(frozen.W_V[4], init.W_V[4])  # readout_only: values stay put
    assert not torch.equal(frozen.W_O[4], init.W_O[4])


def test_transition_matrix_quirk_and_entropy():
    p = at.make_transition_matrix()
    row0 = torch.tensor([0.3498, 0.1660, 0.0830, 0.0553, 0.0415, 0.0553, 0.0830, 0.1660],
                        dtype=F64)
    torch.testing.assert_close(p[0], row0, atol=6e-5, rtol=0)
    assert abs(at.effective_self_probability() - 0.3498) < 1e-4
    torch.testing.assert_close(p.sum(1), torch.ones(8, dtype=F64))
    torch.testing.assert_close(torch.full((8,), 0.125, dtype=F64) @ p,
                               torch.full((8,), 0.125, dtype=F64))  # uniform is stationary
    # peer library: scipy's entropy of each row, averaged (uniform stationary law)
    entropy = float(np.mean([scipy_entropy(row) for row in p.numpy()]))
    assert abs(at.minimum_entropy(p) - entropy) < 1e-12 and abs(entropy - 1.8292) < 1e-4


def test_float32_transition_matrix_is_bitwise_the_scripts_row_loop():
    """The script builds P in float32 row by row; torch.multinomial draws from those bits, so
    the chain replays the authors' draws only if our vectorised float32 matrix is identical."""
    n, self_prob = 8, 0.3
    rows = []
    for i in range(n):
        row = torch.tensor([self_prob if i == j else 1.0 / min(abs(i - j), n - abs(i - j))
                            for j in range(n)], dtype=torch.float32)
        onehot = (torch.arange(n) == i).float()
        row = row / row.sum() * (1 - self_prob) + onehot * self_prob
        rows.append(row / row.sum())
    assert torch.equal(at.make_transition_matrix(dtype=torch.float32), torch.stack(rows))


def test_sticky_chain_statistics_match_the_scripts_recipe():
    chain = at.sticky_chain(42, T=20_000)
    p = chain.transition
    # empirical transition frequencies of the chain against its transition matrix
    pairs = chain.symbols[:-1] * 8 + chain.symbols[1:]
    counts = torch.bincount(pairs, minlength=64).view(8, 8).to(F64)
    freq = counts / counts.sum(1, keepdim=True)
    se = (p * (1 - p) / counts.sum(1, keepdim=True)).sqrt()
    assert float(((freq - p).abs() / se).max()) < 4.5  # 64 cells, no cell beyond 4.5 sigma
    # inputs are mu_{y_{t-1}} + N(0, I): mean 0 and variance 1 per coordinate
    noise = (chain.inputs - chain.embeddings[chain.symbols[:-1]]).to(F64)
    assert float(noise.mean(0).abs().max()) < 5 / math.sqrt(noise.shape[0])
    assert float((noise.var(0) - 1).abs().max()) < 0.06
    torch.testing.assert_close(chain.embeddings,
                               torch.randn(8, 20, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(chain.targets, chain.symbols[1:])
    again = at.sticky_chain(42, T=60)
    assert torch.equal(again.symbols, chain.symbols[:60])  # same seed, same draws
    assert not torch.equal(at.sticky_chain(43, T=60).symbols, again.symbols)


def test_bayes_filter_limits():
    chain = at.sticky_chain(7, T=300)
    p = chain.transition
    # uninformative observations: the predictor is the stationary (uniform) law, CE = ln 8
    ce_blind = at.bayes_cross_entropy(chain.inputs, chain.targets, p, chain.embeddings,
                                      noise_std=1e6)
    assert abs(ce_blind - math.log(8)) < 1e-9
    # noiseless observations: the predictor is P[y_{t-1}], CE = mean -log P[y_{t-1}, y_t]
    clean = chain.embeddings[chain.symbols[:-1]].to(F64)
    ce_clean = at.bayes_cross_entropy(clean, chain.targets, p, chain.embeddings, noise_std=0.05)
    exact = float(-p[chain.symbols[:-1], chain.symbols[1:]].log().mean())
    assert abs(ce_clean - exact) < 1e-9
    ce = at.bayes_cross_entropy(chain.inputs, chain.targets, p, chain.embeddings)
    assert 1.7 < ce < math.log(8)  # informative but noisy: between the two limits


def test_init_matches_the_scripts_reseeded_draws():
    """The script re-seeds, then draws W_Q, W_K, W_V, W_O in turn (randn * 0.1) on the global
    generator; replay that on torch's global generator and compare bit for bit."""
    torch.manual_seed(2024)
    drawn = [torch.randn(*shape) * 0.1 for shape in ((20, 10), (20, 10), (20, 15), (15, 8))]
    init = at.init_weights([2024], dtype=torch.float32)
    for ours, script in zip(init.as_tuple(), drawn, strict=True):
        assert torch.equal(ours[0], script)


def test_steps_to_threshold():
    losses = torch.tensor([[3.0, 2.0, 1.0], [3.0, 3.0, 3.0]])
    assert at.steps_to_threshold(losses, 1.5).tolist() == [2, 3]
    assert at.steps_to_threshold(losses, torch.tensor([2.5, 3.5])).tolist() == [1, 0]


def test_participation_ratio_exact_cases():
    gen = torch.Generator().manual_seed(3)
    # rows on a line: one direction of variance
    direction = torch.tensor([[1.0, 2.0, -1.0]], dtype=F64)
    line = torch.randn(50, 1, generator=gen, dtype=F64) * direction
    assert abs(float(at.participation_ratio(line)) - 1) < 1e-12
    # +-e_k in d dims: covariance proportional to the identity, PR = d exactly
    d = 5
    cube = torch.cat([torch.eye(d, dtype=F64), -torch.eye(d, dtype=F64)])
    assert abs(float(at.participation_ratio(cube)) - d) < 1e-12
    # spectrum (4, 1): PR = 25 / 17
    two = torch.cat([cube[:, :2] * torch.tensor([2.0, 1.0], dtype=F64)])[[0, 1, 5, 6]]
    assert abs(float(at.participation_ratio(two)) - 25 / 17) < 1e-12


def test_training_geometry_exact_case():
    """Routing frozen (A constant) and W_V growing linearly: V_t = (1 + t/10) V_0, so the value
    path is t/30 of its total move, each relative step is known, and the routing never moves."""
    x, _, w = random_head(6, runs=2, n=8)
    history = {t: at.HeadWeights(w.W_Q, w.W_K, w.W_V * (1 + t / 10), w.W_O)
               for t in (0, 10, 20, 30)}
    geo = at.training_geometry(x, history)
    torch.testing.assert_close(geo.value_change,
                               torch.tensor([[0.0, 1 / 3, 2 / 3, 1.0]] * 2, dtype=F64))
    torch.testing.assert_close(geo.value_step,
                               torch.tensor([[1.0, 1 / 2, 1 / 3]] * 2, dtype=F64))
    assert float(geo.routing_step.abs().max()) == 0.0
    assert geo.half_time("value").tolist() == [20.0, 20.0]
    # scaling the values leaves their covariance spectrum's shape, hence the PR, unchanged
    torch.testing.assert_close(geo.value_pr[:, 1], geo.value_pr[:, 0])
    assert geo.steps == (0, 10, 20, 30) and geo.output_pr.shape == (2, 4)


def test_speedup_metrics_on_hand_made_curves():
    """Per-seed and script's speed-up on loss curves whose answers are known by hand."""
    n_steps = 4
    # runs ordered seed-major: (seed 0: sgd, em_like), (seed 1: sgd, em_like)
    loss = torch.tensor([[5.0, 4.0, 3.0, 2.5, 2.0],    # seed 0 sgd: final 2.0
                         [5.0, 3.0, 1.9, 1.5, 1.0],    # seed 0 em: below 2.0 at step 2
                         [5.0, 4.5, 4.0, 3.5, 3.0],    # seed 1 sgd: final 3.0
                         [5.0, 4.0, 3.5, 3.2, 2.4]])   # seed 1 em: below 3.0 at step 4 only
    result = at.TrainResult(loss=loss, entropy=loss, accuracy=loss, final=None)
    exp = at.StickyExperiment(seeds=(1, 2), arms=("sgd", "em_like"), T=10, n_steps=n_steps,
                              result=result, bayes=torch.zeros(2),
                              heldout_loss=torch.zeros(2, 2), h_min=0.0,
                              inputs=torch.zeros(2, 9, 3), targets=torch.zeros(2, 9))
    assert exp.steps_to_beat().tolist() == [2, 4]
    torch.testing.assert_close(exp.speedup(), torch.tensor([2.0, 1.0], dtype=F64))
    # script: threshold = mean final SGD loss 2.5, searched over steps 0..n_steps-1 only;
    # seed 1's em_like never goes below 2.5 before the last update, so it counts n_steps
    mean_steps, ratio = exp.scripts_speedup()
    assert (mean_steps, ratio) == (3.0, 4 / 3)


def test_full_size_summary_round_trip(tmp_path):
    exp = at.sticky_experiment(seeds=(42, 2024), arms=("sgd", "em_like"), T=30, n_steps=5)
    summary = at.full_size_summary(exp)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(summary))
    loaded = at.load_full_size_summary(path)
    assert loaded["arms"]["em_like"]["loss"] == [round(float(v), 6)
                                                 for v in exp.final("loss", "em_like")]
    assert loaded["steps_to_beat_sgd"] == exp.steps_to_beat().tolist()
    del summary["scripts_mean_steps"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"^path: results file .* no 'scripts_mean_steps'"):
        at.load_full_size_summary(path)
    del summary["arms"]["sgd"]["heldout"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"^path: arm 'sgd' needs 2 values of 'heldout'"):
        at.load_full_size_summary(path)
    with pytest.raises(ValueError, match=r"^path: no results file"):
        at.load_full_size_summary(tmp_path / "missing.json")


# ----------------------------------------------------------------------------------------------
# Clear errors: one test per public entry point, anchored on the argument's name
# ----------------------------------------------------------------------------------------------

X, Y, W = random_head(0)
W32 = at.HeadWeights(*(w.float() for w in W.as_tuple()))
P3 = torch.full((3, 3), 1 / 3, dtype=F64)
CHAIN = at.sticky_chain(0, T=10)
EXPERIMENT = at.sticky_experiment(seeds=(1,), arms=("sgd",), T=12, n_steps=2,
                                  record_steps=(0, 2))
GEOMETRY = at.training_geometry(EXPERIMENT.inputs.float(), EXPERIMENT.arm_history("sgd"))


@pytest.mark.parametrize("call, pattern", [
    (lambda: at.routing_gradient(torch.ones(3, 3, dtype=F64), torch.zeros(3, 3, dtype=F64)),
     r"^alpha: probabilities must sum to 1"),
    (lambda: at.routing_gradient(P3, torch.zeros(3, 2, dtype=F64)), r"^b: expected the shape"),
    (lambda: at.routing_gradient(P3, torch.zeros(3, 3)), r"^b: dtype torch.float32 differs"),
    (lambda: at.routing_gradient(torch.ones(3, 3, dtype=torch.int64), P3),
     r"^alpha: expected a floating-point tensor"),
    (lambda: at.compatibility(torch.zeros(3, 2), torch.zeros(2)), r"^v: expected 2 or 3"),
    (lambda: at.compatibility(torch.zeros(3, 2), torch.zeros(3, 2, dtype=F64)),
     r"^v: dtype torch.float64 differs"),
    (lambda: at.value_gradient(P3, torch.zeros(2, 2, dtype=F64)), r"^u: expected 3 rows"),
    (lambda: at.value_gradient(P3, torch.zeros(2, 3, 2, dtype=F64)),
     r"^u: leading axes \(2,\) differ from alpha's \(\)"),
    (lambda: at.compatibility(torch.zeros(2, 3, 2), torch.zeros(3, 3, 2)),
     r"^v: leading axes \(3,\) differ from u's \(2,\)"),
    (lambda: at.query_key_gradients(torch.zeros(2, 3), torch.zeros(5, 2, 4),
                                    torch.zeros(3, 4)), r"^q: leading axes \(5,\) differ"),
    (lambda: at.value_gradient(P3, torch.zeros(3, 2)), r"^u: dtype torch.float32 differs"),
    (lambda: at.query_key_gradients(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(3, 4,
                                    dtype=F64)), r"^k: dtype torch.float64 differs"),
    (lambda: at.query_key_gradients(torch.zeros(2, 2), torch.zeros(2, 4), torch.zeros(3, 4)),
     r"^score_grad: expected \(\.\.\., 2, 3\)"),
    (lambda: at.query_key_gradients(torch.zeros(2), torch.zeros(2, 4), torch.zeros(3, 4)),
     r"^score_grad: expected 2 or 3"),
    (lambda: at.first_order_score_decrease(P3 * 2, P3), r"^alpha: probabilities must sum"),
    (lambda: at.head_forward(X.float(), W), r"^x: dtype torch.float32 differs"),
    (lambda: at.head_forward(X, at.HeadWeights(W.W_Q, W.W_K.float(), W.W_V, W.W_O)),
     r"^W_K: dtype torch.float32 differs"),
    (lambda: at.head_forward(X, at.HeadWeights(W.W_Q, W.W_K, W.W_V, W.W_O[:, :2])),
     r"^W_O: expected 4 rows"),
    (lambda: at.head_forward(X[0], W), r"^x: leading axes \(\) differ"),
    (lambda: at.head_gradients(X, Y + 10, W), r"^y: labels must lie in \[0, 2\]"),
    (lambda: at.head_gradients(X, Y.double(), W), r"^y: expected integer class labels"),
    (lambda: at.autograd_gradients(X, Y[:, :3], W), r"^y: expected shape \(2, 6\)"),
    (lambda: at.blocked_head_gradients(X, Y, W, block_size=0), r"^block_size: expected an"),
    (lambda: at.blocked_head_gradients(X, Y, W32), r"^x: dtype torch.float64 differs"),
    (lambda: at.mixture_m_step(torch.zeros(2, 2), torch.ones(2, 1)), r"^alpha: every value"),
    (lambda: at.mixture_m_step(torch.eye(2), torch.ones(2)), r"^targets: expected 2 dim"),
    (lambda: at.mixture_m_step(torch.eye(2), torch.ones(2, 1, dtype=F64)),
     r"^targets: dtype torch.float64 differs"),
    (lambda: at.value_weights_m_step(torch.ones(3, 2, dtype=F64), P3,
                                     torch.ones(3, 1, dtype=F64)),
     r"^x: the least-squares Gram matrix is singular"),
    (lambda: at.value_weights_m_step(torch.ones(3, 2), P3, torch.ones(3, 1, dtype=F64)),
     r"^x: dtype torch.float32 differs"),
    (lambda: at.value_weights_m_step(torch.eye(3, dtype=F64), P3, torch.ones(3, 1, dtype=F64),
                                     ridge=-1.0), r"^ridge: expected >= 0"),
    (lambda: at.least_squares_value_weights(torch.ones(3, 2, dtype=F64), P3,
                                            torch.ones(3, 1, dtype=F64)),
     r"^x: the least-squares Gram matrix is singular"),
    (lambda: at.least_squares_value_weights(torch.ones(2, 2, dtype=F64), P3,
                                            torch.ones(3, 1, dtype=F64)),
     r"^x: expected 3 rows"),
    (lambda: at.make_transition_matrix(self_prob=1.5), r"^self_prob: expected a probability"),
    (lambda: at.make_transition_matrix(n_symbols=1), r"^n_symbols: expected an integer >= 2"),
    (lambda: at.effective_self_probability(self_prob=-0.1), r"^self_prob: expected > 0"),
    (lambda: at.minimum_entropy(torch.full((3, 3), 0.5)), r"^transition: probabilities must"),
    (lambda: at.sticky_chain(0, T=1), r"^T: expected an integer >= 2"),
    (lambda: at.bayes_cross_entropy(CHAIN.inputs, CHAIN.targets, CHAIN.transition,
                                    CHAIN.embeddings, noise_std=0.0), r"^noise_std: expected > 0"),
    (lambda: at.bayes_cross_entropy(CHAIN.inputs, CHAIN.targets + 8, CHAIN.transition,
                                    CHAIN.embeddings), r"^targets: labels must lie"),
    (lambda: at.init_weights([]), r"^seeds: expected at least one seed"),
    (lambda: at.init_weights([1], d_k=0), r"^d_k: expected an integer >= 1"),
    (lambda: at.train_runs(X, Y, W, [at.Arm("bad", 0.1, 0.1, -0.1, 0.1)] * 2, 1),
     r"^arms\[bad\]\.lr_v: expected >= 0"),
    (lambda: at.train_runs(X, Y, W, [at.ARMS["sgd"]], 1), r"^arms: expected one arm per run"),
    (lambda: at.train_runs(X, Y, W, [at.ARMS["sgd"]] * 2, -1), r"^n_steps: expected an"),
    (lambda: at.train_runs(X, Y, W, [at.ARMS["sgd"]] * 2, 1, workers=0), r"^workers: expected"),
    (lambda: at.train_runs(X, Y, W, [at.ARMS["sgd"]] * 2, 1, record_steps=(-1,)),
     r"^record_steps: expected an integer >= 0"),
    (lambda: at.train_runs(X[0], Y[0], W.runs(0), [at.ARMS["sgd"]], 1),
     r"^x: leading axes \(\) differ"),
    (lambda: at.sticky_experiment(seeds=[1], arms=("nope",), T=10, n_steps=1),
     r"^arms: unknown arm 'nope'"),
    (lambda: at.sticky_experiment(seeds=[], T=10, n_steps=1), r"^seeds: expected at least"),
    (lambda: at.steps_to_threshold(torch.zeros(2, 2, 2), 1.0), r"^losses: expected 1 or 2"),
    (lambda: at.steps_to_threshold(torch.zeros(2, 3), torch.zeros(3)), r"^threshold: expected"),
    (lambda: at.conventional_train(X[0], Y[0], W.runs(0), at.ARMS["sgd"], 1),
     r"^init: expected the weights of one run"),
    (lambda: at.conventional_train(X[0], Y[0], W.runs(0), at.ARMS["m_step"], 1),
     r"^arm: the conventional trainer has no M-step"),
    (lambda: at.participation_ratio(torch.zeros(1, 3)), r"^features: expected at least 2 rows"),
    (lambda: at.participation_ratio(torch.ones(4, 3)), r"^features: all rows are equal"),
    (lambda: at.training_geometry(X, {0: W}), r"^history: expected weights recorded at two"),
    (lambda: at.causal_mask(0), r"^n: expected an integer >= 1"),
    (lambda: GEOMETRY.half_time("frame"), r"^which: expected 'routing' or 'value'"),
    (lambda: EXPERIMENT.curve("loss", "nope"), r"^arm: expected one of"),
    (lambda: EXPERIMENT.curve("perplexity", "sgd"), r"^metric: expected 'loss'"),
    (lambda: EXPERIMENT.run_weights(0, "sgd", 3), r"^step: expected a recorded step"),
    (lambda: at.blocked_head_gradients(X[0], Y[0], W.runs(0)), r"^x: leading axes"),
])
def test_bad_inputs_raise_value_errors_naming_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_every_public_function_has_an_error_case():
    """Coverage of the table above: each public function of the module appears in it."""
    import inspect
    from pathlib import Path

    text = Path(__file__).read_text(encoding="utf-8")
    table = text[text.index("@pytest.mark.parametrize(\"call, pattern\""):
                 text.index("def test_bad_inputs_raise_value_errors_naming_the_argument")]
    exempt = {"full_size_summary": "takes a StickyExperiment the library built",
              "load_full_size_summary": "errors tested in test_full_size_summary_round_trip"}
    functions = [name for name in at.__all__ if inspect.isfunction(getattr(at, name))]
    missing = [name for name in functions
               if name not in exempt and f"at.{name}(" not in table]
    assert not missing, f"public functions without an error case: {missing}"


def test_attention_page_source_is_clean():
    """No control characters (a TAB once ate the '\\t' of '\\times'), no book-only macros,
    code lines of at most 88 characters, code cells of at most 18 lines."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "book" / "attention" / "attention_dynamics.md"
    text = page.read_text(encoding="utf-8")
    bad = sorted({repr(c) for c in text if ord(c) < 32 and c != "\n"})
    assert not bad, f"control characters in the page: {bad}"
    assert not re.search(r"(?<![\\a-zA-Z])imes\b", text), "a '\\times' lost its '\\t'"
    macros = re.findall(r"\\(?:T|E|R|softmax|diag|KL|tr|relu)(?![a-zA-Z])", text)
    assert not macros, f"book-only macros: {sorted(set(macros))}"
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, flags=re.S)
    for index, cell in enumerate(cells):
        for line in cell.splitlines():
            assert len(line) <= 88 or "%pip install" in line, line
        body = cell.split("---\n")[-1] if cell.startswith("---\n") else cell
        if index > 1:  # the install and setup cells follow the template
            assert len(body.splitlines()) <= 18, f"code cell over 18 lines: {body[:60]!r}"
