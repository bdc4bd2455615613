r"""Natural gradient vs gradient descent for minimising :math:`D_{\mathrm{KL}}(q\,\|\,p)`.

The setting follows the simulation code released by Datar and Ay with their TMLR paper
"Convergence Properties of Natural Gradient Descent for Minimizing KL Divergence".

**Simplex and charts.** Outcomes :math:`1, \dots, n+1`; the *last* outcome is the reference.
A point of the open simplex :math:`p \in \Delta_n` has

* mixture coordinates :math:`\eta_i = p_i` (:math:`i \le n`), with
  :math:`p_{n+1} = 1 - \sum_i \eta_i`;
* exponential coordinates :math:`\theta_i = \log(p_i / p_{n+1})`, with
  :math:`p_i = e^{\theta_i} / (1 + \sum_j e^{\theta_j})`.

:math:`\psi(\theta) = \log(1 + \sum_j e^{\theta_j})` is the log-partition function and
:math:`\eta = \nabla\psi(\theta)`: the two charts are Legendre-dual affine coordinates.

**Loss.** :math:`\mathcal L(p) = D_{\mathrm{KL}}(q\,\|\,p) = \sum_i q_i \log(q_i/p_i)`, written
:math:`L(\eta)` and :math:`V(\theta)` in the two charts.

**Fisher metrics.** :math:`G_\theta = \nabla^2\psi = \operatorname{diag}(\eta) - \eta\eta^\top`
(the softmax Jacobian restricted to the first :math:`n` logits) and
:math:`G_\eta = G_\theta^{-1} = \operatorname{diag}(1/\eta) + p_{n+1}^{-1}\mathbf 1\mathbf 1^\top`.

**Gradients.** :math:`\nabla_\eta L = G_\eta(\eta)(\eta - \eta_q)`,
:math:`\nabla_\theta V = \eta(\theta) - \eta_q`, natural gradient
:math:`G_\eta^{-1}\nabla_\eta L = \eta - \eta_q` (exactly, everywhere).

**Flows** (``method`` names used throughout):

* ``"gd_eta"``:   :math:`\dot\eta = -P^{-1}\nabla_\eta L(\eta)`;
* ``"ngd"``:      :math:`\dot\eta = -(\eta - \eta_q)`;
* ``"gd_theta"``: :math:`\dot\theta = -P\,\nabla_\theta V(\theta)`,

with :math:`P = A^\top A` for the affine reparameterisation
:math:`\tilde\eta = A\eta + b`, :math:`\tilde\theta = A^{-\top}\theta` (:math:`P = I` when
``A`` is ``None``). Linearised at the optimum, the KL decays like
:math:`e^{-r t}` with :math:`r = 2\lambda_{\min}` of the linearised flow matrix.

**Discrete iterations** replace :math:`\dot x` by :math:`(x_{k+1} - x_k)/\alpha`. Gradient
descent in :math:`\eta` can leave the simplex; the iteration then applies the authors'
``project_simplex`` rule (:func:`project_to_simplex`): clip coordinates below ``tol`` up to
``tol``, and if :math:`\sum\eta > 1 - \mathrm{tol}` divide by :math:`\sum_i(\eta_i+\mathrm{tol})`.
With ``batch=B`` the iterations use mini-batch gradients: the target is replaced at every step
by the histogram of ``B`` draws from it (the authors' commented-out SGD variant).

**Conventions.** Every function that takes the target puts it first, after ``method``:
``kl_divergence(q, p)`` is :math:`D_{\mathrm{KL}}(q\,\|\,p)`, ``loss_eta(q, eta)``,
``run_iterations(method, q, p0, lr, num_iters)``. Public functions validate their arguments
(``ValueError`` naming the argument); the loops call private unchecked kernels. Non-tensor
inputs become ``float64``; tensors keep their dtype, and mixing float dtypes is an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import block_diag

from gradynamics.softmax import softmax_jacobian
from gradynamics.validation import (
    as_tensor,
    check_finite,
    check_ndim,
    check_positive,
    check_positive_int,
    check_probability_vector,
    check_same_dtype,
)

__all__ = [
    "METHODS",
    "TAIL_DECADES",
    "TAIL_FLOOR",
    "FlowResult",
    "AUTHORS_LR_TOPS",
    "SweepSummary",
    "affine_dual_maps",
    "asymptotic_rate",
    "autograd_natural_gradient",
    "best_contraction",
    "chord_deviation",
    "closed_forms_vs_autograd",
    "discrete_step",
    "fisher_eta",
    "fisher_theta",
    "fit_rate",
    "grad_loss_eta",
    "grad_loss_theta",
    "integrate_flow",
    "integrate_natural_flow",
    "kl_divergence",
    "kl_from_eta_displacement",
    "kl_from_theta_displacement",
    "linearised_flow_matrix",
    "load_sweep_results",
    "loss_eta",
    "loss_theta",
    "natural_gradient",
    "ngd_closed_form",
    "noise_floor",
    "p_from_eta",
    "p_from_theta",
    "project_to_simplex",
    "rise_time",
    "rise_time_sweep",
    "rise_time_table",
    "run_iterations",
    "spectral_map",
    "sweep_instance",
    "stability_limit",
    "summarise_sweep",
    "theta_from_p",
    "whitening_map",
]

#: The three methods: gradient descent in eta, natural gradient descent, gradient descent in theta.
METHODS: tuple[str, ...] = ("gd_eta", "ngd", "gd_theta")

#: Upper ends of the authors' learning-rate grids ``linspace(0, top, 100)`` (their script 3).
AUTHORS_LR_TOPS: dict[str, float] = {"gd_eta": 0.006, "ngd": 3.0, "gd_theta": 20.0}

#: :func:`fit_rate`'s default window: the deepest ``TAIL_DECADES`` decades of KL that a
#: trajectory reaches, not below ``TAIL_FLOOR`` (where :func:`integrate_flow`'s default
#: ``atol`` = 1e-30 still resolves the displacement to about 1e-7 relative).
TAIL_DECADES: int = 4
TAIL_FLOOR: float = 1e-45


# --------------------------------------------------------------------------- validation
def _float(name: str, value) -> torch.Tensor:
    """A finite floating tensor; non-tensor input becomes float64."""
    if isinstance(value, torch.Tensor):
        out = value
    else:
        out = as_tensor(name, value, dtype=torch.float64)
    out = as_tensor(name, out)
    if not out.is_floating_point():
        out = out.to(torch.float64)
    check_finite(name, out)
    return out


def _simplex(name: str, p, ndim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``p`` as a float tensor whose last axis is a point of the open simplex (>= 2 outcomes)."""
    p = _float(name, p)
    if ndim is not None:
        check_ndim(name, p, ndim)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"{name}: expected probability vectors with at least 2 outcomes on the "
                         f"last axis, got shape {tuple(p.shape)}")
    check_probability_vector(name, p.detach(), strictly_positive=True)
    return p


