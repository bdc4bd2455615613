"""Unit tests of gradynamics.attention: closed forms vs autograd, the task, the batched trainer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradynamics import attention as at

F64 = torch.float64


def random_head(seed: int, runs: int = 2, n: int = 6, d_x: int = 5, d_k: int = 3, d_v: int = 4,
                n_classes: int = 3, scale: float = 0.7):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=F64) * scale

    weights = at.HeadWeights(rnd(runs, d_x, d_k), rnd(runs, d_x, d_k), rnd(runs, d_x, d_v),
                             rnd(runs, d_v, n_classes))
    x = torch.randn(runs, n, d_x, generator=gen, dtype=F64)
    y = torch.randint(n_classes, (runs, n), generator=gen)
    return x, y, weights


def autograd_loss(x, y, weights):
    fwd = at.head_forward(x, weights)
    ce = torch.nn.functional.cross_entropy(fwd.z.reshape(-1, fwd.z.shape[-1]), y.reshape(-1),
                                           reduction="none")
    return ce.view(y.shape).mean(-1), fwd


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
    assert float(routed.sum(-1).abs().max()) < 1e-12  # zero row sums


def test_parameter_gradients_match_autograd_batched():
    x, y, weights = random_head(3, runs=3, n=7)
    leaves = at.HeadWeights(*(w.clone().requires_grad_() for w in weights.as_tuple()))
    loss, fwd = autograd_loss(x, y, leaves)
    auto = torch.autograd.grad(loss.sum(), leaves.as_tuple())
    closed = at.head_gradients(x, y, weights)
    torch.testing.assert_close(closed.loss, loss.detach(), atol=1e-13, rtol=0)
    for a, c in zip(auto, closed.weights.as_tuple(), strict=True):
        assert float((a - c).abs().max() / a.abs().max()) < 1e-10
    # b is dL/dalpha and the routing law reproduces the score gradient on the masked head
    torch.testing.assert_close(closed.score_grad,
                               at.routing_gradient(closed.forward.alpha, closed.b),
                               atol=1e-14, rtol=0)


def test_query_key_gradients_match_autograd():
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(5, 3, generator=gen, dtype=F64, requires_grad=True)
    k = torch.randn(5, 3, generator=gen, dtype=F64, requires_grad=True)
    upstream = torch.randn(5, 5, generator=gen, dtype=F64)
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
    assert predicted < 0
    assert abs(measured - predicted) / abs(predicted) < 1e-4


def test_m_step_hard_routing_lands_on_weighted_mean():
    alpha = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=F64)
    targets = torch.tensor([[1.0, 2], [3, 4], [5, 6], [7, 8]], dtype=F64)
    means = at.mixture_m_step(alpha, targets)
    torch.testing.assert_close(means, torch.tensor([[3.0, 4], [3, 4], [7, 8]], dtype=F64))
    # the tied version with one-hot inputs (W_V = V) gives the same means
    x = torch.eye(3, dtype=F64)
    w = at.value_weights_m_step(x, alpha.T.contiguous()[:3].T.contiguous(), targets)
    torch.testing.assert_close(w, means, atol=1e-12, rtol=0)


def test_transition_matrix_quirk_and_entropy():
    p = at.make_transition_matrix()
    row0 = torch.tensor([0.3498, 0.1660, 0.0830, 0.0553, 0.0415, 0.0553, 0.0830, 0.1660],
                        dtype=F64)
    torch.testing.assert_close(p[0], row0, atol=6e-5, rtol=0)
    assert abs(at.effective_self_probability() - 0.3498) < 1e-4
    torch.testing.assert_close(p.sum(1), torch.ones(8, dtype=F64))
    torch.testing.assert_close(torch.full((8,), 0.125, dtype=F64) @ p,
                               torch.full((8,), 0.125, dtype=F64))  # uniform is stationary
    assert abs(at.minimum_entropy(p) - 1.8292) < 1e-4


def test_sticky_chain_is_deterministic_and_follows_the_script():
    a, b = at.sticky_chain(42, T=60), at.sticky_chain(42, T=60)
    torch.testing.assert_close(a.inputs, b.inputs)
    assert torch.equal(a.symbols, b.symbols)
    assert a.inputs.shape == (59, 20) and a.targets.shape == (59,)
    assert torch.equal(a.targets, a.symbols[1:])
    noise = a.inputs - a.embeddings[a.symbols[:-1]]
    assert abs(float(noise.std()) - 1.0) < 0.15
    torch.testing.assert_close(a.embeddings,
                               torch.randn(8, 20, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(at.sticky_chain(43, T=60).symbols, a.symbols)


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


def test_batched_training_equals_one_run_at_a_time():
    chain = at.sticky_chain(42, T=40)
    arms = [at.ARMS[a] for a in ("sgd", "em_like", "ls_step", "frozen_routing")]
    x = chain.inputs.to(F64).expand(len(arms), -1, -1).contiguous()
    y = chain.targets.expand(len(arms), -1).contiguous()
    init = at.init_weights([42] * len(arms))
    batched = at.train_runs(x, y, init, arms, n_steps=5)
    for r, arm in enumerate(arms):
        one = at.HeadWeights(*(w[r:r + 1] for w in init.as_tuple()))
        single = at.train_runs(x[r:r + 1], y[r:r + 1], one, [arm], n_steps=5)
        torch.testing.assert_close(single.loss[0], batched.loss[r], atol=1e-12, rtol=0)
    assert float(batched.loss[0, -1]) < float(batched.loss[0, 0])  # SGD decreases the loss
    frozen = batched.final
    torch.testing.assert_close(frozen.W_Q[3], init.W_Q[3])  # frozen routing stays put
    assert not torch.equal(frozen.W_V[3], init.W_V[3])


def test_init_matches_the_scripts_reseeded_draws():
    gen = torch.Generator().manual_seed(2024)
    first = torch.randn(20, 10, generator=gen) * 0.1
    init = at.init_weights([2024], dtype=torch.float32)
    torch.testing.assert_close(init.W_Q[0], first)


def test_steps_to_threshold():
    losses = torch.tensor([[3.0, 2.0, 1.0], [3.0, 3.0, 3.0]])
    assert at.steps_to_threshold(losses, 1.5).tolist() == [2, 3]
    assert at.steps_to_threshold(losses, torch.tensor([2.5, 3.5])).tolist() == [1, 0]


def test_bad_inputs_raise_value_errors_naming_the_argument():
    x, y, weights = random_head(0)
    with pytest.raises(ValueError, match="alpha"):
        at.routing_gradient(torch.ones(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="b"):
        at.routing_gradient(torch.full((3, 3), 1 / 3), torch.zeros(3, 2))
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x"):
        at.head_forward(bad, weights)
    with pytest.raises(ValueError, match="y"):
        at.head_gradients(x, y + 10, weights)
    with pytest.raises(ValueError, match="W_O"):
        at.head_forward(x, at.HeadWeights(weights.W_Q, weights.W_K, weights.W_V,
                                          weights.W_O[:, :2]))
    with pytest.raises(ValueError, match="self_prob"):
        at.make_transition_matrix(self_prob=1.5)
    with pytest.raises(ValueError, match="T"):
        at.sticky_chain(0, T=1)
    with pytest.raises(ValueError, match="lr_v"):
        at.train_runs(x, y, weights, [at.Arm("bad", 0.1, 0.1, -0.1, 0.1)] * 2, 1)
    with pytest.raises(ValueError, match="arms"):
        at.train_runs(x, y, weights, [at.ARMS["sgd"]], 1)
    with pytest.raises(ValueError, match="arms"):
        at.sticky_experiment(seeds=[1], arms=("nope",), T=10, n_steps=1)
    with pytest.raises(ValueError, match="transition"):
        at.minimum_entropy(torch.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="alpha"):
        at.mixture_m_step(torch.zeros(2, 2), torch.ones(2, 1))
    with pytest.raises(ValueError, match="noise_std"):
        chain = at.sticky_chain(0, T=10)
        at.bayes_cross_entropy(chain.inputs, chain.targets, chain.transition, chain.embeddings,
                               noise_std=0.0)


def test_chunked_training_equals_one_program():
    chain = at.sticky_chain(1337, T=30)
    arms = [at.ARMS[a] for a in ("sgd", "em_like", "m_step")]
    x = chain.inputs.to(F64).expand(3, -1, -1).contiguous()
    y = chain.targets.expand(3, -1).contiguous()
    init = at.init_weights([1337] * 3)
    whole = at.train_runs(x, y, init, arms, n_steps=4, snapshot_steps=(0, 4), chunk_elements=0)
    parts = at.train_runs(x, y, init, arms, n_steps=4, snapshot_steps=(0, 4),
                          chunk_elements=2 * 29**2)  # two runs, then one
    torch.testing.assert_close(parts.loss, whole.loss, atol=1e-12, rtol=0)
    torch.testing.assert_close(parts.snapshots[4], whole.snapshots[4], atol=1e-12, rtol=0)
    torch.testing.assert_close(parts.final.W_V, whole.final.W_V, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="chunk_elements"):
        at.train_runs(x, y, init, arms, n_steps=1, chunk_elements=-1)
