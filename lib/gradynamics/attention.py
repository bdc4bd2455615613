r"""Gradient dynamics of one causal attention head (Agarwal, Dalal & Misra, 2025).

A single head, in the paper's notation, batched over any leading axes (runs = seeds x arms):

.. math::

    q_i = W_Q^\top x_i,\quad k_j = W_K^\top x_j,\quad v_j = W_V^\top x_j,\quad
    s_{ij} = \frac{q_i^\top k_j}{\sqrt{d_k}},\quad
    \alpha_{ij} = \frac{e^{s_{ij}}}{\sum_{j' \le i} e^{s_{ij'}}}
    \ (j \le i,\ \text{diagonal included}),

    o_i = \sum_j \alpha_{ij} v_j,\quad z_i = W_O^\top o_i,\quad
    L = \frac1n \sum_i \mathrm{CE}(z_i, y_i),\quad u_i = \frac{\partial L}{\partial o_i},\quad
    b_{ij} = u_i^\top v_j = \frac{\partial L}{\partial \alpha_{ij}}.

Closed forms implemented here (checked against autograd in ``tests/test_attention.py``):

- routing law (score gradient):
  :math:`\partial L/\partial s_{ij} = \alpha_{ij}(b_{ij} - \mathbb{E}_{\alpha_i}[b])`;
- value gradient: :math:`\partial L/\partial v_j = \sum_i \alpha_{ij} u_i`;
- query / key gradients: :math:`\partial L/\partial q_i = \frac{1}{\sqrt{d_k}}\sum_j g_{ij} k_j`,
  :math:`\partial L/\partial k_j = \frac{1}{\sqrt{d_k}}\sum_i g_{ij} q_i` with
  :math:`g = \partial L/\partial s`;
- first-order loss change of a score step :math:`-\eta\, g`:
  :math:`\Delta L \approx -\eta \sum_{ij} \alpha_{ij}^2 (b_{ij} - \bar b_i)^2`;
- the mixture M-step :math:`v_j \leftarrow \bar t_j = \sum_i \alpha_{ij} t_i / N_j`,
  :math:`N_j = \sum_i \alpha_{ij}`, and its tied-weight version (weighted least squares for W_V).

The sticky Markov-chain task is built exactly as in the authors' script
``experiments/paper2_gradient/em_vs_sgd_multiseed.py`` (8 symbols, circular-distance transitions,
``self_prob=0.3`` with the diagonal counted twice, fixed embeddings drawn with seed 0,
:math:`x_t = \mu_{y_{t-1}} + \varepsilon_t`), together with its entropy floor :math:`H_{\min}` and
the exact Bayes cross-entropy of a sequence (HMM forward filter over the hidden :math:`y_{t-1}`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from gradynamics.validation import (
    as_tensor,
    check_finite,
    check_ndim,
    check_positive,
    check_positive_int,
    check_probability_vector,
)

__all__ = [
    "ARMS",
    "AUTHORS_SEEDS",
    "Arm",
    "HeadForward",
    "HeadWeights",
    "StickyChain",
    "StickyExperiment",
    "TrainResult",
    "autograd_gradients",
    "bayes_cross_entropy",
    "causal_mask",
    "compatibility",
    "effective_self_probability",
    "first_order_score_decrease",
    "head_forward",
    "head_gradients",
    "init_weights",
    "make_transition_matrix",
    "minimum_entropy",
    "mixture_m_step",
    "query_key_gradients",
    "routing_gradient",
    "steps_to_threshold",
    "sticky_experiment",
    "sticky_chain",
    "time_batched_vs_sequential",
    "train_runs",
    "value_gradient",
    "value_weights_m_step",
]

#: The five seeds of the authors' script.
AUTHORS_SEEDS: tuple[int, ...] = (42, 2024, 1337, 7777, 9999)


# ----------------------------------------------------------------------------------------------
# The head and its closed-form gradients
# ----------------------------------------------------------------------------------------------

@dataclass
class HeadWeights:
    """The four weight matrices, each with the same leading (run) axes."""

    W_Q: torch.Tensor  # (..., d_x, d_k)
    W_K: torch.Tensor  # (..., d_x, d_k)
    W_V: torch.Tensor  # (..., d_x, d_v)
    W_O: torch.Tensor  # (..., d_v, n_classes)

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_Q, W_K, W_V, W_O)."""
        return (self.W_Q, self.W_K, self.W_V, self.W_O)

    def clone(self) -> HeadWeights:
        """A detached copy."""
        return HeadWeights(*(w.detach().clone() for w in self.as_tuple()))

    def validate(self) -> None:
        """Raise ValueError on inconsistent shapes or non-finite entries."""
        names = ("W_Q", "W_K", "W_V", "W_O")
        for name, w in zip(names, self.as_tuple(), strict=True):
            w = as_tensor(name, w)
            if w.ndim < 2 or not w.is_floating_point():
                raise ValueError(f"{name}: expected a floating-point matrix, got shape "
                                 f"{tuple(w.shape)} and dtype {w.dtype}")
            check_finite(name, w)
        lead = self.W_Q.shape[:-2]
        for name, w in zip(names, self.as_tuple(), strict=True):
            if w.shape[:-2] != lead:
                raise ValueError(f"{name}: leading axes {tuple(w.shape[:-2])} differ from "
                                 f"W_Q's {tuple(lead)}")
        if self.W_K.shape[-2:] != self.W_Q.shape[-2:]:
            raise ValueError(f"W_K: expected shape {tuple(self.W_Q.shape[-2:])} like W_Q, "
                             f"got {tuple(self.W_K.shape[-2:])}")
        if self.W_V.shape[-2] != self.W_Q.shape[-2]:
            raise ValueError(f"W_V: expected {self.W_Q.shape[-2]} rows (d_x), "
                             f"got {self.W_V.shape[-2]}")
        if self.W_O.shape[-2] != self.W_V.shape[-1]:
            raise ValueError(f"W_O: expected {self.W_V.shape[-1]} rows (d_v), "
                             f"got {self.W_O.shape[-2]}")