def _check_eta(name: str, eta) -> torch.Tensor:
    eta = _float(name, eta)
    if eta.ndim < 1 or eta.shape[-1] < 1:
        raise ValueError(f"{name}: expected mixture coordinates on the last axis, "
                         f"got shape {tuple(eta.shape)}")
    values = eta.detach()
    if bool((values <= 0).any()) or bool((values.sum(-1) >= 1).any()):
        raise ValueError(f"{name}: not inside the open simplex (need eta_i > 0 and sum(eta) < 1)")
    return eta


def _check_coords(name: str, x, q: torch.Tensor) -> torch.Tensor:
    """Coordinates with n = len(q) - 1 entries on the last axis, same dtype as ``q``."""
    x = _float(name, x)
    if x.ndim < 1 or x.shape[-1] != q.shape[-1] - 1:
        raise ValueError(f"{name}: expected {q.shape[-1] - 1} coordinates on the last axis, "
                         f"got shape {tuple(x.shape)}")
    check_same_dtype(q=q, **{name: x})
    return x


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def _check_matrix_a(A, n: int, **like: torch.Tensor) -> torch.Tensor | None:
    """An invertible (n, n) matrix; ``like={"q": q}`` also requires q's dtype."""
    if A is None:
        return None
    A = _float("A", A)
    if tuple(A.shape) != (n, n):
        raise ValueError(f"A: expected a square ({n}, {n}) matrix, got shape {tuple(A.shape)}")
    check_same_dtype(**like, A=A)
    svals = torch.linalg.svdvals(A.to(torch.float64))
    if float(svals.min()) <= 1e-12 * max(float(svals.max()), 1e-300):
        raise ValueError("A: is singular (or numerically singular); the reparameterisation "
                         "must be invertible")
    return A


