r"""Softmax, its Jacobian, and the Fisher information of the categorical distribution.

With logits :math:`z \in \mathbb{R}^n` and :math:`p = \mathrm{softmax}(z)`,

.. math::

    \frac{\partial p}{\partial z} = \operatorname{diag}(p) - p p^\top
    = F(z) = \mathbb{E}_{y \sim p}\big[\nabla_z \log p_y \, \nabla_z \log p_y^\top\big],

and the gradient of the cross-entropy :math:`\ell(z, y) = -\log p_y` is :math:`p - e_y`.
The attention, natural-gradient and DEQ chapters rely on these identities.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
import torch

from gradynamics.validation import (
    as_tensor,
    check_class_labels,
    check_finite,
    check_probability_vector,
)

__all__ = [
    "categorical_fisher",
    "symbolic_softmax",
    "cross_entropy",
    "cross_entropy_logit_gradient",
    "softmax",
    "softmax_jacobian",
]


def _logits(name: str, z: torch.Tensor) -> torch.Tensor:
    z = as_tensor(name, z)
    if not z.is_floating_point():
        raise ValueError(f"{name}: expected floating-point logits, got {z.dtype}")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"{name}: expected at least one logit on the last axis, "
                         f"got shape {tuple(z.shape)}")
    check_finite(name, z)
    return z


def softmax(z: torch.Tensor) -> torch.Tensor:
    """Numerically stable softmax over the last axis."""
    z = _logits("z", z)
    shifted = z - z.amax(dim=-1, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def softmax_jacobian(p: torch.Tensor) -> torch.Tensor:
    """Softmax Jacobian ``diag(p) - p p^T`` from probabilities ``p`` (batched on leading axes)."""
    p = as_tensor("p", p)
    if not p.is_floating_point():
        raise ValueError(f"p: expected floating-point probabilities, got {p.dtype}")
    check_probability_vector("p", p)
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def categorical_fisher(z: torch.Tensor) -> torch.Tensor:
    """Fisher information of Categorical(softmax(z)) in logit coordinates, as E[score score^T]."""
    p = softmax(z)
    n = p.shape[-1]
    eye = torch.eye(n, dtype=p.dtype, device=p.device)
    scores = eye - p.unsqueeze(-2)  # row y: grad_z log p_y = e_y - p
    return torch.einsum("...y,...yi,...yj->...ij", p, scores, scores)


def cross_entropy(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy ``-log softmax(z)[target]`` (no reduction)."""
    z = _logits("z", z)
    target = _targets(z, target)
    log_p = z - torch.logsumexp(z, dim=-1, keepdim=True)
    return -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def cross_entropy_logit_gradient(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Closed-form gradient ``softmax(z) - onehot(target)`` of :func:`cross_entropy`."""
    z = _logits("z", z)
    target = _targets(z, target)
    onehot = torch.nn.functional.one_hot(target, z.shape[-1]).to(z.dtype)
    return softmax(z) - onehot


def _targets(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return check_class_labels("target", target, z.shape[:-1], z.shape[-1], device=z.device)


def monte_carlo_fisher(z: torch.Tensor, num_samples: int, repeats: int = 1,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Estimate the Fisher of Categorical(softmax(z)) as the mean of score outer products.

    ``z`` is one logit vector of length n. Returns ``repeats`` independent estimates, each from
    ``num_samples`` draws ``y ~ p`` with score ``e_y - p``; shape ``(repeats, n, n)``.
    """
    z = _logits("z", z)
    if z.ndim != 1:
        raise ValueError(f"z: expected one logit vector (1 dimension), got shape {tuple(z.shape)}")
    for name, value in (("num_samples", num_samples), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    p = softmax(z)
    draws = torch.multinomial(p.cpu().expand(repeats, -1), num_samples, replacement=True,
                              generator=generator).to(z.device)
    # counts[r, y] = how often y was drawn in repeat r; the estimate is sum_y (counts/N) s_y s_y^T
    counts = torch.zeros(repeats, p.shape[0], dtype=p.dtype, device=z.device)
    counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=p.dtype))
    weights = counts / num_samples
    eye = torch.eye(p.shape[0], dtype=p.dtype, device=z.device)
    scores = eye - p.unsqueeze(0)
    return torch.einsum("ry,yi,yj->rij", weights, scores, scores)


def symbolic_softmax(logits: Sequence[sp.Expr] | sp.MatrixBase) -> sp.Matrix:
    """Softmax of sympy expressions as a column ``Matrix``: ``exp(z_i) / sum_k exp(z_k)``."""
    if isinstance(logits, sp.MatrixBase):
        logits = list(logits)
    if isinstance(logits, (str, bytes)) or not isinstance(logits, Sequence) or not logits:
        raise ValueError("logits: expected a non-empty sequence of sympy expressions")
    try:
        terms = [sp.exp(sp.sympify(z, strict=True)) for z in logits]
    except (sp.SympifyError, TypeError) as err:
        raise ValueError("logits: expected sympy expressions") from err
    total = sum(terms)
    return sp.Matrix([t / total for t in terms])