@dataclass
class HeadForward:
    """Every intermediate of the forward pass (leading run axes kept)."""

    q: torch.Tensor      # (..., n, d_k)
    k: torch.Tensor      # (..., n, d_k)
    v: torch.Tensor      # (..., n, d_v)
    alpha: torch.Tensor  # (..., n, n), zero above the diagonal
    o: torch.Tensor      # (..., n, d_v)
    z: torch.Tensor      # (..., n, n_classes)


def causal_mask(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (n, n) mask that is True where key j > query i (the diagonal stays visible)."""
    n = check_positive_int("n", n)
    return torch.triu(torch.ones(n, n, dtype=torch.bool, device=device), diagonal=1)


def _check_inputs(x: torch.Tensor, weights: HeadWeights) -> torch.Tensor:
    x = as_tensor("x", x)
    if not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x: expected a floating-point (..., n, d_x) tensor, got shape "
                         f"{tuple(x.shape)} and dtype {x.dtype}")
    check_finite("x", x)
    weights.validate()
    if x.shape[-1] != weights.W_Q.shape[-2]:
        raise ValueError(f"x: last axis {x.shape[-1]} does not match d_x = {weights.W_Q.shape[-2]}")
    return x


def _forward(x: torch.Tensor, weights: HeadWeights, mask_bias: torch.Tensor) -> HeadForward:
    d_k = weights.W_Q.shape[-1]
    q = x @ weights.W_Q
    k = x @ weights.W_K
    v = x @ weights.W_V
    lead = q.shape[:-2]
    n = q.shape[-2]
    scores = torch.baddbmm(mask_bias, q.reshape(-1, n, d_k), k.reshape(-1, n, d_k).transpose(1, 2),
                           alpha=1.0 / math.sqrt(d_k)).reshape(*lead, n, n)
    alpha = torch.softmax(scores, dim=-1)
    o = alpha @ v
    return HeadForward(q=q, k=k, v=v, alpha=alpha, o=o, z=o @ weights.W_O)


def _mask_bias(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask: 0 on and below the diagonal, -inf above."""
    zero = torch.zeros(n, n, dtype=dtype, device=device)
    return zero.masked_fill_(causal_mask(n, device=device), float("-inf"))


def head_forward(x: torch.Tensor, weights: HeadWeights) -> HeadForward:
    """Causal single-head forward pass, batched over the leading axes of ``x`` and the weights."""
    x = _check_inputs(x, weights)
    return _forward(x, weights, _mask_bias(x.shape[-2], x.dtype, x.device))


def routing_gradient(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Score gradient dL/ds_ij = alpha_ij (b_ij - sum_j' alpha_ij' b_ij') (the routing law)."""
    alpha = as_tensor("alpha", alpha)
    b = as_tensor("b", b)
    check_ndim("alpha", alpha, tuple(range(1, 9)))
    if tuple(alpha.shape) != tuple(b.shape):
        raise ValueError(f"b: expected the shape of alpha {tuple(alpha.shape)}, "
                         f"got {tuple(b.shape)}")
    check_probability_vector("alpha", alpha, atol=1e-6)
    check_finite("b", b)
    return _routing_gradient(alpha, b)


def _routing_gradient(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = alpha * b
    return torch.addcmul(ab, alpha, ab.sum(dim=-1, keepdim=True), value=-1.0)


def compatibility(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """b_ij = u_i . v_j, the derivative of the loss with respect to alpha_ij."""
    u = as_tensor("u", u)
    v = as_tensor("v", v)
    check_ndim("u", u, tuple(range(2, 9)))
    if u.shape[-1] != v.shape[-1]:
        raise ValueError(f"v: last axis {v.shape[-1]} does not match u's {u.shape[-1]} (d_v)")
    check_finite("u", u)
    check_finite("v", v)
    return u @ v.transpose(-1, -2)


def value_gradient(alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """dL/dv_j = sum_i alpha_ij u_i: each value collects the errors of the queries using it."""
    alpha = as_tensor("alpha", alpha)
    u = as_tensor("u", u)
    check_ndim("alpha", alpha, tuple(range(2, 9)))
    if u.shape[-2] != alpha.shape[-2]:
        raise ValueError(f"u: expected {alpha.shape[-2]} rows (one per query), got {u.shape[-2]}")
    check_probability_vector("alpha", alpha, atol=1e-6)
    check_finite("u", u)
    return alpha.transpose(-1, -2) @ u


def query_key_gradients(score_grad: torch.Tensor, q: torch.Tensor,
                        k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dq, dL/dk) = (G k, G^T q) / sqrt(d_k) from the score gradient G = dL/ds."""
    score_grad = as_tensor("score_grad", score_grad)
    q = as_tensor("q", q)
    k = as_tensor("k", k)
    check_ndim("score_grad", score_grad, tuple(range(2, 9)))
    if q.shape != k.shape:
        raise ValueError(f"k: expected the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if score_grad.shape[-2:] != (q.shape[-2], k.shape[-2]):
        raise ValueError(f"score_grad: expected (..., {q.shape[-2]}, {k.shape[-2]}), "
                         f"got {tuple(score_grad.shape)}")
    for name, t in (("score_grad", score_grad), ("q", q), ("k", k)):
        check_finite(name, t)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return (score_grad @ k) * scale, (score_grad.transpose(-1, -2) @ q) * scale


def first_order_score_decrease(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """-sum_ij alpha_ij^2 (b_ij - bbar_i)^2: dL/d(eta) at eta = 0 for the score step -eta dL/ds."""
    g = routing_gradient(alpha, b)
    return -(g * g).sum(dim=(-1, -2))


def _targets(name: str, y: torch.Tensor, shape: torch.Size, n_classes: int) -> torch.Tensor:
    y = as_tensor(name, y)
    if y.is_floating_point() or y.is_complex():
        raise ValueError(f"{name}: expected integer class labels, got {y.dtype}")
    if tuple(y.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes - 1}]")
    return y.long()


@dataclass
class HeadGradients:
    """Loss per run and the closed-form gradients of every intermediate and weight."""

    loss: torch.Tensor        # (...,)
    u: torch.Tensor           # dL/do
    b: torch.Tensor | None    # u v^T (filled by head_gradients, skipped in training)
    score_grad: torch.Tensor  # dL/ds (routing law)
    value_grad: torch.Tensor  # dL/dv
    query_grad: torch.Tensor  # dL/dq
    key_grad: torch.Tensor    # dL/dk
    weights: HeadWeights      # dL/dW_Q, dL/dW_K, dL/dW_V, dL/dW_O
    forward: HeadForward


def _gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights, fwd: HeadForward
               ) -> HeadGradients:
    n = x.shape[-2]
    log_p = torch.log_softmax(fwd.z, dim=-1)
    loss = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(dim=-1)
    dz = log_p.exp()
    dz.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(dz[..., :1], -1.0)).div_(n)
    u = dz @ weights.W_O.transpose(-1, -2)
    # E_alpha_i[b] = sum_j alpha_ij u_i.v_j = u_i.o_i: the row mean needs no (n, n) pass.
    b_bar = (u * fwd.o).sum(dim=-1, keepdim=True)
    lead, m = u.shape[:-2], u.shape[-2]
    score_grad = torch.baddbmm(b_bar.reshape(-1, m, 1), u.reshape(-1, m, u.shape[-1]),
                               fwd.v.reshape(-1, m, u.shape[-1]).transpose(1, 2),
                               beta=-1.0).reshape(*lead, m, m).mul_(fwd.alpha)
    value_grad = fwd.alpha.transpose(-1, -2) @ u
    scale = 1.0 / math.sqrt(fwd.q.shape[-1])
    dq = (score_grad @ fwd.k).mul_(scale)
    dk = (score_grad.transpose(-1, -2) @ fwd.q).mul_(scale)
    xt = x.transpose(-1, -2)
    grads = HeadWeights(W_Q=xt @ dq, W_K=xt @ dk, W_V=xt @ value_grad,
                        W_O=fwd.o.transpose(-1, -2) @ dz)
    return HeadGradients(loss=loss, u=u, b=None, score_grad=score_grad, value_grad=value_grad,
                         query_grad=dq, key_grad=dk, weights=grads, forward=fwd)


def head_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights) -> HeadGradients:
    """Mean cross-entropy per run and all its gradients, built from the closed forms only."""
    x = _check_inputs(x, weights)
    y = _targets("y", y, x.shape[:-1], weights.W_O.shape[-1])
    fwd = _forward(x, weights, _mask_bias(x.shape[-2], x.dtype, x.device))
    grads = _gradients(x, y, weights, fwd)
    grads.b = grads.u @ fwd.v.transpose(-1, -2)
    return grads


def autograd_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights
                       ) -> dict[str, torch.Tensor]:
    """Reference gradients from torch.autograd (scores, values, queries, keys, the four W)."""
    x = _check_inputs(x, weights)
    y = _targets("y", y, x.shape[:-1], weights.W_O.shape[-1])
    leaves = [w.detach().clone().requires_grad_() for w in weights.as_tuple()]
    w_q, w_k, w_v, w_o = leaves
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(causal_mask(x.shape[-2], device=x.device), float("-inf"))
    for t in (q, k, v, scores):
        t.retain_grad()
    z = torch.softmax(scores, dim=-1) @ v @ w_o
    ce = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1),
                                           reduction="none")
    ce.view(y.shape).mean(dim=-1).sum().backward()
    grads = {"scores": scores.grad, "values": v.grad, "queries": q.grad, "keys": k.grad}
    grads.update({name: w.grad for name, w in zip(("W_Q", "W_K", "W_V", "W_O"), leaves,
                                                   strict=True)})
    return grads


# ----------------------------------------------------------------------------------------------
# The M-step
# ----------------------------------------------------------------------------------------------

def mixture_m_step(alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Responsibility-weighted means tbar_j = sum_i alpha_ij t_i / N_j (the mixture M-step)."""
    alpha = as_tensor("alpha", alpha)
    targets = as_tensor("targets", targets)
    check_ndim("alpha", alpha, tuple(range(2, 9)))
    if targets.shape[-2] != alpha.shape[-2]:
        raise ValueError(f"targets: expected {alpha.shape[-2]} rows (one per query), "
                         f"got {targets.shape[-2]}")
    check_finite("targets", targets)
    if bool((alpha < 0).any()):
        raise ValueError("alpha: expected non-negative responsibilities")
    mass = alpha.sum(dim=-2)
    if bool((mass <= 0).any()):
        raise ValueError("alpha: every value (column) needs positive responsibility N_j")
    return (alpha.transpose(-1, -2) @ targets) / mass.unsqueeze(-1)


def value_weights_m_step(x: torch.Tensor, alpha: torch.Tensor, targets: torch.Tensor,
                         ridge: float = 0.0) -> torch.Tensor:
    """Tied-value M-step: argmin_W sum_ij alpha_ij |W^T x_j - t_i|^2 (+ ridge |W|^2)."""
    x = as_tensor("x", x)
    check_finite("x", x)
    ridge = check_positive("ridge", ridge, allow_zero=True)
    tbar_mass = mixture_m_step(alpha, targets) * alpha.sum(dim=-2).unsqueeze(-1)
    return _value_weights_m_step(x, alpha.sum(dim=-2), tbar_mass, ridge)


def _value_weights_m_step(x: torch.Tensor, mass: torch.Tensor, weighted_targets: torch.Tensor,
                          ridge: float) -> torch.Tensor:
    xt = x.transpose(-1, -2)
    gram = (xt * mass.unsqueeze(-2)) @ x
    if ridge > 0:
        gram = gram + ridge * torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return torch.linalg.solve(gram, xt @ weighted_targets)


# ----------------------------------------------------------------------------------------------
# The sticky Markov chain, exactly as in the authors' script
# ----------------------------------------------------------------------------------------------

def make_transition_matrix(n_symbols: int = 8, self_prob: float = 0.3,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The script's matrix: off-diagonal ~ 1/circular distance, diagonal preset AND added again."""
    n_symbols = check_positive_int("n_symbols", n_symbols, minimum=2)
    self_prob = check_positive("self_prob", self_prob)
    if self_prob >= 1:
        raise ValueError(f"self_prob: expected a probability in (0, 1), got {self_prob}")
    i = torch.arange(n_symbols)
    dist = (i[:, None] - i[None, :]).abs()
    dist = torch.minimum(dist, n_symbols - dist).to(dtype)
    eye = torch.eye(n_symbols, dtype=dtype)
    raw = torch.where(dist > 0, 1.0 / dist.clamp(min=1), self_prob * eye)
    p = raw / raw.sum(dim=1, keepdim=True) * (1 - self_prob) + self_prob * eye
    return p / p.sum(dim=1, keepdim=True)


def effective_self_probability(n_symbols: int = 8, self_prob: float = 0.3) -> float:
    """The actual P_ii of the script's matrix (0.3498 for the defaults, not 0.3)."""
    return float(make_transition_matrix(n_symbols, self_prob)[0, 0])


def minimum_entropy(transition: torch.Tensor) -> float:
    """H_min = -(1/n) sum_ij P_ij log P_ij in nats (uniform stationary distribution assumed)."""
    transition = as_tensor("transition", transition)
    check_ndim("transition", transition, 2)
    check_probability_vector("transition", transition)
    logp = torch.where(transition > 0, transition.log(), torch.zeros_like(transition))
    return float(-(transition * logp).sum(dim=1).mean())


@dataclass
class StickyChain:
    """One sequence of the task: inputs x_t = mu_{y_{t-1}} + eps_t and targets y_t."""

    inputs: torch.Tensor      # (n, d_embed), n = T - 1
    targets: torch.Tensor     # (n,)
    symbols: torch.Tensor     # (T,) the whole chain y_0 .. y_{T-1}
    transition: torch.Tensor  # (n_symbols, n_symbols)
    embeddings: torch.Tensor  # (n_symbols, d_embed), the fixed means mu


def sticky_chain(seed: int, T: int = 2000, n_symbols: int = 8, d_embed: int = 20,
                 self_prob: float = 0.3, embed_seed: int = 0) -> StickyChain:
    """The script's ``generate_data`` after ``torch.manual_seed(seed)``, on its own generators."""
    T = check_positive_int("T", T, minimum=2)
    transition32 = make_transition_matrix(n_symbols, self_prob, dtype=torch.float32)
    mu = torch.randn(n_symbols, d_embed, generator=torch.Generator().manual_seed(embed_seed))
    gen = torch.Generator().manual_seed(int(seed))
    seq = [int(torch.randint(n_symbols, (1,), generator=gen))]
    for _ in range(T - 1):
        seq.append(int(torch.multinomial(transition32[seq[-1]], 1, generator=gen)))
    symbols = torch.tensor(seq)
    inputs = mu[symbols[:-1]] + torch.randn(T - 1, d_embed, generator=gen)
    return StickyChain(inputs=inputs, targets=symbols[1:], symbols=symbols,
                       transition=make_transition_matrix(n_symbols, self_prob),
                       embeddings=mu)


def bayes_cross_entropy(inputs: torch.Tensor, targets: torch.Tensor, transition: torch.Tensor,
                        embeddings: torch.Tensor, noise_std: float = 1.0) -> float:
    """Mean -log p(y_t | x_1..x_t) of the exact Bayes predictor (HMM filter over y_{t-1})."""
    inputs = as_tensor("inputs", inputs, dtype=torch.float64)
    transition = as_tensor("transition", transition, dtype=torch.float64)
    embeddings = as_tensor("embeddings", embeddings, dtype=torch.float64)
    check_ndim("inputs", inputs, 2)
    check_finite("inputs", inputs)
    check_probability_vector("transition", transition)
    noise_std = check_positive("noise_std", noise_std)
    n_sym = transition.shape[0]
    targets = _targets("targets", targets, inputs.shape[:1], n_sym)
    if embeddings.shape != (n_sym, inputs.shape[1]):
        raise ValueError(f"embeddings: expected shape {(n_sym, inputs.shape[1])}, "
                         f"got {tuple(embeddings.shape)}")
    log_lik = -0.5 * torch.cdist(inputs, embeddings).pow(2) / noise_std**2  # (n, n_sym)
    prior = torch.full((n_sym,), 1.0 / n_sym, dtype=torch.float64)  # p(y_{t-1} | x_<t)
    total = 0.0
    for t in range(inputs.shape[0]):
        post = prior * torch.exp(log_lik[t] - log_lik[t].max())
        post = post / post.sum()                 # p(y_{t-1} | x_1..x_t)
        prior = post @ transition                # p(y_t | x_1..x_t)
        total -= math.log(float(prior[targets[t]]))
    return total / inputs.shape[0]


# ----------------------------------------------------------------------------------------------
# Training many runs at once
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    """A training schedule: a learning rate per matrix (0 freezes it), optionally an M-step."""

    name: str
    lr_q: float
    lr_k: float
    lr_v: float
    lr_o: float
    m_step: str = ""          # "", "mixture" or "least_squares": replaces the W_V step
    target_step: float = 1.0  # gamma in the M-step targets t_i = o_i - gamma dl_i/do_i


#: The arms of the chapter: the authors' two, the closed-form M-step, and the two ablations.
ARMS: dict[str, Arm] = {
    "sgd": Arm("sgd", 0.01, 0.01, 0.01, 0.01),
    "em_like": Arm("em_like", 0.01, 0.01, 0.1, 0.01),
    "m_step": Arm("m_step", 0.01, 0.01, 0.0, 0.01, m_step="mixture"),
    "ls_step": Arm("ls_step", 0.01, 0.01, 0.0, 0.01, m_step="least_squares"),
    "values_only": Arm("values_only", 0.0, 0.0, 0.1, 0.0),
    "routing_only": Arm("routing_only", 0.01, 0.01, 0.0, 0.0),
    "frozen_routing": Arm("frozen_routing", 0.0, 0.0, 0.1, 0.01),
}


def init_weights(seeds: Sequence[int], d_x: int = 20, d_k: int = 10, d_v: int = 15,
                 n_classes: int = 8, scale: float = 0.1,
                 dtype: torch.dtype = torch.float64,
                 device: torch.device | None = None) -> HeadWeights:
    """The script's initialisation: after manual_seed(seed), randn * 0.1 for Q, K, V, O in turn."""
    if len(seeds) == 0:
        raise ValueError("seeds: expected at least one seed")
    scale = check_positive("scale", scale)
    shapes = ((d_x, d_k), (d_x, d_k), (d_x, d_v), (d_v, n_classes))
    mats: list[list[torch.Tensor]] = [[], [], [], []]
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        for slot, shape in zip(mats, shapes, strict=True):
            slot.append(torch.randn(*shape, generator=gen) * scale)
    return HeadWeights(*(torch.stack(m).to(dtype=dtype, device=device) for m in mats))


@dataclass
class TrainResult:
    """Per-run curves (runs, n_steps + 1) and attention snapshots of the recorded runs."""

    loss: torch.Tensor
    entropy: torch.Tensor
    accuracy: torch.Tensor
    final: HeadWeights
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (runs, n, n)
    seconds: float = 0.0


def _arm_rates(arms: Sequence[Arm], dtype: torch.dtype, device: torch.device | None
               ) -> tuple[torch.Tensor, ...]:
    for arm in arms:
        for name in ("lr_q", "lr_k", "lr_v", "lr_o"):
            check_positive(f"arms[{arm.name}].{name}", getattr(arm, name), allow_zero=True)
        if arm.m_step not in ("", "mixture", "least_squares"):
            raise ValueError(f"arms[{arm.name}].m_step: expected '', 'mixture' or "
                             f"'least_squares', got {arm.m_step!r}")
        if arm.m_step:
            check_positive(f"arms[{arm.name}].target_step", arm.target_step)
    cols = [torch.tensor([getattr(a, nm) for a in arms], dtype=dtype, device=device)
            .view(-1, 1, 1) for nm in ("lr_q", "lr_k", "lr_v", "lr_o")]
    gamma = torch.tensor([a.target_step for a in arms], dtype=dtype, device=device).view(-1, 1, 1)
    return (*cols, gamma)


def train_runs(x: torch.Tensor, y: torch.Tensor, init: HeadWeights, arms: Sequence[Arm],
               n_steps: int, snapshot_steps: Sequence[int] = (), progress: bool | None = None,
               chunk_elements: int | None = None) -> TrainResult:
    """Full-batch training of R independent runs in one tensor program (run r uses arms[r]).

    ``chunk_elements`` caps runs x n x n per tensor program (default: no cap on CUDA, 2**20 on
    CPU, where batched (n, n) tensors larger than the cache are slower than smaller groups).
    """
    x = _check_inputs(x, init)
    if x.ndim != 3 or init.W_Q.ndim != 3 or init.W_Q.shape[0] != x.shape[0]:
        raise ValueError(f"x: expected (runs, n, d_x) matching init's {init.W_Q.shape[0]} runs, "
                         f"got {tuple(x.shape)}")
    y = _targets("y", y, x.shape[:-1], init.W_O.shape[-1])
    if len(arms) != x.shape[0]:
        raise ValueError(f"arms: expected one arm per run ({x.shape[0]}), got {len(arms)}")
    n_steps = check_positive_int("n_steps", n_steps, minimum=0)
    if chunk_elements is None:
        chunk_elements = 0 if x.device.type == "cuda" else 2**20
    chunk_elements = check_positive_int("chunk_elements", chunk_elements, minimum=0)
    per_chunk = max(1, chunk_elements // x.shape[-2] ** 2) if chunk_elements else x.shape[0]
    if per_chunk < x.shape[0]:
        parts = [train_runs(x[i:i + per_chunk], y[i:i + per_chunk],
                            HeadWeights(*(w[i:i + per_chunk] for w in init.as_tuple())),
                            arms[i:i + per_chunk], n_steps, snapshot_steps, progress, 0)
                 for i in range(0, x.shape[0], per_chunk)]
        return TrainResult(
            loss=torch.cat([p.loss for p in parts]), entropy=torch.cat([p.entropy for p in parts]),
            accuracy=torch.cat([p.accuracy for p in parts]),
            final=HeadWeights(*(torch.cat(ws) for ws in zip(*(p.final.as_tuple() for p in parts),
                                                            strict=True))),
            snapshots={k: torch.cat([p.snapshots[k] for p in parts]) for k in parts[0].snapshots},
            seconds=sum(p.seconds for p in parts))
    lr_q, lr_k, lr_v, lr_o, gamma = _arm_rates(arms, x.dtype, x.device)
    m_idx = {kind: torch.tensor([r for r, a in enumerate(arms) if a.m_step == kind],
                                dtype=torch.long, device=x.device)
             for kind in ("mixture", "least_squares")}
    w = init.clone()
    mask = _mask_bias(x.shape[-2], x.dtype, x.device)
    curves = torch.empty(3, x.shape[0], n_steps + 1, dtype=x.dtype, device=x.device)
    snaps: dict[int, torch.Tensor] = {}
    steps = range(n_steps + 1)
    if progress:  # imported only on request: tqdm.auto warns in kernels without ipywidgets
        from tqdm.auto import tqdm

        steps = tqdm(steps, leave=False)
    start = time.perf_counter()
    for step in steps:
        fwd = _forward(x, w, mask)
        g = _gradients(x, y, w, fwd)
        p = torch.softmax(fwd.z, dim=-1)
        curves[0, :, step] = g.loss
        curves[1, :, step] = -(p * torch.log_softmax(fwd.z, -1)).sum(-1).mean(-1)
        curves[2, :, step] = (fwd.z.argmax(-1) == y).to(x.dtype).mean(-1)
        if step in snapshot_steps:
            snaps[step] = fwd.alpha.detach().cpu()
        if step == n_steps:
            break
        new_v = w.W_V - lr_v * g.weights.W_V
        for kind, idx in m_idx.items():
            if idx.numel():
                new_v[idx] = _m_step_update(kind, x[idx], fwd.alpha[idx], fwd.o[idx],
                                            g.u[idx] * x.shape[-2], gamma[idx])
        w = HeadWeights(W_Q=w.W_Q - lr_q * g.weights.W_Q, W_K=w.W_K - lr_k * g.weights.W_K,
                        W_V=new_v, W_O=w.W_O - lr_o * g.weights.W_O)
    seconds = time.perf_counter() - start
    c = curves.cpu()
    return TrainResult(loss=c[0], entropy=c[1], accuracy=c[2], final=w, snapshots=snaps,
                       seconds=seconds)


def _m_step_update(kind: str, x: torch.Tensor, alpha: torch.Tensor, o: torch.Tensor,
                   per_position_grad: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """New W_V from targets t_i = o_i - gamma dl_i/do_i: mixture M-step or least squares."""
    targets = o - gamma * per_position_grad
    if kind == "mixture":
        return _value_weights_m_step(x, alpha.sum(-2), alpha.transpose(-1, -2) @ targets, 0.0)
    routed = alpha @ x  # o = (alpha X) W_V: least squares in W_V given the routing
    gram = routed.transpose(-1, -2) @ routed
    return torch.linalg.solve(gram, routed.transpose(-1, -2) @ targets)


def steps_to_threshold(losses: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """First step whose loss is below ``threshold`` (a scalar or one per row); length if never."""
    losses = as_tensor("losses", losses)
    check_ndim("losses", losses, (1, 2))
    check_finite("losses", losses)
    limit = torch.as_tensor(threshold, dtype=losses.dtype, device=losses.device)
    if limit.ndim > 1 or (limit.ndim == 1 and limit.shape[0] != losses.shape[0]):
        raise ValueError(f"threshold: expected a scalar or one value per row of losses, "
                         f"got shape {tuple(limit.shape)}")
    below = losses < (limit.unsqueeze(-1) if limit.ndim == 1 else limit)
    n = losses.shape[-1]
    idx = torch.arange(n, device=losses.device).expand_as(below)
    return torch.where(below, idx, torch.full_like(idx, n)).min(dim=-1).values


def time_batched_vs_sequential(x: torch.Tensor, y: torch.Tensor, init: HeadWeights,
                               arms: Sequence[Arm], n_steps: int,
                               chunk_elements: int | None = None) -> tuple[float, float]:
    """Seconds for R runs batched (``train_runs``' chunking), and for them one after another."""
    batched = train_runs(x, y, init, arms, n_steps, chunk_elements=chunk_elements).seconds
    sequential = 0.0
    for r, arm in enumerate(arms):
        one = HeadWeights(*(t[r:r + 1] for t in init.as_tuple()))
        sequential += train_runs(x[r:r + 1], y[r:r + 1], one, [arm], n_steps).seconds
    return batched, sequential


# ----------------------------------------------------------------------------------------------
# The authors' experiment, batched over seeds x arms
# ----------------------------------------------------------------------------------------------

@dataclass
class StickyExperiment:
    """Curves and floors of one batched run of the sticky-chain experiment."""

    seeds: tuple[int, ...]
    arms: tuple[str, ...]
    T: int
    n_steps: int
    result: TrainResult
    bayes: torch.Tensor          # (n_seeds,) exact Bayes CE of each training sequence
    bayes_heldout: torch.Tensor  # (n_seeds,) the same on the held-out sequence (seed + 10000)
    heldout_loss: torch.Tensor   # (n_seeds, n_arms) final weights on the held-out sequence
    h_min: float

    def _index(self, arm: str) -> int:
        if arm not in self.arms:
            raise ValueError(f"arm: expected one of {self.arms}, got {arm!r}")
        return self.arms.index(arm)

    def curve(self, metric: str, arm: str) -> torch.Tensor:
        """(n_seeds, n_steps + 1) curve of 'loss', 'entropy' or 'accuracy' for one arm."""
        if metric not in ("loss", "entropy", "accuracy"):
            raise ValueError(f"metric: expected 'loss', 'entropy' or 'accuracy', got {metric!r}")
        data = getattr(self.result, metric)
        return data.view(len(self.seeds), len(self.arms), -1)[:, self._index(arm)]

    def final(self, metric: str, arm: str) -> torch.Tensor:
        """(n_seeds,) value of a metric after the last step."""
        return self.curve(metric, arm)[:, -1]

    def speedup(self, fast: str = "em_like", slow: str = "sgd") -> torch.Tensor:
        """Per seed: n_steps / (steps ``fast`` needs to beat ``slow``'s final loss on that seed)."""
        steps = steps_to_threshold(self.curve("loss", fast), self.final("loss", slow))
        return self.n_steps / steps.to(torch.float64)

    def scripts_speedup(self, fast: str = "em_like", slow: str = "sgd") -> tuple[float, float]:
        """The script's metric: mean steps of ``fast`` to beat the MEAN final loss of ``slow``."""
        steps = steps_to_threshold(self.curve("loss", fast), float(self.final("loss", slow).mean()))
        mean_steps = float(steps.to(torch.float64).mean())
        return mean_steps, self.n_steps / mean_steps


def sticky_experiment(seeds: Sequence[int] = AUTHORS_SEEDS,
                      arms: Sequence[str] = ("sgd", "em_like"), T: int = 2000,
                      n_steps: int = 1000, dtype: torch.dtype = torch.float32,
                      device: torch.device | None = None, snapshot_steps: Sequence[int] = (),
                      progress: bool | None = None) -> StickyExperiment:
    """The authors' protocol (their data, init, full-batch steps) for all seeds x arms at once."""
    if len(seeds) == 0:
        raise ValueError("seeds: expected at least one seed")
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"arms: unknown arm {arm!r}; expected names from {sorted(ARMS)}")
    chains = [sticky_chain(s, T) for s in seeds]
    tests = [sticky_chain(s + 10000, T) for s in seeds]
    n_arms = len(arms)
    x = torch.stack([c.inputs for c in chains for _ in arms]).to(dtype=dtype, device=device)
    y = torch.stack([c.targets for c in chains for _ in arms]).to(device=device)
    init = init_weights([s for s in seeds for _ in arms], dtype=dtype, device=device)
    schedule = [ARMS[a] for _ in seeds for a in arms]
    result = train_runs(x, y, init, schedule, n_steps, snapshot_steps, progress)
    x_test = torch.stack([c.inputs for c in tests for _ in arms]).to(dtype=dtype, device=device)
    y_test = torch.stack([c.targets for c in tests for _ in arms]).to(device=device)
    with torch.no_grad():
        test = head_gradients(x_test, y_test, result.final).loss.view(len(seeds), n_arms)

    def floor(cs: list[StickyChain]) -> torch.Tensor:
        return torch.tensor([bayes_cross_entropy(c.inputs, c.targets, c.transition,
                                                 c.embeddings) for c in cs])

    return StickyExperiment(seeds=tuple(int(s) for s in seeds), arms=tuple(arms), T=T,
                            n_steps=n_steps, result=result, bayes=floor(chains),
                            bayes_heldout=floor(tests), heldout_loss=test.cpu(),
                            h_min=minimum_entropy(chains[0].transition))