def _check_lr(lr, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Step sizes >= 0 (0 is allowed: the iterate stays put, as in the authors' grids)."""
    lr_t = _float("lr", lr).to(dtype=dtype, device=device)
    if bool((lr_t < 0).any()):
        raise ValueError(f"lr: expected step sizes >= 0, min is {float(lr_t.min())}")
    return lr_t


# --------------------------------------------------------------------------- kernels
# Private, unchecked: called inside loops after the public entry has validated everything.
def _p_eta(eta: torch.Tensor) -> torch.Tensor:
    return torch.cat([eta, 1 - eta.sum(-1, keepdim=True)], dim=-1)


def _log_p_theta(theta: torch.Tensor) -> torch.Tensor:
    logits = torch.cat([theta, torch.zeros_like(theta[..., :1])], dim=-1)
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


def _kl(q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) from log p; q > 0 (the target)."""
    return (q * (torch.log(q) - log_p)).sum(-1)


def _grad_eta(target: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    last = 1 - eta.sum(-1, keepdim=True)
    return -target[..., :-1] / eta + target[..., -1:] / last


def _grad_theta(target: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return torch.exp(_log_p_theta(theta))[..., :-1] - target[..., :-1]


def _direction(method: str, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Update direction (x <- x - lr * direction); ``target`` may be a batch histogram."""
    if method == "ngd":
        return x - target[..., :-1]
    if method == "gd_eta":
        return _grad_eta(target, x)
    return _grad_theta(target, x)


def _project(eta: torch.Tensor, tol: float) -> torch.Tensor:
    eta = eta.clamp_min(tol)
    total = eta.sum(-1, keepdim=True)
    return torch.where(total > 1 - tol, eta / (total + tol * eta.shape[-1]), eta)


def _start_coords(method: str, p: torch.Tensor) -> torch.Tensor:
    """Coordinates of probabilities ``p`` in the chart the method runs in (theta or eta)."""
    if method == "gd_theta":
        return torch.log(p[..., :-1]) - torch.log(p[..., -1:])
    return p[..., :-1].clone()


def _histograms(q: torch.Tensor, shape: tuple[int, ...], batch: int,
                generator: torch.Generator | None) -> torch.Tensor:
    """Histograms of ``batch`` draws from ``q`` (with replacement), one per entry of ``shape``."""
    runs = math.prod(shape)
    source = q if generator is None or generator.device == q.device else q.to(generator.device)
    draws = torch.multinomial(source, runs * batch, replacement=True, generator=generator)
    draws = draws.to(q.device).view(runs, batch)
    counts = torch.zeros(runs, q.shape[-1], dtype=q.dtype, device=q.device)
    counts.scatter_add_(1, draws, torch.ones(runs, batch, dtype=q.dtype, device=q.device))
    return (counts / batch).view(*shape, q.shape[-1])


# --------------------------------------------------------------------------- charts
def p_from_eta(eta) -> torch.Tensor:
    """Probabilities ``(eta, 1 - sum eta)`` from mixture coordinates."""
    return _p_eta(_check_eta("eta", eta))


def theta_from_p(p) -> torch.Tensor:
    """Exponential coordinates ``log(p_i / p_{n+1})``."""
    p = _simplex("p", p)
    return torch.log(p[..., :-1]) - torch.log(p[..., -1:])


def p_from_theta(theta) -> torch.Tensor:
    """Probabilities ``softmax((theta, 0))`` from exponential coordinates."""
    theta = _float("theta", theta)
    if theta.ndim < 1:
        raise ValueError(f"theta: expected coordinates on the last axis, got shape "
                         f"{tuple(theta.shape)}")
    return torch.exp(_log_p_theta(theta))


# --------------------------------------------------------------------------- loss
_SERIES_CUTOFF = 1e-3


def _x_minus_log1p(x: torch.Tensor) -> torch.Tensor:
    """x - log1p(x) >= 0 without cancellation for small |x| (4-term series below 1e-3)."""
    series = x * x * (0.5 - x * (1 / 3 - x * (0.25 - x / 5)))
    return torch.where(x.abs() < _SERIES_CUTOFF, series, x - torch.log1p(x))


def _expm1_minus_x(y: torch.Tensor) -> torch.Tensor:
    """expm1(y) - y without cancellation for small |y| (4-term series below 1e-3)."""
    series = y * y * (0.5 + y * (1 / 6 + y * (1 / 24 + y / 120)))
    return torch.where(y.abs() < _SERIES_CUTOFF, series, torch.expm1(y) - y)


def kl_divergence(q, p) -> torch.Tensor:
    """D_KL(q || p) = sum_i q_i log(q_i / p_i) over the last axis (batched, broadcasting)."""
    q = _simplex("q", q)
    p = _simplex("p", p)
    check_same_dtype(q=q, p=p)
    return _kl(q, torch.log(p))


def _kl_eta_disp(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    x = torch.cat([d, -d.sum(-1, keepdim=True)], dim=-1) / q
    return (q * _x_minus_log1p(x)).sum(-1)


def _kl_theta_disp(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    y = torch.cat([d, torch.zeros_like(d[..., :1])], dim=-1)
    s = (q * torch.expm1(y)).sum(-1)
    return (q * _expm1_minus_x(y)).sum(-1) - _x_minus_log1p(s)


def kl_from_eta_displacement(q, d_eta) -> torch.Tensor:
    """KL(q || p) for ``eta = eta_q + d_eta``, accurate down to KL ~ 1e-30 (no cancellation).

    Uses ``KL = sum_i q_i (x_i - log1p(x_i))`` with ``x = (p - q)/q``, valid because
    ``sum_i (p_i - q_i) = 0``; every term is non-negative.
    """
    q = _simplex("q", q)
    d = _check_coords("d_eta", d_eta, q)
    if bool((d.sum(-1) >= q[..., -1]).any()) or bool((q[..., :-1] + d <= 0).any()):
        raise ValueError("d_eta: the displaced point leaves the open simplex")
    return _kl_eta_disp(q, d)


def kl_from_theta_displacement(q, d_theta) -> torch.Tensor:
    """KL(q || p) for ``theta = theta_q + d_theta``, accurate down to KL ~ 1e-30.

    KL is the Bregman divergence ``psi(theta) - psi(theta_q) - eta_q . d_theta``, computed as
    ``sum_i q_i (expm1(y_i) - y_i) - (s - log1p(s))`` with ``y = (d_theta, 0)`` and
    ``s = sum_i q_i expm1(y_i)``.
    """
    q = _simplex("q", q)
    return _kl_theta_disp(q, _check_coords("d_theta", d_theta, q))


def loss_eta(q, eta) -> torch.Tensor:
    """L(eta) = D_KL(q || p(eta))."""
    q = _simplex("q", q)
    eta = _check_eta("eta", eta)
    _check_coords("eta", eta, q)
    return _kl(q, torch.log(_p_eta(eta)))


def loss_theta(q, theta) -> torch.Tensor:
    """V(theta) = D_KL(q || p(theta)) = psi(theta) - psi(theta_q) - eta_q . (theta - theta_q)."""
    q = _simplex("q", q)
    return _kl(q, _log_p_theta(_check_coords("theta", theta, q)))


# --------------------------------------------------------------------------- geometry
def fisher_theta(theta) -> torch.Tensor:
    """G_theta = diag(eta) - eta eta^T: the softmax Jacobian restricted to the first n logits."""
    return softmax_jacobian(p_from_theta(theta))[..., :-1, :-1]


def fisher_eta(eta) -> torch.Tensor:
    """G_eta = diag(1/eta) + (1/p_{n+1}) 1 1^T, the inverse of G_theta."""
    eta = _check_eta("eta", eta)
    last = 1 - eta.sum(-1)
    n = eta.shape[-1]
    ones = torch.ones(n, n, dtype=eta.dtype, device=eta.device)
    return torch.diag_embed(1 / eta) + ones / last[..., None, None]


def grad_loss_eta(q, eta) -> torch.Tensor:
    """grad_eta L = -q_{1:n}/eta + q_{n+1}/p_{n+1} (the authors' formula)."""
    q = _simplex("q", q)
    eta = _check_eta("eta", eta)
    return _grad_eta(q, _check_coords("eta", eta, q))


def grad_loss_theta(q, theta) -> torch.Tensor:
    """grad_theta V = eta(theta) - eta_q."""
    q = _simplex("q", q)
    return _grad_theta(q, _check_coords("theta", theta, q))


def natural_gradient(q, eta) -> torch.Tensor:
    """G_eta^{-1} grad_eta L = eta - eta_q (exact, global)."""
    q = _simplex("q", q)
    eta = _check_eta("eta", eta)
    return _check_coords("eta", eta, q) - q[..., :-1]


def autograd_natural_gradient(q, x, chart: Callable[[torch.Tensor], torch.Tensor]
                              ) -> torch.Tensor:
    """Natural gradient of ``KL(q || chart(x))`` in any chart, from autograd alone.

    ``chart`` maps coordinates ``x`` [d] to probabilities [n+1] (a pure tensor function, so that
    ``torch.func`` can differentiate and batch it). The Fisher metric is the score covariance
    ``sum_k p_k grad log p_k grad log p_k^T`` and the gradient comes from ``torch.func.grad``:
    no closed form of this module is used, so it is an independent reference for
    :func:`natural_gradient`. ``x`` may be [d] or [B, d] (vmapped).
    """
    q = _simplex("q", q, ndim=1)
    x = _float("x", x)
    check_ndim("x", x, (1, 2))
    check_same_dtype(q=q, x=x)
    if not callable(chart):
        raise ValueError(f"chart: expected a callable x -> p, got {type(chart).__name__}")

    def one(point: torch.Tensor) -> torch.Tensor:
        probs = chart(point)
        scores = torch.func.jacrev(lambda z: torch.log(chart(z)))(point)  # [n+1, d]
        fisher = scores.T @ (probs[:, None] * scores)
        grad = torch.func.grad(lambda z: (q * (torch.log(q) - torch.log(chart(z)))).sum())(point)
        return torch.linalg.solve(fisher, grad)

    return torch.func.vmap(one)(x) if x.ndim == 2 else one(x)


def closed_forms_vs_autograd(q, p, A) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each closed form of this module at the point ``p`` beside an autograd reference.

    Returns ``{quantity: (closed form, reference)}`` for one target ``q`` and one point ``p``
    (both [n+1]) and an invertible ``A`` [n, n]. The references differentiate the plain KL
    formula with autograd: the gradients of ``L`` and ``V``; the natural gradient as a linear
    solve of the Fisher metric with that gradient; the Fisher metric as the score covariance
    (autograd Jacobian of ``log p``); the Hessians of ``L`` at the optimum and of ``V`` at
    ``p``; and the gradient in the affine chart ``z = A eta`` (autograd through
    ``eta = A^{-1} z``), against the pull-back ``A^{-T} grad_eta L``.
    """
    q = _simplex("q", q, ndim=1)
    p = _simplex("p", p, ndim=1)
    check_same_dtype(q=q, p=p)
    if p.shape != q.shape:
        raise ValueError(f"p: expected shape {tuple(q.shape)}, got {tuple(p.shape)}")
    A = _check_matrix_a(A, q.shape[-1] - 1, q=q)
    if A is None:
        raise ValueError("A: expected an invertible (n, n) matrix, got None")
    eta, theta = p[:-1].detach(), _start_coords("gd_theta", p.detach())
    jacobian, hessian = torch.autograd.functional.jacobian, torch.autograd.functional.hessian

    def plain_loss(log_p: torch.Tensor) -> torch.Tensor:
        return (q * (torch.log(q) - log_p)).sum()

    g_eta = torch.func.grad(lambda e: plain_loss(torch.log(_p_eta(e))))(eta)
    g_theta = torch.func.grad(lambda t: plain_loss(_log_p_theta(t)))(theta)
    jac_log_p = jacobian(lambda e: torch.log(_p_eta(e)), eta)
    g_tilde = torch.func.grad(
        lambda z: plain_loss(torch.log(_p_eta(torch.linalg.solve(A, z)))))(A @ eta)
    G_eta = fisher_eta(eta)
    return {
        "grad L(eta)": (grad_loss_eta(q, eta), g_eta),
        "grad V(theta)": (grad_loss_theta(q, theta), g_theta),
        "natural gradient": (natural_gradient(q, eta), torch.linalg.solve(G_eta, g_eta)),
        "score covariance": (G_eta, jac_log_p.T @ (p[:, None] * jac_log_p)),
        "Hessian L at optimum": (fisher_eta(q[:-1]), hessian(
            lambda e: plain_loss(torch.log(_p_eta(e))), q[:-1].detach())),
        "Hessian V(theta)": (fisher_theta(theta), hessian(
            lambda t: plain_loss(_log_p_theta(t)), theta)),
        "gradient in A eta + b": (torch.linalg.solve(A.T, grad_loss_eta(q, eta)), g_tilde),
    }


def _check_time_grid(t, rtol: float, atol: float) -> torch.Tensor:
    """The ODE integrators' common inputs: ``t`` an increasing float64 grid from 0 (returned),
    ``rtol`` and ``atol`` positive."""
    t = _float("t", t).to(torch.float64).cpu()
    if t.ndim != 1 or t.numel() < 2 or bool((t.diff() <= 0).any()) or float(t[0]) != 0.0:
        raise ValueError("t: expected an increasing 1-D grid of times starting at 0")
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    return t

def integrate_natural_flow(q, chart: Callable[[torch.Tensor], torch.Tensor], x0, t,
                           rtol: float = 1e-10, atol: float = 1e-12) -> torch.Tensor:
    """The NGD flow ``x' = -G(x)^{-1} grad_x KL(q || chart(x))`` in any chart, from autograd.

    The right-hand side is :func:`autograd_natural_gradient` (score covariance and gradient by
    autograd, no closed form), integrated with SciPy's DOP853 on the CPU in float64 from the
    points ``x0`` [d] or [B, d]. Returns the coordinates at the times ``t``, shape
    ``[T, *x0.shape]``; map them to probabilities with ``chart`` to compare charts.
    """
    q = _simplex("q", q, ndim=1).to(torch.float64).cpu()
    x0 = _float("x0", x0).to(torch.float64).cpu()
    check_ndim("x0", x0, (1, 2))
    if not callable(chart):
        raise ValueError(f"chart: expected a callable x -> p, got {type(chart).__name__}")
    t = _check_time_grid(t, rtol, atol)
    shape = x0.shape

    def rhs(_t, y):
        x = torch.from_numpy(y).view(shape)
        return -autograd_natural_gradient(q, x, chart).reshape(-1).numpy()

    sol = solve_ivp(rhs, (0.0, float(t[-1])), x0.reshape(-1).numpy(), method="DOP853",
                    t_eval=t.numpy(), rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"integrate_natural_flow: {sol.message}")
    return torch.from_numpy(sol.y.T.copy()).view(len(t), *shape)


def chord_deviation(path) -> torch.Tensor:
    """Largest distance of a path from the chord between its ends, over the chord's length.

    ``path`` is [T, ..., d] (T points of each of a batch of paths); returns one number per
    path, shape ``path.shape[1:-1]``: 0 for a straight segment.
    """
    path = _float("path", path)
    if path.ndim < 2 or path.shape[0] < 2:
        raise ValueError(f"path: expected shape [T >= 2, ..., d], got {tuple(path.shape)}")
    start, end = path[0], path[-1]
    length = (end - start).norm(dim=-1, keepdim=True)
    if bool((length == 0).any()):
        raise ValueError("path: a path ends where it starts (no chord)")
    direction = (end - start) / length
    rel = path - start
    perp = rel - (rel * direction).sum(-1, keepdim=True) * direction
    return perp.norm(dim=-1).amax(0) / length.squeeze(-1)


def load_sweep_results(path, missing_ok: bool = False) -> dict | None:
    """Read the full-size rise-time sweeps written by ``benchmarks/bench_natural_gradient.py``.

    Checks that each of the sweeps ``"full"`` and ``"minibatch"`` has, for every method, the
    worst-case rise times (``num_lrs`` of them) and their summary. Returns ``None`` when the
    file does not exist and ``missing_ok``.
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return None
        raise ValueError(f"path: no results file at {path}")
    data = json.loads(path.read_text())
    for key in ("num_lrs", "num_starts", "num_iters", "batch", "sweeps"):
        if key not in data:
            raise ValueError(f"path: results file {path} has no {key!r}")
    for sweep in ("full", "minibatch"):
        for method in METHODS:
            entry = data["sweeps"].get(sweep, {}).get(method, {})
            if len(entry.get("worst", ())) != data["num_lrs"] or "summary" not in entry:
                raise ValueError(f"path: sweep {sweep!r}, method {method!r} needs "
                                 f"{data['num_lrs']} worst-case rise times and a summary")
    return data


def affine_dual_maps(eta, theta, A, b=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The dual affine pair ``(A eta + b, A^{-T} theta)`` (batched over leading axes)."""
    eta = _float("eta", eta)
    theta = _float("theta", theta)
    if eta.ndim < 1 or theta.shape != eta.shape:
        raise ValueError(f"theta: expected the shape of eta {tuple(eta.shape)}, "
                         f"got {tuple(theta.shape)}")
    check_same_dtype(eta=eta, theta=theta)
    A = _check_matrix_a(A, eta.shape[-1], eta=eta)
    b = torch.zeros_like(eta) if b is None else _float("b", b)
    check_same_dtype(eta=eta, b=b)
    eta_t = eta @ A.T + b
    theta_t = torch.linalg.solve(A.T, theta.unsqueeze(-1)).squeeze(-1)  # A^{-T} theta
    return eta_t, theta_t


def spectral_map(q, eigenvalues) -> torch.Tensor:
    """A = diag(lam)^{-1/2} G_eta(q)^{1/2}: the Hessian of L in the chart A eta + b becomes
    diag(lam) at the optimum (and that of V in the dual chart diag(1/lam))."""
    q = _simplex("q", q, ndim=1)
    lam = _float("eigenvalues", eigenvalues).to(q.dtype)
    if tuple(lam.shape) != (q.shape[-1] - 1,) or bool((lam <= 0).any()):
        raise ValueError(f"eigenvalues: expected {q.shape[-1] - 1} positive numbers, "
                         f"got {lam.tolist()}")
    evals, evecs = torch.linalg.eigh(fisher_eta(q[:-1]))
    root = (evecs * evals.sqrt()) @ evecs.T
    return root / lam.sqrt().unsqueeze(-1)


def whitening_map(q, c: float) -> torch.Tensor:
    """A = c^{-1/2} G_eta(q)^{1/2}: GD rates become 2c (eta chart) and 2/c (theta chart)."""
    q = _simplex("q", q, ndim=1)
    check_positive("c", c)
    return spectral_map(q, torch.full((q.shape[-1] - 1,), float(c), dtype=q.dtype))


def linearised_flow_matrix(method: str, q, A=None) -> torch.Tensor:
    """Matrix J with error dynamics e' = -J e at the optimum, in the chart the method runs in."""
    _check_method(method)
    q = _simplex("q", q, ndim=1)
    n = q.shape[-1] - 1
    A = _check_matrix_a(A, n, q=q)
    eye = torch.eye(n, dtype=q.dtype, device=q.device)
    if method == "ngd":
        return eye
    precond = eye if A is None else A.T @ A
    if method == "gd_eta":
        return torch.linalg.solve(precond, fisher_eta(q[:-1]))
    return precond @ fisher_theta(theta_from_p(q))


def asymptotic_rate(method: str, q, A=None) -> float:
    """Predicted KL decay rate 2 lambda_min of the linearised flow (KL ~ C exp(-rate t))."""
    J = linearised_flow_matrix(method, q, A)
    return 2 * float(torch.linalg.eigvals(J).real.min())


def stability_limit(method: str, q) -> float:
    """Largest stable step 2 / lambda_max(Q) of the linearised iteration e <- (I - alpha Q) e."""
    J = linearised_flow_matrix(method, q)
    return 2 / float(torch.linalg.eigvalsh(J).max())


def best_contraction(q) -> float:
    """(kappa - 1)/(kappa + 1), the per-step contraction of GD at alpha* = 2/(l_min + l_max)."""
    q = _simplex("q", q, ndim=1)
    evals = torch.linalg.eigvalsh(fisher_theta(theta_from_p(q)))
    kappa = float(evals.max() / evals.min())
    return (kappa - 1) / (kappa + 1)


def ngd_closed_form(q, p0, t) -> torch.Tensor:
    """NGD flow solution p(t) = q + exp(-t) (p0 - q), the mixture geodesic; shape t + p0."""
    q = _simplex("q", q, ndim=1)
    p0 = _simplex("p0", p0)
    check_same_dtype(q=q, p0=p0)
    t = _float("t", t).to(p0.dtype)
    decay = torch.exp(-t).reshape(tuple(t.shape) + (1,) * p0.ndim)
    return q + decay * (p0 - q)


# --------------------------------------------------------------------------- continuous time
@dataclass(frozen=True)
class FlowResult:
    """A batch of flow trajectories: times ``t`` [T], points ``p`` [T, B, n+1], ``kl`` [T, B]."""

    method: str
    t: torch.Tensor
    p: torch.Tensor
    kl: torch.Tensor
    nfev: int


def _rhs_and_jac(method: str, q: np.ndarray, precond: np.ndarray | None, batch: int):
    """RHS and block-diagonal Jacobian of the flow, in displacement coordinates y (numpy)."""
    n = q.size - 1
    P = np.eye(n) if precond is None else precond
    P_inv = np.linalg.inv(P)

    if method == "ngd":
        def rhs(_t, y_flat):
            return -y_flat

        def jac(_t, _y):
            return -np.eye(batch * n)
    elif method == "gd_eta":
        def rhs(_t, y_flat):
            y = y_flat.reshape(batch, n)
            eta = q[:-1] + y
            last = q[-1] - y.sum(1, keepdims=True)
            grad = y / eta + y.sum(1, keepdims=True) / last  # = G_eta(eta)(eta - eta_q), stable
            return -(grad @ P_inv.T).reshape(-1)

        def jac(_t, y_flat):
            y = y_flat.reshape(batch, n)
            eta = q[:-1] + y
            last = q[-1] - y.sum(1)
            blocks = [-(P_inv @ (np.diag(q[:-1] / eta[k] ** 2) + q[-1] / last[k] ** 2))
                      for k in range(batch)]
            return block_diag(*blocks)
    else:
        def _eta_minus_etaq(y):
            yy = np.concatenate([y, np.zeros((batch, 1))], axis=1)
            s = np.expm1(yy) @ q
            x = np.expm1(yy - np.log1p(s)[:, None])  # p/q - 1
            return q[:-1] * x[:, :-1], q[:-1] * (1 + x[:, :-1])

        def rhs(_t, y_flat):
            diff, _ = _eta_minus_etaq(y_flat.reshape(batch, n))
            return -(diff @ P.T).reshape(-1)

        def jac(_t, y_flat):
            _, eta = _eta_minus_etaq(y_flat.reshape(batch, n))
            blocks = [-(P @ (np.diag(e) - np.outer(e, e))) for e in eta]
            return block_diag(*blocks)
    return rhs, jac


def integrate_flow(method: str, q, p0, t, A=None, rtol: float = 1e-11,
                   atol: float = 1e-30) -> FlowResult:
    """Integrate one of the three gradient flows from a batch of starts ``p0`` [B, n+1].

    Uses scipy's LSODA (switches to a stiff BDF method when needed) with the exact Jacobian,
    in displacement coordinates ``y = eta - eta_q`` (GD-eta, NGD) or ``y = theta - theta_q``
    (GD-theta), so that the KL stays accurate far below 1e-14 (with the default ``atol`` down to
    the window of :func:`fit_rate`). The continuous flows never leave the open simplex (the loss
    is a barrier at its boundary). Runs on the CPU in float64.
    """
    _check_method(method)
    q = _simplex("q", q, ndim=1).to(torch.float64).cpu()
    p0 = _simplex("p0", p0, ndim=(1, 2)).to(torch.float64).cpu()
    p0 = p0.unsqueeze(0) if p0.ndim == 1 else p0
    if p0.shape[-1] != q.shape[-1]:
        raise ValueError(f"p0: expected shape (B, {q.shape[-1]}), got {tuple(p0.shape)}")
    t = _check_time_grid(t, rtol, atol)
    n = q.shape[-1] - 1
    A = _check_matrix_a(A, n)
    precond = None if A is None else (A.T @ A).to(torch.float64).cpu().numpy()
    batch = p0.shape[0]
    theta_q = torch.log(q[:-1]) - torch.log(q[-1])
    if method == "gd_theta":
        y0 = (torch.log(p0[:, :-1]) - torch.log(p0[:, -1:]) - theta_q).numpy()
    else:
        y0 = (p0[:, :-1] - q[:-1]).numpy()
    rhs, jac = _rhs_and_jac(method, q.numpy(), precond, batch)
    t_np = t.numpy()
    sol = solve_ivp(rhs, (0.0, float(t_np[-1])), y0.reshape(-1), method="LSODA", t_eval=t_np,
                    jac=jac, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"integrate_flow({method!r}): {sol.message}")
    y = torch.from_numpy(sol.y.T.copy()).reshape(len(t_np), batch, n)
    if method == "gd_theta":
        kl = _kl_theta_disp(q, y)
        p = torch.exp(_log_p_theta(theta_q + y))
    else:
        kl = _kl_eta_disp(q, y)
        p = torch.cat([q[:-1] + y, q[-1:] - y.sum(-1, keepdim=True)], dim=-1)
    return FlowResult(method=method, t=t, p=p, kl=kl, nfev=int(sol.nfev))


def fit_rate(t, kl, window: tuple[float, float] | None = None) -> torch.Tensor:
    """Minus the least-squares slope of log KL against t, using only points with KL in ``window``.

    ``kl`` has shape [T] or [T, B]; returns one rate per column. With ``window=None`` (the
    default) each column is fitted on the deepest :data:`TAIL_DECADES` decades it reaches, above
    :data:`TAIL_FLOOR`: the asymptotic rate is a tail property, and a shallow fixed window such
    as (1e-14, 1e-6) misreads it by up to tens of per cent when the two slowest modes have close
    rates (the fit then reads a mixture of both). For flows, integrate to about
    ``t = 100 / rate`` so that the tail reaches the floor. Raises if a column has fewer than
    3 points in its window.
    """
    t = _float("t", t).to(torch.float64).cpu()
    check_ndim("t", t, 1)
    kl = as_tensor("kl", kl)
    kl = kl.to(torch.float64).cpu()
    if bool(torch.isnan(kl).any()):
        raise ValueError("kl: contains NaN")
    if window is not None:
        if not isinstance(window, (tuple, list)) or len(window) != 2:
            raise ValueError(f"window: expected a pair (lo, hi) or None, got {window!r}")
        check_positive("window[0]", window[0])
        check_positive("window[1]", window[1])
        if not window[0] < window[1]:
            raise ValueError(f"window: expected lo < hi, got {window}")
    squeeze = kl.ndim == 1
    kl2 = kl.unsqueeze(-1) if squeeze else kl
    if kl2.ndim != 2 or kl2.shape[0] != t.shape[0]:
        raise ValueError(f"kl: expected shape ({t.shape[0]},) or ({t.shape[0]}, B), "
                         f"got {tuple(kl.shape)}")
    if window is None:
        positive = torch.where(kl2 > 0, kl2, math.inf)
        lo = positive.amin(0).clamp_min(TAIL_FLOOR)
        hi = lo * 10.0**TAIL_DECADES
    else:
        lo = torch.full(kl2.shape[1:], float(window[0]), dtype=torch.float64)
        hi = torch.full(kl2.shape[1:], float(window[1]), dtype=torch.float64)
    mask = (kl2 >= lo) & (kl2 <= hi)
    counts = mask.sum(0)
    if bool((counts < 3).any()):
        raise ValueError(f"kl: fewer than 3 points inside the window "
                         f"{window if window is not None else 'of the deepest decades'}; "
                         f"extend the horizon or refine the time grid")
    weights = mask.to(torch.float64)
    log_kl = torch.where(mask, torch.log(kl2.clamp_min(1e-300)), 0.0)
    t_mean = (weights * t[:, None]).sum(0) / counts
    y_mean = log_kl.sum(0) / counts
    tc = (t[:, None] - t_mean) * weights
    rates = -(tc * (log_kl - y_mean)).sum(0) / (tc * tc).sum(0)
    return rates[0] if squeeze else rates


# --------------------------------------------------------------------------- discrete time
def project_to_simplex(eta, tol: float = 1e-3) -> torch.Tensor:
    """The authors' ``project_simplex``: clip entries below ``tol`` to ``tol``; if the sum exceeds
    ``1 - tol``, divide by ``sum_i (eta_i + tol)`` (leaves ``p_{n+1} > 0``). Batched."""
    eta = _float("eta", eta)
    if eta.ndim < 1:
        raise ValueError(f"eta: expected coordinates on the last axis, got shape "
                         f"{tuple(eta.shape)}")
    check_positive("tol", tol)
    if tol * eta.shape[-1] >= 1:
        raise ValueError(f"tol: n * tol must be < 1, got n={eta.shape[-1]}, tol={tol}")
    return _project(eta, tol)


def discrete_step(method: str, q, x, lr, project: bool = True, tol: float = 1e-3
                  ) -> torch.Tensor:
    """One iteration x <- x - lr * direction in the method's chart (eta for GD-eta/NGD, theta for
    GD-theta). ``lr`` (>= 0) broadcasts against ``x`` without its last axis. GD-eta and NGD apply
    :func:`project_to_simplex` when ``project`` (the authors' treatment of leaving the simplex)."""
    _check_method(method)
    q = _simplex("q", q, ndim=1)
    x = _check_coords("x", x, q)
    if method != "gd_theta":
        x = _check_eta("x", x)
    lr_t = _check_lr(lr, x.dtype, x.device).unsqueeze(-1)
    check_positive("tol", tol)
    new = x - lr_t * _direction(method, q, x)
    return _project(new, tol) if project and method != "gd_theta" else new


def _iterate(method: str, q: torch.Tensor, x: torch.Tensor, lr: torch.Tensor, num_iters: int,
             project: bool, tol: float, batch: int | None,
             generator: torch.Generator | None) -> torch.Tensor:
    """Unchecked loop: KL(q || p_k) for k = 0..num_iters, shape [K+1, *x.shape[:-1]]."""
    in_eta = method != "gd_theta"
    runs = tuple(x.shape[:-1])

    def kl_of(z: torch.Tensor) -> torch.Tensor:
        return _kl(q, torch.log(_p_eta(z)) if in_eta else _log_p_theta(z))

    history = [kl_of(x)]
    alive = torch.ones(runs, dtype=torch.bool, device=x.device) if in_eta and not project \
        else None
    for _ in range(num_iters):
        target = q if batch is None else _histograms(q, runs, batch, generator)
        if alive is not None:  # park runs that left the simplex at a harmless point
            x = torch.where(alive.unsqueeze(-1), x, q[:-1])
        x = x - lr * _direction(method, target, x)
        if in_eta and project:
            x = _project(x, tol)
        kl = kl_of(x)
        if alive is not None:
            alive = alive & (x >= 0).all(-1) & (x.sum(-1) <= 1)
            kl = torch.where(alive, kl, math.inf)
        history.append(kl)
    return torch.stack(history)


def _check_iteration_args(method, q, p0, lr, num_iters, tol, batch, generator):
    _check_method(method)
    q = _simplex("q", q, ndim=1)
    p0 = _simplex("p0", p0)
    check_same_dtype(q=q, p0=p0)
    if p0.shape[-1] != q.shape[-1]:
        raise ValueError(f"p0: expected {q.shape[-1]} outcomes on the last axis, "
                         f"got shape {tuple(p0.shape)}")
    check_positive_int("num_iters", num_iters)
    check_positive("tol", tol)
    if tol * (q.shape[-1] - 1) >= 1:
        raise ValueError(f"tol: n * tol must be < 1, got tol={tol}")
    if batch is not None:
        check_positive_int("batch", batch)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    lr_t = _check_lr(lr, p0.dtype, p0.device)
    return q, p0, lr_t


def run_iterations(method: str, q, p0, lr, num_iters: int, project: bool = True,
                   tol: float = 1e-3, batch: int | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Run ``num_iters`` iterations from starts ``p0`` [..., n+1]; return KL(q || p_k), [K+1, ...].

    ``lr`` (>= 0) broadcasts against ``p0`` without its last axis (e.g. lr [L, 1] and p0
    [B, n+1] sweep L learning rates over B starts in one tensor program). GD-eta and NGD project
    back into the simplex when ``project``; without projection, a run that leaves the closed
    simplex gets ``inf`` KL from then on (a point on its boundary has infinite KL but may come
    back). With ``batch=B`` each step uses the gradient of the loss on a fresh mini-batch: the
    histogram of ``B`` draws from ``q`` (``torch.multinomial``, independent per run and step);
    the KL is always measured against ``q``.
    """
    q, p0, lr_t = _check_iteration_args(method, q, p0, lr, num_iters, tol, batch, generator)
    runs = torch.broadcast_shapes(tuple(lr_t.shape), tuple(p0.shape[:-1]))
    p0 = p0.expand(runs + (p0.shape[-1],))
    x = _start_coords(method, p0)
    lr_b = lr_t.expand(runs).unsqueeze(-1)
    return _iterate(method, q, x, lr_b, num_iters, project, tol, batch, generator)


def rise_time(excess, threshold: float) -> torch.Tensor:
    """First iteration k from which ``excess`` [K+1, ...] stays below ``threshold``.

    Iterations are counted from 0 (the start), so a run below the threshold after one update
    has rise time 1; the authors' MATLAB code counts from 1 (add 1 to compare). Runs whose last
    iterate is not below the threshold get K+1 (did not converge). NaN counts as not below.
    """
    excess = as_tensor("excess", excess)
    if excess.ndim < 1 or excess.shape[0] < 1:
        raise ValueError(f"excess: expected shape [K+1, ...], got {tuple(excess.shape)}")
    check_positive("threshold", threshold)
    below = torch.nan_to_num(excess.to(torch.float64), nan=math.inf) < threshold
    # stays below from k on: reverse cumulative AND
    stays = torch.flip(torch.cummin(torch.flip(below.to(torch.int8), [0]), dim=0).values, [0])
    num = excess.shape[0]
    return torch.where(stays.bool().any(0), stays.to(torch.int64).argmax(0),
                       torch.full(stays.shape[1:], num, dtype=torch.int64, device=excess.device))


def rise_time_sweep(method: str, q, starts, lrs, num_iters: int = 99,
                    rel_threshold: float = 0.05, batch: int | None = None,
                    project: bool = True, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """The authors' learning-rate sweep: worst-case rise time over ``starts`` for each lr.

    ``q`` is the (empirical) target, ``starts`` [S, n+1], ``lrs`` [L] (>= 0). For every lr and
    start it runs ``num_iters`` updates (all L x S runs in one batched tensor program) and
    returns, per lr, the largest rise time (:func:`rise_time`, counted from 0) of the excess
    loss ``KL(q || p_k)`` below ``rel_threshold * H(q)``, i.e. of the cross-entropy below
    ``(1 + rel_threshold)`` times its minimum ``H(q)``. ``num_iters + 1`` means that some start
    did not converge. ``batch`` switches to mini-batch gradients (see :func:`run_iterations`).
    """
    q, starts, lr_t = _check_iteration_args(method, q, starts, lrs, num_iters, 1e-3, batch,
                                            generator)
    check_ndim("starts", starts, 2)
    check_ndim("lrs", lr_t, 1)
    check_positive("rel_threshold", rel_threshold)
    entropy = float(-(q * q.log()).sum())
    x = _start_coords(method, starts)
    runs = (lr_t.shape[0], starts.shape[0])
    x = x.unsqueeze(0).expand(runs + (x.shape[-1],)).clone()
    lr_b = lr_t[:, None, None].expand(runs + (1,))
    excess = _iterate(method, q, x, lr_b, num_iters, project, 1e-3, batch, generator)
    return rise_time(excess, rel_threshold * entropy).amax(-1)


@dataclass(frozen=True)
class SweepSummary:
    """Best worst-case rise time of a sweep, where it is reached, and the converging lr range."""

    best: int
    lr_best: float
    lr_min: float
    lr_max: float
    converging: int


def summarise_sweep(lrs, worst, num_iters: int = 99) -> SweepSummary:
    """Summarise :func:`rise_time_sweep`: best worst-case rise time, the smallest lr reaching it,
    and the smallest and largest lr for which every start converged (``nan`` if none did)."""
    lrs = _float("lrs", lrs).cpu()
    worst = as_tensor("worst", worst).cpu()
    check_ndim("lrs", lrs, 1)
    if tuple(worst.shape) != tuple(lrs.shape):
        raise ValueError(f"worst: expected shape {tuple(lrs.shape)}, got {tuple(worst.shape)}")
    check_positive_int("num_iters", num_iters)
    ok = worst <= num_iters
    best = int(worst.min())
    lr_best = float(lrs[worst == best].min())
    good = lrs[ok]
    lo, hi = (float(good.min()), float(good.max())) if good.numel() else (math.nan, math.nan)
    return SweepSummary(best, lr_best, lo, hi, int(ok.sum()))


def sweep_instance(n: int = 10, samples: int = 1000, num_starts: int = 100, seed: int = 18,
                   dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The authors' rise-time instance: a target ``q`` (uniform entries, normalised), the
    empirical ``q_hat`` of ``samples`` draws from it, and ``num_starts`` random starts, all from
    one generator seeded with ``seed`` (the same instance in the chapter and the benchmark)."""
    check_positive_int("n", n)
    check_positive_int("samples", samples)
    check_positive_int("num_starts", num_starts)
    check_positive_int("seed", seed, minimum=0)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n + 1, generator=gen, dtype=torch.float64)
    q = u / u.sum()
    draws = torch.multinomial(q, samples, replacement=True, generator=gen)
    q_hat = torch.bincount(draws, minlength=n + 1).to(torch.float64) / samples
    if bool((q_hat == 0).any()):
        raise ValueError(f"samples: {samples} draws miss an outcome; use more samples")
    u0 = torch.rand(num_starts, n + 1, generator=gen, dtype=torch.float64)
    starts = u0 / u0.sum(-1, keepdim=True)
    return tuple(x.to(dtype=dtype, device=device) for x in (q, q_hat, starts))


def rise_time_table(q_hat, starts, num_lrs: int = 100, num_iters: int = 99,
                    batch: int | None = None, generator: torch.Generator | None = None
                    ) -> dict[str, tuple[torch.Tensor, torch.Tensor, SweepSummary]]:
    """The authors' sweep for the three methods on their grids ``linspace(0, top, num_lrs)``:
    ``{method: (lrs, worst-case rise times, summary)}`` (see :func:`rise_time_sweep`)."""
    q_hat = _simplex("q_hat", q_hat, ndim=1)
    check_positive_int("num_lrs", num_lrs, minimum=2)
    out = {}
    for method in METHODS:
        lrs = torch.linspace(0, AUTHORS_LR_TOPS[method], num_lrs, dtype=q_hat.dtype,
                             device=q_hat.device)
        worst = rise_time_sweep(method, q_hat, starts, lrs, num_iters, batch=batch,
                                generator=generator)
        out[method] = (lrs, worst, summarise_sweep(lrs, worst, num_iters))
    return out


# --------------------------------------------------------------------------- noise
def noise_floor(method: str, q, lr: float, batch: int) -> float:
    """Small-noise stationary excess KL of mini-batch iterations near the optimum [R].

    Linearised, ``e_{k+1} = (I - lr Q) e_k + lr xi_k`` with the batch noise ``xi``. For GD the
    noise covariance in the method's own chart is ``Q / B`` and the KL's Hessian is ``Q``; for
    NGD (``Q = I``) they are ``G_theta / B`` and ``G_eta``, inverse to each other. Either way the
    excess KL is ``(lr / 2B) sum_i lambda_i / (2 - lr lambda_i)`` over the eigenvalues of ``Q``:
    ``lr n / (2 (2 - lr) B)`` for NGD, whatever ``q``.
    """
    J = linearised_flow_matrix(method, q)
    check_positive("lr", lr)
    check_positive_int("batch", batch)
    lam = torch.linalg.eigvalsh(J)
    if lr * float(lam.max()) >= 2:
        raise ValueError(f"lr: expected < 2/lambda_max = {2 / float(lam.max()):.4g} (stable), "
                         f"got {lr}")
    return float((lr / (2 * batch)) * (lam / (2 - lr * lam)).sum())
