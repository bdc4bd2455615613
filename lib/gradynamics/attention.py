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
- value gradient: :math:`\partial L/\partial v_j = \sum_i \alpha_{ij} u_i`, and at the parameter
  level :math:`\partial L/\partial W_V = X^\top A^\top U`, so a step on :math:`W_V` moves the
  values by :math:`-\eta\, X X^\top A^\top U`;
- query / key gradients: :math:`\partial L/\partial q_i = \frac{1}{\sqrt{d_k}}\sum_j g_{ij} k_j`,
  :math:`\partial L/\partial k_j = \frac{1}{\sqrt{d_k}}\sum_i g_{ij} q_i` with
  :math:`g = \partial L/\partial s`;
- first-order loss change of a score step :math:`-\eta\, g`:
  :math:`\Delta L \approx -\eta \sum_{ij} \alpha_{ij}^2 (b_{ij} - \bar b_i)^2`;
- the mixture M-step :math:`v_j \leftarrow \bar t_j = \sum_i \alpha_{ij} t_i / N_j`,
  :math:`N_j = \sum_i \alpha_{ij}`, its tied-weight version (weighted least squares for W_V),
  and least squares of the head output :math:`A X W_V` on targets.

Two implementations of a full-batch step share these kernels:

- :func:`head_gradients` builds the whole :math:`n \times n` attention matrix (the verified
  reference, and what the chapter's derivations read);
- :func:`blocked_head_gradients` (used by :func:`train_runs`) walks over blocks of query rows,
  computes each block's scores only for the keys it can see (the causal triangle), and does the
  forward pass, the loss and the backward pass of the block while it is in cache. Every
  quantity of a query row depends only on that row, so the blocks are exact, not approximate.
  Runs that freeze the routing (W_Q, W_K) keep a constant A, so the trainer computes A X once
  and their head is the linear model :math:`o = (A X) W_V`, :math:`z = o W_O`.

The sticky Markov-chain task is built exactly as in the authors' script
``experiments/paper2_gradient/em_vs_sgd_multiseed.py`` (8 symbols, circular-distance transitions,
``self_prob=0.3`` with the diagonal counted twice, fixed embeddings drawn with seed 0,
:math:`x_t = \mu_{y_{t-1}} + \varepsilon_t`), together with its entropy floor :math:`H_{\min}` and
the exact Bayes cross-entropy of a sequence (HMM forward filter over the hidden :math:`y_{t-1}`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gradynamics.validation import (
    as_tensor,
    check_class_labels,
    check_finite,
    check_ndim,
    check_positive,
    check_positive_int,
    check_probability_vector,
    check_same_dtype,
)

__all__ = [
    "ARMS",
    "AUTHORS_SEEDS",
    "Arm",
    "BlockedGradients",
    "ConventionalHead",
    "HeadForward",
    "HeadGradients",
    "HeadWeights",
    "StickyChain",
    "StickyExperiment",
    "TrainResult",
    "TrainingGeometry",
    "autograd_gradients",
    "bayes_cross_entropy",
    "blocked_head_gradients",
    "causal_mask",
    "compatibility",
    "conventional_train",
    "effective_self_probability",
    "first_order_score_decrease",
    "full_size_summary",
    "head_forward",
    "head_gradients",
    "init_weights",
    "least_squares_value_weights",
    "load_full_size_summary",
    "make_transition_matrix",
    "minimum_entropy",
    "mixture_m_step",
    "participation_ratio",
    "query_key_gradients",
    "routing_gradient",
    "steps_to_threshold",
    "sticky_chain",
    "sticky_experiment",
    "train_runs",
    "training_geometry",
    "value_gradient",
    "value_weights_m_step",
]

#: The five seeds of the authors' script.
AUTHORS_SEEDS: tuple[int, ...] = (42, 2024, 1337, 7777, 9999)

_MAX_NDIM = tuple(range(2, 9))


def _same_leading_axes(reference_name: str, reference: torch.Tensor,
                       name: str, value: torch.Tensor) -> None:
    """Raise unless ``value`` has the (run) axes of ``reference`` before its last two."""
    if value.shape[:-2] != reference.shape[:-2]:
        raise ValueError(f"{name}: leading axes {tuple(value.shape[:-2])} differ from "
                         f"{reference_name}'s {tuple(reference.shape[:-2])}")


def _float_input(name: str, value: torch.Tensor, ndim: Sequence[int] = _MAX_NDIM
                 ) -> torch.Tensor:
    """A finite floating-point tensor with an allowed number of dimensions."""
    value = as_tensor(name, value)
    if not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {value.dtype}")
    check_ndim(name, value, tuple(ndim))
    check_finite(name, value)
    return value


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

    def runs(self, index: slice | int) -> HeadWeights:
        """The weights of some runs (index into the first leading axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return HeadWeights(*(w[index] for w in self.as_tuple()))

    def validate(self) -> None:
        """Raise ValueError on inconsistent shapes or dtypes, or non-finite entries."""
        names = ("W_Q", "W_K", "W_V", "W_O")
        for name, w in zip(names, self.as_tuple(), strict=True):
            w = as_tensor(name, w)
            if w.ndim < 2 or not w.is_floating_point():
                raise ValueError(f"{name}: expected a floating-point matrix, got shape "
                                 f"{tuple(w.shape)} and dtype {w.dtype}")
            check_finite(name, w)
        check_same_dtype(**dict(zip(names, self.as_tuple(), strict=True)))
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
    check_same_dtype(W_Q=weights.W_Q, x=x)
    if x.shape[-1] != weights.W_Q.shape[-2]:
        raise ValueError(f"x: last axis {x.shape[-1]} does not match d_x = {weights.W_Q.shape[-2]}")
    if x.shape[:-2] != weights.W_Q.shape[:-2]:
        raise ValueError(f"x: leading axes {tuple(x.shape[:-2])} differ from the weights' "
                         f"{tuple(weights.W_Q.shape[:-2])}")
    return x


def _mask_bias(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask: 0 on and below the diagonal, -inf above."""
    zero = torch.zeros(n, n, dtype=dtype, device=device)
    return zero.masked_fill_(causal_mask(n, device=device), float("-inf"))


def _forward(x: torch.Tensor, weights: HeadWeights) -> HeadForward:
    """The reference forward pass with the whole (n, n) attention matrix."""
    q = x @ weights.W_Q
    k = x @ weights.W_K
    v = x @ weights.W_V
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores + _mask_bias(x.shape[-2], x.dtype, x.device)
    alpha = torch.softmax(scores, dim=-1)
    o = alpha @ v
    return HeadForward(q=q, k=k, v=v, alpha=alpha, o=o, z=o @ weights.W_O)


def head_forward(x: torch.Tensor, weights: HeadWeights) -> HeadForward:
    """Causal single-head forward pass, batched over the leading axes of ``x`` and the weights."""
    return _forward(_check_inputs(x, weights), weights)


# Kernels shared by the public functions, the reference step and the blocked trainer.

def _routing_gradient_(alpha: torch.Tensor, b: torch.Tensor, b_bar: torch.Tensor
                       ) -> torch.Tensor:
    """alpha * (b - b_bar), overwriting ``b`` (b_bar: the alpha-weighted row means of b)."""
    return b.sub_(b_bar).mul_(alpha)


def _value_gradient(alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """alpha^T u: column j collects the upstream gradients of the queries that read key j."""
    return alpha.transpose(-1, -2) @ u


def _query_key_gradients(score_grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                         scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (score_grad @ k) * scale, (score_grad.transpose(-1, -2) @ q) * scale


def routing_gradient(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Score gradient dL/ds_ij = alpha_ij (b_ij - sum_j' alpha_ij' b_ij') (the routing law)."""
    alpha = _float_input("alpha", alpha, tuple(range(1, 9)))
    b = _float_input("b", b, tuple(range(1, 9)))
    check_same_dtype(alpha=alpha, b=b)
    if tuple(alpha.shape) != tuple(b.shape):
        raise ValueError(f"b: expected the shape of alpha {tuple(alpha.shape)}, "
                         f"got {tuple(b.shape)}")
    check_probability_vector("alpha", alpha, atol=1e-6)
    b_bar = (alpha * b).sum(dim=-1, keepdim=True)
    return _routing_gradient_(alpha, b.clone(), b_bar)


def compatibility(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """b_ij = u_i . v_j, the derivative of the loss with respect to alpha_ij."""
    u = _float_input("u", u)
    v = _float_input("v", v)
    check_same_dtype(u=u, v=v)
    _same_leading_axes("u", u, "v", v)
    if u.shape[-1] != v.shape[-1]:
        raise ValueError(f"v: last axis {v.shape[-1]} does not match u's {u.shape[-1]} (d_v)")
    return u @ v.transpose(-1, -2)


def value_gradient(alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """dL/dv_j = sum_i alpha_ij u_i: each value collects the errors of the queries using it."""
    alpha = _float_input("alpha", alpha)
    u = _float_input("u", u)
    check_same_dtype(alpha=alpha, u=u)
    _same_leading_axes("alpha", alpha, "u", u)
    if u.shape[-2] != alpha.shape[-2]:
        raise ValueError(f"u: expected {alpha.shape[-2]} rows (one per query), got {u.shape[-2]}")
    check_probability_vector("alpha", alpha, atol=1e-6)
    return _value_gradient(alpha, u)


def query_key_gradients(score_grad: torch.Tensor, q: torch.Tensor,
                        k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dq, dL/dk) = (G k, G^T q) / sqrt(d_k) from the score gradient G = dL/ds.

    ``G`` may be rectangular: (..., n_queries, n_keys) with ``q`` (..., n_queries, d_k) and
    ``k`` (..., n_keys, d_k), as in a block of query rows.
    """
    score_grad = _float_input("score_grad", score_grad)
    q = _float_input("q", q)
    k = _float_input("k", k)
    check_same_dtype(score_grad=score_grad, q=q, k=k)
    _same_leading_axes("score_grad", score_grad, "q", q)
    _same_leading_axes("score_grad", score_grad, "k", k)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k: expected d_k = {q.shape[-1]} like q, got {k.shape[-1]}")
    if score_grad.shape[-2:] != (q.shape[-2], k.shape[-2]):
        raise ValueError(f"score_grad: expected (..., {q.shape[-2]}, {k.shape[-2]}), "
                         f"got {tuple(score_grad.shape)}")
    return _query_key_gradients(score_grad, q, k, 1.0 / math.sqrt(q.shape[-1]))


def first_order_score_decrease(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """-sum_ij alpha_ij^2 (b_ij - bbar_i)^2: dL/d(eta) at eta = 0 for the score step -eta dL/ds."""
    g = routing_gradient(alpha, b)
    return -(g * g).sum(dim=(-1, -2))


@dataclass
class HeadGradients:
    """Loss per run and the closed-form gradients of every intermediate and weight."""

    loss: torch.Tensor        # (...,)
    u: torch.Tensor           # dL/do
    b: torch.Tensor           # u v^T = dL/dalpha
    score_grad: torch.Tensor  # dL/ds (routing law)
    value_grad: torch.Tensor  # dL/dv
    query_grad: torch.Tensor  # dL/dq
    key_grad: torch.Tensor    # dL/dk
    weights: HeadWeights      # dL/dW_Q, dL/dW_K, dL/dW_V, dL/dW_O
    forward: HeadForward


def _output_gradient(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor]:
    """(log softmax(z), probabilities, per-position dl_i/dz_i = softmax(z_i) - e_{y_i})."""
    log_p = torch.log_softmax(z, dim=-1)
    p = log_p.exp()
    dz = p.clone().scatter_add_(-1, y.unsqueeze(-1), torch.full_like(p[..., :1], -1.0))
    return log_p, p, dz


def _reference_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights
                         ) -> HeadGradients:
    fwd = _forward(x, weights)
    n = x.shape[-2]
    log_p, _, dz = _output_gradient(fwd.z, y)
    loss = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(dim=-1)
    dz = dz / n
    u = dz @ weights.W_O.transpose(-1, -2)
    b = u @ fwd.v.transpose(-1, -2)
    # E_alpha_i[b] = sum_j alpha_ij u_i.v_j = u_i.o_i: the row mean needs no (n, n) pass.
    b_bar = (u * fwd.o).sum(dim=-1, keepdim=True)
    score_grad = _routing_gradient_(fwd.alpha, b.clone(), b_bar)
    value_grad = _value_gradient(fwd.alpha, u)
    dq, dk = _query_key_gradients(score_grad, fwd.q, fwd.k, 1.0 / math.sqrt(fwd.q.shape[-1]))
    xt = x.transpose(-1, -2)
    grads = HeadWeights(W_Q=xt @ dq, W_K=xt @ dk, W_V=xt @ value_grad,
                        W_O=fwd.o.transpose(-1, -2) @ dz)
    return HeadGradients(loss=loss, u=u, b=b, score_grad=score_grad, value_grad=value_grad,
                         query_grad=dq, key_grad=dk, weights=grads, forward=fwd)


def head_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights) -> HeadGradients:
    """Mean cross-entropy per run and all its gradients, built from the closed forms only."""
    x = _check_inputs(x, weights)
    y = check_class_labels("y", y, x.shape[:-1], weights.W_O.shape[-1])
    return _reference_gradients(x, y, weights)


def autograd_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights
                       ) -> dict[str, torch.Tensor]:
    """Reference gradients from torch.autograd (scores, values, queries, keys, the four W)."""
    x = _check_inputs(x, weights)
    y = check_class_labels("y", y, x.shape[:-1], weights.W_O.shape[-1])
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
# The blocked (causal, cache-sized) step used for training
# ----------------------------------------------------------------------------------------------

@dataclass
class BlockedGradients:
    """Loss, entropy and accuracy per run, the weight gradients, and optional M-step sums."""

    loss: torch.Tensor                 # (runs,) mean cross-entropy
    entropy: torch.Tensor              # (runs,) mean predictive entropy
    accuracy: torch.Tensor             # (runs,) argmax accuracy
    weights: HeadWeights               # dL/dW_Q, dL/dW_K, dL/dW_V, dL/dW_O
    mass: torch.Tensor | None = None              # (runs, n) N_j = sum_i alpha_ij
    weighted_targets: torch.Tensor | None = None  # (runs, n, d_v) sum_i alpha_ij t_i
    routed: torch.Tensor | None = None            # (runs, n, d_x) A X
    targets: torch.Tensor | None = None           # (runs, n, d_v) t_i


def _block_attention(q: torch.Tensor, k_t: torch.Tensor, start: int, stop: int,
                     bias: torch.Tensor) -> torch.Tensor:
    """Attention rows start:stop over the keys they can see (:stop); q holds scaled queries."""
    rows = stop - start
    scores = torch.bmm(q[:, start:stop], k_t[:, :, :stop])
    scores[:, :, start:] += bias[:rows, :rows]
    return torch.softmax(scores, dim=-1)


def _output_stats(z: torch.Tensor, y: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """Add the summed loss, entropy and hits of logits ``z`` to ``sums`` (3, runs); dl_i/dz_i."""
    log_p, p, dz = _output_gradient(z, y)
    sums[0] -= log_p.gather(-1, y.unsqueeze(-1)).sum(dim=(-1, -2))
    sums[1] -= (p * log_p).sum(dim=(-1, -2))
    sums[2] += (z.argmax(dim=-1) == y).sum(dim=-1)
    return dz


def _blocked_pass(x: torch.Tensor, y: torch.Tensor, w: HeadWeights, block_size: int,
                  gamma: torch.Tensor | None = None, routing: bool = True,
                  values: bool = True) -> BlockedGradients:
    """One full-batch forward/backward over blocks of query rows (x: (runs, n, d_x)).

    With ``gamma`` (runs, 1, 1) it also accumulates the M-step sums for the targets
    t_i = o_i - gamma dl_i/do_i. ``routing=False`` skips the query/key gradients and
    ``values=False`` the value gradient (returned as zeros), for runs that freeze them.
    """
    runs, n, _ = x.shape
    scale = 1.0 / math.sqrt(w.W_Q.shape[-1])
    q = (x @ w.W_Q).mul_(scale)  # scaled queries: s = q k^T
    k = x @ w.W_K
    v = x @ w.W_V
    k_t, v_t, w_o_t = k.transpose(-1, -2), v.transpose(-1, -2), w.W_O.transpose(-1, -2)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    o = torch.empty_like(v)
    dz = torch.empty(runs, n, w.W_O.shape[-1], dtype=x.dtype, device=x.device)
    sums = torch.zeros(3, runs, dtype=x.dtype, device=x.device)
    bias = _mask_bias(min(block_size, n), x.dtype, x.device)
    if gamma is not None:
        mass = torch.zeros(runs, n, dtype=x.dtype, device=x.device)
        weighted, targets = torch.zeros_like(v), torch.empty_like(v)
        routed = torch.empty_like(x)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        alpha = _block_attention(q, k_t, start, stop, bias)
        o_blk = torch.bmm(alpha, v[:, :stop])
        o[:, start:stop] = o_blk
        dz_blk = _output_stats(o_blk @ w.W_O, y[:, start:stop], sums).div_(n)
        dz[:, start:stop] = dz_blk
        u = dz_blk @ w_o_t
        if values:
            dv[:, :stop] += _value_gradient(alpha, u)
        if gamma is not None:
            mass[:, :stop] += alpha.sum(dim=-2)
            targets[:, start:stop] = o_blk - gamma * n * u  # n u_i = dl_i/do_i
            weighted[:, :stop] += _value_gradient(alpha, targets[:, start:stop])
            routed[:, start:stop] = torch.bmm(alpha, x[:, :stop])
        if routing:
            g = _routing_gradient_(alpha, torch.bmm(u, v_t[:, :, :stop]),
                                   (u * o_blk).sum(dim=-1, keepdim=True))
            dq[:, start:stop], dk_blk = _query_key_gradients(g, q[:, start:stop],
                                                             k[:, :stop], 1.0)
            dk[:, :stop] += dk_blk
    x_t = x.transpose(-1, -2)
    grads = HeadWeights(W_Q=(x_t @ dq).mul_(scale), W_K=x_t @ dk, W_V=x_t @ dv,
                        W_O=o.transpose(-1, -2) @ dz)
    sums.div_(n)
    out = BlockedGradients(loss=sums[0], entropy=sums[1], accuracy=sums[2], weights=grads)
    if gamma is not None:
        out.mass, out.weighted_targets, out.routed, out.targets = mass, weighted, routed, targets
    return out


def _routed_inputs(x: torch.Tensor, w: HeadWeights, block_size: int) -> torch.Tensor:
    """A X by blocks of query rows: the inputs mixed by the attention of the weights ``w``."""
    n = x.shape[-2]
    q = (x @ w.W_Q).mul_(1.0 / math.sqrt(w.W_Q.shape[-1]))
    k_t = (x @ w.W_K).transpose(-1, -2)
    bias = _mask_bias(min(block_size, n), x.dtype, x.device)
    routed = torch.empty_like(x)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        routed[:, start:stop] = torch.bmm(_block_attention(q, k_t, start, stop, bias),
                                          x[:, :stop])
    return routed


def _fixed_routing_pass(routed: torch.Tensor, y: torch.Tensor, w: HeadWeights,
                        values: bool = True) -> BlockedGradients:
    """The step of runs whose W_Q, W_K are frozen: A is constant, so o = (A X) W_V.

    ``routed`` is A X (runs, n, d_x). dL/dW_V = X^T A^T U = (A X)^T U and dL/dW_O = O^T dZ, as
    in the blocked pass; the query and key gradients are returned as zeros.
    """
    runs, n, _ = routed.shape
    o = routed @ w.W_V
    sums = torch.zeros(3, runs, dtype=routed.dtype, device=routed.device)
    dz = _output_stats(o @ w.W_O, y, sums).div_(n)
    grad_v = (routed.transpose(-1, -2) @ (dz @ w.W_O.transpose(-1, -2)) if values
              else torch.zeros_like(w.W_V))
    grads = HeadWeights(W_Q=torch.zeros_like(w.W_Q), W_K=torch.zeros_like(w.W_K), W_V=grad_v,
                        W_O=o.transpose(-1, -2) @ dz)
    sums.div_(n)
    return BlockedGradients(loss=sums[0], entropy=sums[1], accuracy=sums[2], weights=grads)


def blocked_head_gradients(x: torch.Tensor, y: torch.Tensor, weights: HeadWeights,
                           block_size: int | None = None) -> BlockedGradients:
    """The training step's loss, entropy, accuracy and weight gradients, by blocks of queries.

    ``x`` is (runs, n, d_x). Same closed forms as :func:`head_gradients`, evaluated block by
    block on the causal triangle only; agrees with it to rounding. ``block_size`` defaults to
    the trainer's (see :func:`train_runs`).
    """
    x = _check_inputs(x, weights)
    check_ndim("x", x, 3)
    y = check_class_labels("y", y, x.shape[:-1], weights.W_O.shape[-1])
    if block_size is None:
        block_size = _default_block_size(x.shape[-2], x.device)
    block_size = check_positive_int("block_size", block_size)
    return _blocked_pass(x, y, weights, block_size)


# ----------------------------------------------------------------------------------------------
# The M-step
# ----------------------------------------------------------------------------------------------

def _responsibilities(alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    alpha = _float_input("alpha", alpha)
    if bool((alpha < 0).any()):
        raise ValueError("alpha: expected non-negative responsibilities")
    targets = _float_input("targets", targets, (alpha.ndim,))
    check_same_dtype(alpha=alpha, targets=targets)
    if targets.shape[-2] != alpha.shape[-2]:
        raise ValueError(f"targets: expected {alpha.shape[-2]} rows (one per query), "
                         f"got {targets.shape[-2]}")
    return alpha


def mixture_m_step(alpha: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Responsibility-weighted means tbar_j = sum_i alpha_ij t_i / N_j (the mixture M-step)."""
    alpha = _responsibilities(alpha, targets)
    mass = alpha.sum(dim=-2)
    if bool((mass <= 0).any()):
        raise ValueError("alpha: every value (column) needs positive responsibility N_j")
    return _value_gradient(alpha, targets) / mass.unsqueeze(-1)


def _solve_normal_equations(gram: torch.Tensor, rhs: torch.Tensor, ridge: float,
                            check_name: str | None = None) -> torch.Tensor:
    """Solve (gram + ridge I) W = rhs; with ``check_name``, first reject a singular system."""
    if ridge > 0:
        gram = gram + ridge * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    if check_name is not None:
        cond = torch.linalg.cond(gram)
        limit = 1.0 / torch.finfo(gram.dtype).eps
        if not bool(torch.isfinite(cond).all()) or bool((cond > limit).any()):
            raise ValueError(f"{check_name}: the least-squares Gram matrix is singular "
                             f"(condition number {float(cond.max()):.3g}); pass ridge > 0 or "
                             "better-spread inputs")
    return torch.linalg.solve(gram, rhs)


def _value_weights_m_step(x: torch.Tensor, mass: torch.Tensor, weighted_targets: torch.Tensor,
                          ridge: float, check_name: str | None = None) -> torch.Tensor:
    """argmin_W sum_j N_j |W^T x_j|^2 - 2 <W^T x_j, sum_i alpha_ij t_i> (+ ridge |W|^2)."""
    xt = x.transpose(-1, -2)
    return _solve_normal_equations((xt * mass.unsqueeze(-2)) @ x, xt @ weighted_targets,
                                   ridge, check_name)


def _m_step_inputs(x, alpha, targets, ridge):
    """Validate the inputs of the value-weight M-steps (public entries only)."""
    alpha = _responsibilities(alpha, targets)
    x = _float_input("x", x, (alpha.ndim,))
    check_same_dtype(alpha=alpha, x=x)
    if x.shape[-2] != alpha.shape[-1]:
        raise ValueError(f"x: expected {alpha.shape[-1]} rows (one per key), got {x.shape[-2]}")
    return alpha, x, check_positive("ridge", ridge, allow_zero=True)


def value_weights_m_step(x: torch.Tensor, alpha: torch.Tensor, targets: torch.Tensor,
                         ridge: float = 0.0) -> torch.Tensor:
    """Tied-value M-step: argmin_W sum_ij alpha_ij |W^T x_j - t_i|^2 (+ ridge |W|^2)."""
    alpha, x, ridge = _m_step_inputs(x, alpha, targets, ridge)
    return _value_weights_m_step(x, alpha.sum(dim=-2), _value_gradient(alpha, targets), ridge,
                                 check_name="x")


def _least_squares_value_weights(routed: torch.Tensor, targets: torch.Tensor,
                                 ridge: float, check_name: str | None = None) -> torch.Tensor:
    """argmin_W |routed W - targets|^2 (+ ridge |W|^2) by the normal equations."""
    rt = routed.transpose(-1, -2)
    return _solve_normal_equations(rt @ routed, rt @ targets, ridge, check_name)


def least_squares_value_weights(x: torch.Tensor, alpha: torch.Tensor, targets: torch.Tensor,
                                ridge: float = 0.0) -> torch.Tensor:
    """Least squares of the head output on targets: argmin_W |A X W - T|^2 (+ ridge |W|^2)."""
    alpha, x, ridge = _m_step_inputs(x, alpha, targets, ridge)
    return _least_squares_value_weights(alpha @ x, targets, ridge, check_name="x")


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
    targets = check_class_labels("targets", targets, inputs.shape[:1], n_sym)
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


#: The arms of the chapter: the authors' two, the closed-form M-steps, and a 2 x 2 factorial
#: ablation of em_like (routing W_Q, W_K on/off x values W_V on/off, readout W_O always on,
#: every learning rate that is on equal to em_like's).
ARMS: dict[str, Arm] = {
    "sgd": Arm("sgd", 0.01, 0.01, 0.01, 0.01),
    "em_like": Arm("em_like", 0.01, 0.01, 0.1, 0.01),
    "m_step": Arm("m_step", 0.01, 0.01, 0.0, 0.01, m_step="mixture"),
    "ls_step": Arm("ls_step", 0.01, 0.01, 0.0, 0.01, m_step="least_squares"),
    "frozen_routing": Arm("frozen_routing", 0.0, 0.0, 0.1, 0.01),
    "frozen_values": Arm("frozen_values", 0.01, 0.01, 0.0, 0.01),
    "readout_only": Arm("readout_only", 0.0, 0.0, 0.0, 0.01),
}


def init_weights(seeds: Sequence[int], d_x: int = 20, d_k: int = 10, d_v: int = 15,
                 n_classes: int = 8, scale: float = 0.1,
                 dtype: torch.dtype = torch.float64,
                 device: torch.device | None = None) -> HeadWeights:
    """The script's initialisation: after manual_seed(seed), randn * 0.1 for Q, K, V, O in turn."""
    if len(seeds) == 0:
        raise ValueError("seeds: expected at least one seed")
    for name, value in (("d_x", d_x), ("d_k", d_k), ("d_v", d_v), ("n_classes", n_classes)):
        check_positive_int(name, value)
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
    """Per-run curves (runs, n_steps + 1) and the weights recorded at the requested steps."""

    loss: torch.Tensor
    entropy: torch.Tensor
    accuracy: torch.Tensor
    final: HeadWeights
    history: dict[int, HeadWeights] = field(default_factory=dict)  # step -> weights
    seconds: float = 0.0


def _arm_rates(arms: Sequence[Arm], dtype: torch.dtype, device: torch.device | None
               ) -> tuple[torch.Tensor, ...]:
    cols = [torch.tensor([getattr(a, nm) for a in arms], dtype=dtype, device=device)
            .view(-1, 1, 1) for nm in ("lr_q", "lr_k", "lr_v", "lr_o")]
    gamma = torch.tensor([a.target_step for a in arms], dtype=dtype, device=device).view(-1, 1, 1)
    return (*cols, gamma)


def _check_arms(arms: Sequence[Arm]) -> None:
    for arm in arms:
        if not isinstance(arm, Arm):
            raise ValueError(f"arms: expected Arm instances, got {type(arm).__name__}")
        for name in ("lr_q", "lr_k", "lr_v", "lr_o"):
            check_positive(f"arms[{arm.name}].{name}", getattr(arm, name), allow_zero=True)
        if arm.m_step not in ("", "mixture", "least_squares"):
            raise ValueError(f"arms[{arm.name}].m_step: expected '', 'mixture' or "
                             f"'least_squares', got {arm.m_step!r}")
        if arm.m_step:
            check_positive(f"arms[{arm.name}].target_step", arm.target_step)


def _train_group(x: torch.Tensor, y: torch.Tensor, init: HeadWeights, arms: Sequence[Arm],
                 n_steps: int, record_steps: frozenset[int], block_size: int,
                 progress: bool) -> TrainResult:
    """Full-batch training of one group of runs with the blocked step (no validation)."""
    lr_q, lr_k, lr_v, lr_o, gamma = _arm_rates(arms, x.dtype, x.device)
    kinds = {kind: torch.tensor([r for r, a in enumerate(arms) if a.m_step == kind],
                                dtype=torch.long, device=x.device)
             for kind in ("mixture", "least_squares")}
    any_m_step = any(idx.numel() for idx in kinds.values())
    routing = any(a.lr_q > 0 or a.lr_k > 0 for a in arms)
    values = any(a.lr_v > 0 for a in arms)
    w = init.clone()
    curves = torch.empty(3, x.shape[0], n_steps + 1, dtype=x.dtype, device=x.device)
    history: dict[int, HeadWeights] = {}
    steps: Sequence[int] | Iterator[int] = range(n_steps + 1)
    if progress:  # imported only on request: tqdm.auto warns in kernels without ipywidgets
        from tqdm.auto import tqdm

        steps = tqdm(steps, leave=False)
    # Frozen routing without an M-step: A never changes, so A X is computed once.
    routed = None if routing or any_m_step else _routed_inputs(x, w, block_size)
    for step in steps:
        if step in record_steps:
            history[step] = w.clone()
        if routed is not None:
            stats = _fixed_routing_pass(routed, y, w, values)
        else:
            stats = _blocked_pass(x, y, w, block_size, gamma if any_m_step else None,
                                  routing, values)
        curves[0, :, step] = stats.loss
        curves[1, :, step] = stats.entropy
        curves[2, :, step] = stats.accuracy
        if step == n_steps:
            break
        g = stats.weights
        new_v = w.W_V - lr_v * g.W_V
        if any_m_step:
            idx = kinds["mixture"]
            if idx.numel():
                new_v[idx] = _value_weights_m_step(x[idx], stats.mass[idx],
                                                   stats.weighted_targets[idx], 0.0)
            idx = kinds["least_squares"]
            if idx.numel():
                new_v[idx] = _least_squares_value_weights(stats.routed[idx],
                                                          stats.targets[idx], 0.0)
        w = HeadWeights(W_Q=w.W_Q - lr_q * g.W_Q, W_K=w.W_K - lr_k * g.W_K,
                        W_V=new_v, W_O=w.W_O - lr_o * g.W_O)
    c = curves.cpu()
    return TrainResult(loss=c[0], entropy=c[1], accuracy=c[2], final=w, history=history)


def _default_block_size(n: int, device: torch.device) -> int:
    """Query rows per block of the trainer (measurements in :func:`train_runs`)."""
    if device.type == "cuda" or n <= 256:
        return n
    return 128 if n <= 1024 else 64


@contextlib.contextmanager
def _intra_op_threads(n_threads: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_runs(x: torch.Tensor, y: torch.Tensor, init: HeadWeights, arms: Sequence[Arm],
               n_steps: int, record_steps: Sequence[int] = (), progress: bool | None = None,
               block_size: int | None = None, workers: int | None = None) -> TrainResult:
    """Full-batch training of R independent runs (run r uses arms[r]) with the blocked step.

    Runs are grouped by the gradients they need (a run that freezes W_Q and W_K skips the
    query/key gradients, one that freezes W_V the value gradient). A group whose routing is
    frozen and that has no M-step keeps a constant attention matrix A: A X is computed once and
    each step is that of the linear model o = (A X) W_V, z = o W_O. On the CPU each kind is
    split into at most ``workers`` groups (default: torch's thread count), trained in parallel
    Python threads, each group's tensor program single-threaded.
    The groups never synchronise, so a busy CPU slows them down in proportion instead of
    stalling many short parallel regions; each run's arithmetic does not depend on the
    grouping, so the numbers are the same for any ``workers``. On CUDA all runs form one group.
    ``block_size`` (query rows per block) defaults on the CPU to 64 for long sequences (the
    fastest of 32 to 512 in CPU time at T = 2000 on the book's 2-core build machine), to 128
    for n <= 1024 and to one block of all n rows for n <= 256 (single-threaded CPU time per
    step of the chapter's T = 500 runs 14-15 ms at 128 against 17-18 ms at 64; at T = 200,
    1.9 against 2.9 ms: short sequences pay per-block dispatch, not memory traffic); on CUDA
    to n.
    """
    x = _check_inputs(x, init)
    if x.ndim != 3:
        raise ValueError(f"x: expected (runs, n, d_x), got shape {tuple(x.shape)}")
    y = check_class_labels("y", y, x.shape[:-1], init.W_O.shape[-1])
    if len(arms) != x.shape[0]:
        raise ValueError(f"arms: expected one arm per run ({x.shape[0]}), got {len(arms)}")
    _check_arms(arms)
    n_steps = check_positive_int("n_steps", n_steps, minimum=0)
    record = frozenset(check_positive_int("record_steps", int(s), minimum=0)
                       for s in record_steps)
    if x.device.type == "cuda":
        workers = 1
    elif workers is None:
        workers = torch.get_num_threads()
    workers = min(check_positive_int("workers", workers), x.shape[0])
    n = x.shape[-2]
    if block_size is None:
        block_size = _default_block_size(n, x.device)
    block_size = check_positive_int("block_size", block_size)
    tasks = _run_groups(arms, workers)

    def run(k: int) -> TrainResult:
        idx = torch.tensor(tasks[k], dtype=torch.long, device=x.device)
        return _train_group(x[idx], y[idx], HeadWeights(*(w[idx] for w in init.as_tuple())),
                            [arms[r] for r in tasks[k]], n_steps, record, block_size,
                            bool(progress) and k == 0)

    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    if x.device.type == "cuda":
        parts = [run(k) for k in range(len(tasks))]
        torch.cuda.synchronize(x.device)
    else:
        with _intra_op_threads(1):
            if workers == 1:
                parts = [run(k) for k in range(len(tasks))]
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    parts = list(pool.map(run, range(len(tasks))))
    seconds = time.perf_counter() - start
    order = torch.tensor([r for task in tasks for r in task])
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order))

    def gather(values: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(values)[back.to(values[0].device)]

    def gather_weights(ws: list[HeadWeights]) -> HeadWeights:
        return HeadWeights(*(gather(list(t)) for t in zip(*(w.as_tuple() for w in ws),
                                                          strict=True)))

    return TrainResult(
        loss=gather([p.loss for p in parts]), entropy=gather([p.entropy for p in parts]),
        accuracy=gather([p.accuracy for p in parts]),
        final=gather_weights([p.final for p in parts]),
        history={s: gather_weights([p.history[s] for p in parts]) for s in sorted(record)
                 if s <= n_steps},
        seconds=seconds)


def _run_groups(arms: Sequence[Arm], workers: int) -> list[list[int]]:
    """Runs grouped by which gradients they need, each kind split into <= workers groups."""
    kinds = [(a.lr_q > 0 or a.lr_k > 0, a.lr_v > 0, a.m_step) for a in arms]
    tasks: list[list[int]] = []
    for kind in sorted(set(kinds)):
        runs = [r for r, k in enumerate(kinds) if k == kind]
        parts = min(workers, len(runs))
        bounds = [round(i * len(runs) / parts) for i in range(parts + 1)]
        tasks += [runs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return tasks


def steps_to_threshold(losses: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """First step whose loss is below ``threshold`` (a scalar or one per row); length if never."""
    losses = _float_input("losses", losses, (1, 2))
    limit = torch.as_tensor(threshold, dtype=losses.dtype, device=losses.device)
    if limit.ndim > 1 or (limit.ndim == 1 and limit.shape[0] != losses.shape[0]):
        raise ValueError(f"threshold: expected a scalar or one value per row of losses, "
                         f"got shape {tuple(limit.shape)}")
    below = losses < (limit.unsqueeze(-1) if limit.ndim == 1 else limit)
    n = losses.shape[-1]
    idx = torch.arange(n, device=losses.device).expand_as(below)
    return torch.where(below, idx, torch.full_like(idx, n)).min(dim=-1).values


# ----------------------------------------------------------------------------------------------
# The conventional implementation a reader would write (for timing and agreement only)
# ----------------------------------------------------------------------------------------------

class ConventionalHead(torch.nn.Module):
    """The head as an ``nn.Module``: full masked score matrix, autograd for the gradients."""

    def __init__(self, init: HeadWeights) -> None:
        super().__init__()
        init.validate()
        if init.W_Q.ndim != 2:
            raise ValueError(f"init: expected the weights of one run (2-D matrices), got W_Q "
                             f"of shape {tuple(init.W_Q.shape)}")
        self.W_Q, self.W_K, self.W_V, self.W_O = (torch.nn.Parameter(w.detach().clone())
                                                  for w in init.as_tuple())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits z = softmax(mask(Q K^T / sqrt(d_k))) V W_O for x of shape (n, d_x)."""
        q, k, v = x @ self.W_Q, x @ self.W_K, x @ self.W_V
        scores = q @ k.T / math.sqrt(q.shape[-1])
        mask = torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=1)
        alpha = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        return alpha @ v @ self.W_O


def conventional_train(x: torch.Tensor, y: torch.Tensor, init: HeadWeights, arm: Arm,
                       n_steps: int) -> torch.Tensor:
    """Train one run with ``ConventionalHead`` and ``torch.optim.SGD``; losses at 0..n_steps."""
    _check_arms([arm])
    if arm.m_step:
        raise ValueError(f"arm: the conventional trainer has no M-step, got {arm.m_step!r}")
    model = ConventionalHead(init)
    x = _check_inputs(x, init)
    check_ndim("x", x, 2)
    y = check_class_labels("y", y, x.shape[:-1], init.W_O.shape[-1])
    n_steps = check_positive_int("n_steps", n_steps, minimum=0)
    optimiser = torch.optim.SGD([{"params": [model.W_Q], "lr": arm.lr_q},
                                 {"params": [model.W_K], "lr": arm.lr_k},
                                 {"params": [model.W_V], "lr": arm.lr_v},
                                 {"params": [model.W_O], "lr": arm.lr_o}])
    losses = torch.empty(n_steps + 1, dtype=x.dtype)
    for step in range(n_steps + 1):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        losses[step] = loss.detach()
        if step == n_steps:
            break
        loss.backward()
        optimiser.step()
    return losses


# ----------------------------------------------------------------------------------------------
# Geometry of training: routing vs values, effective dimension
# ----------------------------------------------------------------------------------------------

def participation_ratio(features: torch.Tensor) -> torch.Tensor:
    """Effective dimension (sum lambda)^2 / sum lambda^2 of the covariance of the rows.

    ``features`` is (..., n, d); lambda are the eigenvalues of the row covariance. It is d for
    isotropic rows, 1 for rows on a line, and between the two otherwise.
    """
    features = _float_input("features", features)
    if features.shape[-2] < 2:
        raise ValueError(f"features: expected at least 2 rows, got shape "
                         f"{tuple(features.shape)}")
    centred = features - features.mean(dim=-2, keepdim=True)
    lam = torch.linalg.svdvals(centred).pow(2)
    if bool((lam.sum(-1) == 0).any()):
        raise ValueError("features: all rows are equal (zero covariance)")
    return lam.sum(-1).pow(2) / lam.pow(2).sum(-1)


@dataclass
class TrainingGeometry:
    """Per recorded step (runs, n_recorded): how far routing and values have moved, and PRs."""

    steps: tuple[int, ...]
    routing_change: torch.Tensor  # ||A_t - A_0||_F / ||A_T - A_0||_F
    value_change: torch.Tensor    # ||V_t - V_0||_F / ||V_T - V_0||_F, V = X W_V
    routing_step: torch.Tensor    # ||A_t - A_{t-1}||_F / ||A_{t-1}||_F per recorded interval
    value_step: torch.Tensor      # ||V_t - V_{t-1}||_F / ||V_{t-1}||_F per recorded interval
    output_pr: torch.Tensor       # participation ratio of the head outputs o_i
    value_pr: torch.Tensor        # participation ratio of the values v_j

    def half_time(self, which: str) -> torch.Tensor:
        """(runs,) first recorded step at which 'routing' or 'value' has made half its move."""
        if which not in ("routing", "value"):
            raise ValueError(f"which: expected 'routing' or 'value', got {which!r}")
        change = self.routing_change if which == "routing" else self.value_change
        steps = torch.tensor(self.steps, dtype=torch.float64)
        first = (change >= 0.5).to(torch.int64).argmax(dim=-1)
        return steps[first]


def training_geometry(x: torch.Tensor, history: dict[int, HeadWeights]) -> TrainingGeometry:
    """Routing (attention pattern) and value trajectories of the runs in ``history``."""
    if len(history) < 2:
        raise ValueError("history: expected weights recorded at two or more steps")
    steps = tuple(sorted(history))
    x = _check_inputs(x, history[steps[0]])
    alpha = [_forward(x, history[s]).alpha for s in steps]
    values = [x @ history[s].W_V for s in steps]
    outputs = [a @ v for a, v in zip(alpha, values, strict=True)]

    def path(seq: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        dist = torch.stack([(t - seq[0]).flatten(-2).norm(dim=-1) for t in seq], dim=-1)
        step = torch.stack([(b - a).flatten(-2).norm(dim=-1) / a.flatten(-2).norm(dim=-1)
                            for a, b in zip(seq[:-1], seq[1:], strict=True)], dim=-1)
        return dist / dist[..., -1:].clamp(min=torch.finfo(dist.dtype).tiny), step

    routing_change, routing_step = path(alpha)
    value_change, value_step = path(values)
    return TrainingGeometry(
        steps=steps, routing_change=routing_change.cpu(), value_change=value_change.cpu(),
        routing_step=routing_step.cpu(), value_step=value_step.cpu(),
        output_pr=torch.stack([participation_ratio(o) for o in outputs], -1).cpu(),
        value_pr=torch.stack([participation_ratio(v) for v in values], -1).cpu())


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
    heldout_loss: torch.Tensor   # (n_seeds, n_arms) final weights on the held-out sequence
    h_min: float
    inputs: torch.Tensor         # (n_seeds, n, d_x) the training sequences (float64, CPU)
    targets: torch.Tensor        # (n_seeds, n) their targets (CPU)

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

    def heldout(self, arm: str) -> torch.Tensor:
        """(n_seeds,) loss of the final weights on the held-out sequence (seed + 10000)."""
        return self.heldout_loss[:, self._index(arm)]

    def steps_to_beat(self, fast: str = "em_like", slow: str = "sgd") -> torch.Tensor:
        """Per seed: steps ``fast`` needs to go below ``slow``'s final loss on that seed."""
        return steps_to_threshold(self.curve("loss", fast), self.final("loss", slow))

    def speedup(self, fast: str = "em_like", slow: str = "sgd") -> torch.Tensor:
        """Per seed: n_steps / (steps ``fast`` needs to beat ``slow``'s final loss on that seed)."""
        return self.n_steps / self.steps_to_beat(fast, slow).to(torch.float64)

    def scripts_speedup(self, fast: str = "em_like", slow: str = "sgd") -> tuple[float, float]:
        """The script's metric: mean steps of ``fast`` to beat the MEAN final loss of ``slow``.

        As in the script, the search runs over the losses recorded before each of the
        ``n_steps`` updates (steps 0 .. n_steps - 1) and counts ``n_steps`` when never reached.
        """
        before_updates = self.curve("loss", fast)[:, :-1]
        steps = steps_to_threshold(before_updates, float(self.final("loss", slow).mean()))
        mean_steps = float(steps.to(torch.float64).mean())
        return mean_steps, self.n_steps / mean_steps

    def arm_history(self, arm: str) -> dict[int, HeadWeights]:
        """Recorded weights of one arm's runs (one per seed), by step."""
        runs = [s * len(self.arms) + self._index(arm) for s in range(len(self.seeds))]
        return {step: HeadWeights(*(t[runs] for t in w.as_tuple()))
                for step, w in self.result.history.items()}

    def run_weights(self, seed_index: int, arm: str, step: int) -> HeadWeights:
        """The recorded weights of one run at one recorded step."""
        if step not in self.result.history:
            raise ValueError(f"step: expected a recorded step {sorted(self.result.history)}, "
                             f"got {step}")
        run = seed_index * len(self.arms) + self._index(arm)
        return self.result.history[step].runs(run)


def sticky_experiment(seeds: Sequence[int] = AUTHORS_SEEDS,
                      arms: Sequence[str] = ("sgd", "em_like"), T: int = 2000,
                      n_steps: int = 1000, dtype: torch.dtype = torch.float32,
                      device: torch.device | None = None, record_steps: Sequence[int] = (),
                      progress: bool | None = None, workers: int | None = None
                      ) -> StickyExperiment:
    """The authors' protocol (their data, init, full-batch steps) for all seeds x arms at once."""
    if len(seeds) == 0:
        raise ValueError("seeds: expected at least one seed")
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"arms: unknown arm {arm!r}; expected names from {sorted(ARMS)}")
    chains = [sticky_chain(s, T) for s in seeds]
    tests = [sticky_chain(s + 10000, T) for s in seeds]
    n_arms = len(arms)

    def stack(cs: list[StickyChain]) -> tuple[torch.Tensor, torch.Tensor]:
        xs = torch.stack([c.inputs for c in cs for _ in arms]).to(dtype=dtype, device=device)
        return xs, torch.stack([c.targets for c in cs for _ in arms]).to(device=device)

    x, y = stack(chains)
    init = init_weights([s for s in seeds for _ in arms], dtype=dtype, device=device)
    schedule = [ARMS[a] for _ in seeds for a in arms]
    result = train_runs(x, y, init, schedule, n_steps, record_steps, progress, workers=workers)
    x_test, y_test = stack(tests)
    with torch.no_grad():
        test = blocked_head_gradients(x_test, y_test, result.final).loss.view(len(seeds), n_arms)
    bayes = torch.tensor([bayes_cross_entropy(c.inputs, c.targets, c.transition, c.embeddings)
                          for c in chains])
    return StickyExperiment(seeds=tuple(int(s) for s in seeds), arms=tuple(arms), T=T,
                            n_steps=n_steps, result=result, bayes=bayes,
                            heldout_loss=test.cpu(), h_min=minimum_entropy(chains[0].transition),
                            inputs=torch.stack([c.inputs.to(torch.float64) for c in chains]),
                            targets=torch.stack([c.targets for c in chains]))


# ----------------------------------------------------------------------------------------------
# The full-size results file
# ----------------------------------------------------------------------------------------------

_SUMMARY_METRICS = ("loss", "entropy", "accuracy", "heldout")


def full_size_summary(exp: StickyExperiment) -> dict:
    """The numbers the chapter reports at full size, as a JSON-ready dict (no timings)."""
    arms = {}
    for arm in exp.arms:
        values = {m: exp.final(m, arm) for m in _SUMMARY_METRICS[:3]}
        values["heldout"] = exp.heldout(arm)
        arms[arm] = {m: [round(float(v), 6) for v in values[m]] for m in _SUMMARY_METRICS}
    summary = {"seeds": list(exp.seeds), "T": exp.T, "n_steps": exp.n_steps,
               "h_min": round(exp.h_min, 6), "bayes": [round(float(b), 6) for b in exp.bayes],
               "arms": arms}
    if "sgd" in exp.arms and "em_like" in exp.arms:
        summary["steps_to_beat_sgd"] = [int(s) for s in exp.steps_to_beat()]
        summary["scripts_mean_steps"] = round(exp.scripts_speedup()[0], 3)
    return summary


def load_full_size_summary(path: str | Path) -> dict:
    """Read and check a results file written from :func:`full_size_summary`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no results file at {path}")
    data = json.loads(path.read_text())
    for key in ("seeds", "T", "n_steps", "h_min", "bayes", "arms"):
        if key not in data:
            raise ValueError(f"path: results file {path} has no {key!r}")
    n_seeds = len(data["seeds"])
    for arm, values in data["arms"].items():
        for metric in _SUMMARY_METRICS:
            if len(values.get(metric, ())) != n_seeds:
                raise ValueError(f"path: arm {arm!r} needs {n_seeds} values of {metric!r}")
    if {"sgd", "em_like"} <= set(data["arms"]):
        for key in ("steps_to_beat_sgd", "scripts_mean_steps"):
            if key not in data:
                raise ValueError(f"path: results file {path} has sgd and em_like but no {key!r}")
    return data
