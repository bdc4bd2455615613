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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import block_diag

from gradynamics.softmax import softmax, softmax_jacobian
from gradynamics.validation import as_tensor, check_finite, check_positive, check_positive_int

__all__ = [
    "METHODS",
    "FlowResult",
    "affine_dual_maps",
    "asymptotic_rate",
    "best_contraction",
    "check_simplex_point",
    "discrete_step",
    "eta_from_p",
    "eta_from_theta",
    "fisher_eta",
    "fisher_theta",
    "fit_rate",
    "flow_velocity",
    "grad_loss_eta",
    "grad_loss_theta",
    "integrate_flow",
    "kl_divergence",
    "kl_from_eta_displacement",
    "kl_from_theta_displacement",
    "linearised_flow_matrix",
    "log_partition",
    "loss_eta",
    "loss_theta",
    "minibatch_ngd",
    "natural_gradient",
    "ngd_closed_form",
    "ngd_noise_floor",
    "p_from_eta",
    "p_from_theta",
    "project_to_simplex",
    "rise_time",
    "spectral_map",
    "run_iterations",
    "stability_limit",
    "theta_from_eta",
    "theta_from_p",
    "whitening_map",
]

#: The three methods: gradient descent in eta, natural gradient descent, gradient descent in theta.
METHODS: tuple[str, ...] = ("gd_eta", "ngd", "gd_theta")


# --------------------------------------------------------------------------- validation
def _float(name: str, value) -> torch.Tensor:
    out = as_tensor(name, value)
    if not out.is_floating_point():
        out = out.to(torch.float64)
    check_finite(name, out)
    return out


def check_simplex_point(name: str, p, atol: float = 1e-9) -> torch.Tensor:
    """Return ``p`` as a float tensor; raise unless its last axis is a strictly positive
    probability vector (a point of the open simplex)."""
    p = _float(name, p)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"{name}: expected probability vectors with at least 2 outcomes on the "
                         f"last axis, got shape {tuple(p.shape)}")
    values = p.detach()
    if bool((values <= 0).any()):
        raise ValueError(f"{name}: expected strictly positive probabilities (the open simplex), "
                         f"min is {float(values.min())}")
    worst = float((values.sum(-1) - 1).abs().max())
    if worst > atol:
        raise ValueError(f"{name}: probabilities must sum to 1 along the last axis "
                         f"(worst deviation {worst:.3g})")
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


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def _check_matrix_a(A, n: int) -> torch.Tensor | None:
    if A is None:
        return None
    A = _float("A", A)
    if tuple(A.shape) != (n, n):
        raise ValueError(f"A: expected a square ({n}, {n}) matrix, got shape {tuple(A.shape)}")
    svals = torch.linalg.svdvals(A.to(torch.float64))
    if float(svals.min()) <= 1e-12 * max(float(svals.max()), 1e-300):
        raise ValueError("A: is singular (or numerically singular); the reparameterisation "
                         "must be invertible")
    return A


# --------------------------------------------------------------------------- charts
def eta_from_p(p) -> torch.Tensor:
    """Mixture coordinates: the first ``n`` probabilities."""
    return check_simplex_point("p", p)[..., :-1]


def p_from_eta(eta) -> torch.Tensor:
    """Probabilities ``(eta, 1 - sum eta)`` from mixture coordinates."""
    eta = _check_eta("eta", eta)
    return torch.cat([eta, 1 - eta.sum(-1, keepdim=True)], dim=-1)


def theta_from_p(p) -> torch.Tensor:
    """Exponential coordinates ``log(p_i / p_{n+1})``."""
    p = check_simplex_point("p", p)
    return torch.log(p[..., :-1]) - torch.log(p[..., -1:])


def p_from_theta(theta) -> torch.Tensor:
    """Probabilities ``softmax(theta, 0)`` from exponential coordinates."""
    theta = _float("theta", theta)
    return softmax(torch.cat([theta, torch.zeros_like(theta[..., :1])], dim=-1))


def eta_from_theta(theta) -> torch.Tensor:
    """Mixture coordinates of the point with exponential coordinates ``theta`` (= grad psi)."""
    return p_from_theta(theta)[..., :-1]


def theta_from_eta(eta) -> torch.Tensor:
    """Exponential coordinates of the point with mixture coordinates ``eta``."""
    eta = _check_eta("eta", eta)
    return torch.log(eta) - torch.log(1 - eta.sum(-1, keepdim=True))


def log_partition(theta) -> torch.Tensor:
    """psi(theta) = log(1 + sum_j exp(theta_j))."""
    theta = _float("theta", theta)
    return torch.logsumexp(torch.cat([theta, torch.zeros_like(theta[..., :1])], dim=-1), dim=-1)


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
    q = check_simplex_point("q", q)
    p = check_simplex_point("p", p)
    return (q * (torch.log(q) - torch.log(p))).sum(-1)


def kl_from_eta_displacement(q, d_eta) -> torch.Tensor:
    """KL(q || p) for ``eta = eta_q + d_eta``, accurate down to KL ~ 1e-30 (no cancellation).

    Uses ``KL = sum_i q_i (x_i - log1p(x_i))`` with ``x = (p - q)/q``, valid because
    ``sum_i (p_i - q_i) = 0``; every term is non-negative.
    """
    q = check_simplex_point("q", q)
    d = _float("d_eta", d_eta)
    if d.shape[-1] != q.shape[-1] - 1:
        raise ValueError(f"d_eta: expected {q.shape[-1] - 1} coordinates on the last axis, "
                         f"got shape {tuple(d.shape)}")
    full = torch.cat([d, -d.sum(-1, keepdim=True)], dim=-1)
    x = full / q
    if bool((x <= -1).any()):
        raise ValueError("d_eta: the displaced point leaves the open simplex")
    return (q * _x_minus_log1p(x)).sum(-1)


def kl_from_theta_displacement(q, d_theta) -> torch.Tensor:
    """KL(q || p) for ``theta = theta_q + d_theta``, accurate down to KL ~ 1e-30.

    KL is the Bregman divergence ``psi(theta) - psi(theta_q) - eta_q . d_theta``, computed as
    ``sum_i q_i (expm1(y_i) - y_i) - (s - log1p(s))`` with ``y = (d_theta, 0)`` and
    ``s = sum_i q_i expm1(y_i)``.
    """
    q = check_simplex_point("q", q)
    d = _float("d_theta", d_theta)
    if d.shape[-1] != q.shape[-1] - 1:
        raise ValueError(f"d_theta: expected {q.shape[-1] - 1} coordinates on the last axis, "
                         f"got shape {tuple(d.shape)}")
    y = torch.cat([d, torch.zeros_like(d[..., :1])], dim=-1)
    s = (q * torch.expm1(y)).sum(-1)
    return (q * _expm1_minus_x(y)).sum(-1) - _x_minus_log1p(s)


def loss_eta(eta, q) -> torch.Tensor:
    """L(eta) = D_KL(q || p(eta))."""
    return kl_divergence(q, p_from_eta(eta))


def loss_theta(theta, q) -> torch.Tensor:
    """V(theta) = D_KL(q || p(theta)) = psi(theta) - psi(theta_q) - eta_q . (theta - theta_q)."""
    q = check_simplex_point("q", q)
    theta = _float("theta", theta)
    log_q = torch.log(q)
    log_p = torch.cat([theta, torch.zeros_like(theta[..., :1])], dim=-1) \
        - log_partition(theta).unsqueeze(-1)
    return (q * (log_q - log_p)).sum(-1)


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


def grad_loss_eta(eta, q) -> torch.Tensor:
    """grad_eta L = -q_{1:n}/eta + q_{n+1}/p_{n+1} (the authors' formula)."""
    eta = _check_eta("eta", eta)
    q = check_simplex_point("q", q)
    last = 1 - eta.sum(-1, keepdim=True)
    return -q[..., :-1] / eta + q[..., -1:] / last


def grad_loss_theta(theta, q) -> torch.Tensor:
    """grad_theta V = eta(theta) - eta_q."""
    q = check_simplex_point("q", q)
    return eta_from_theta(theta) - q[..., :-1]


def natural_gradient(eta, q) -> torch.Tensor:
    """G_eta^{-1} grad_eta L = eta - eta_q (exact, global)."""
    eta = _check_eta("eta", eta)
    q = check_simplex_point("q", q)
    return eta - q[..., :-1]


def affine_dual_maps(eta, theta, A, b=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The dual affine pair ``(A eta + b, A^{-T} theta)`` (batched over leading axes)."""
    eta = _float("eta", eta)
    theta = _float("theta", theta)
    A = _check_matrix_a(A, eta.shape[-1])
    b = torch.zeros_like(eta) if b is None else _float("b", b)
    eta_t = eta @ A.T + b
    theta_t = torch.linalg.solve(A.T, theta.unsqueeze(-1)).squeeze(-1)  # A^{-T} theta
    return eta_t, theta_t


def spectral_map(q, eigenvalues) -> torch.Tensor:
    """A = diag(lam)^{-1/2} G_eta(q)^{1/2}: the Hessian of L in the chart A eta + b becomes
    diag(lam) at the optimum (and that of V in the dual chart diag(1/lam))."""
    q = check_simplex_point("q", q)
    lam = _float("eigenvalues", eigenvalues).to(q.dtype)
    if tuple(lam.shape) != (q.shape[-1] - 1,) or bool((lam <= 0).any()):
        raise ValueError(f"eigenvalues: expected {q.shape[-1] - 1} positive numbers, "
                         f"got {lam.tolist()}")
    evals, evecs = torch.linalg.eigh(fisher_eta(q[..., :-1]))
    root = (evecs * evals.sqrt()) @ evecs.T
    return root / lam.sqrt().unsqueeze(-1)


def whitening_map(q, c: float) -> torch.Tensor:
    """A = c^{-1/2} G_eta(q)^{1/2}: GD rates become 2c (eta chart) and 2/c (theta chart)."""
    q = check_simplex_point("q", q)
    check_positive("c", c)
    return spectral_map(q, torch.full((q.shape[-1] - 1,), float(c), dtype=q.dtype))


def linearised_flow_matrix(method: str, q, A=None) -> torch.Tensor:
    """Matrix J with error dynamics e' = -J e at the optimum, in the chart the method runs in."""
    _check_method(method)
    q = check_simplex_point("q", q)
    n = q.shape[-1] - 1
    A = _check_matrix_a(A, n)
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
    q = check_simplex_point("q", q)
    evals = torch.linalg.eigvalsh(fisher_theta(theta_from_p(q)))
    kappa = float(evals.max() / evals.min())
    return (kappa - 1) / (kappa + 1)


def ngd_closed_form(p0, q, t) -> torch.Tensor:
    """NGD flow solution p(t) = q + exp(-t) (p0 - q), the mixture geodesic; shape t + p0."""
    p0 = check_simplex_point("p0", p0)
    q = check_simplex_point("q", q)
    t = _float("t", t).to(p0.dtype)
    decay = torch.exp(-t).reshape(tuple(t.shape) + (1,) * p0.ndim)
    return q + decay * (p0 - q)


# --------------------------------------------------------------------------- continuous time
def flow_velocity(method: str, x, q, A=None) -> torch.Tensor:
    """Right-hand side of the flow in the method's chart (eta for GD-eta/NGD, theta for GD-theta).

    GD-eta: -(A^T A)^{-1} grad_eta L;  NGD: -(eta - eta_q);  GD-theta: -(A^T A) grad_theta V.
    Batched over the leading axes of ``x``.
    """
    _check_method(method)
    q = check_simplex_point("q", q)
    x = _float("x", x)
    A = _check_matrix_a(A, q.shape[-1] - 1)
    if method == "ngd":
        return -natural_gradient(x, q)
    if method == "gd_eta":
        grad = grad_loss_eta(x, q)
        if A is None:
            return -grad
        return -torch.linalg.solve(A.T @ A, grad.unsqueeze(-1)).squeeze(-1)
    grad = grad_loss_theta(x, q)
    return -grad if A is None else -grad @ (A.T @ A).T

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
    eye = np.eye(n)
    P = eye if precond is None else precond
    P_inv = np.linalg.inv(P)

    def eta_rhs(y_flat):
        y = y_flat.reshape(batch, n)
        eta = q[:-1] + y
        last = q[-1] - y.sum(1, keepdims=True)
        grad = y / eta + y.sum(1, keepdims=True) / last  # = G_eta(eta) (eta - eta_q), stable
        return grad, eta, last

    if method == "ngd":
        def rhs(_t, y_flat):
            return -y_flat

        def jac(_t, _y):
            return -np.eye(batch * n)
    elif method == "gd_eta":
        def rhs(_t, y_flat):
            grad, _, _ = eta_rhs(y_flat)
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
            em1 = np.expm1(yy)
            s = em1 @ q
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


def integrate_flow(method: str, p0, q, t, A=None, rtol: float = 1e-11,
                   atol: float = 1e-15) -> FlowResult:
    """Integrate one of the three gradient flows from a batch of starts ``p0`` [B, n+1].

    Uses scipy's LSODA (switches to a stiff BDF method when needed) with the exact Jacobian,
    in displacement coordinates ``y = eta - eta_q`` (GD-eta, NGD) or ``y = theta - theta_q``
    (GD-theta), so that the KL stays accurate far below 1e-14. The continuous flows never leave
    the open simplex (the loss is a barrier at its boundary). Runs on the CPU in float64.
    """
    _check_method(method)
    q = check_simplex_point("q", q).to(torch.float64).cpu()
    p0 = check_simplex_point("p0", p0).to(torch.float64).cpu()
    if p0.ndim == 1:
        p0 = p0.unsqueeze(0)
    if p0.ndim != 2 or p0.shape[-1] != q.shape[-1]:
        raise ValueError(f"p0: expected shape (B, {q.shape[-1]}), got {tuple(p0.shape)}")
    t = _float("t", t).to(torch.float64).cpu()
    if t.ndim != 1 or t.numel() < 2 or bool((t.diff() <= 0).any()) or float(t[0]) != 0.0:
        raise ValueError("t: expected an increasing 1-D grid of times starting at 0")
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    n = q.shape[-1] - 1
    A = _check_matrix_a(A, n)
    precond = None if A is None else (A.T @ A).to(torch.float64).cpu().numpy()
    batch = p0.shape[0]
    if method == "gd_theta":
        y0 = (theta_from_p(p0) - theta_from_p(q)).numpy()
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
        kl = kl_from_theta_displacement(q, y)
        p = p_from_theta(theta_from_p(q) + y)
    else:
        kl = kl_from_eta_displacement(q, y)
        p = torch.cat([q[:-1] + y, q[-1:] - y.sum(-1, keepdim=True)], dim=-1)
    return FlowResult(method=method, t=t, p=p, kl=kl, nfev=int(sol.nfev))


def fit_rate(t, kl, window: tuple[float, float] = (1e-14, 1e-6)) -> torch.Tensor:
    """Minus the least-squares slope of log KL against t, using only points with KL in ``window``.

    ``kl`` has shape [T] or [T, B]; returns one rate per column. Raises if a column has fewer
    than 3 points in the window.
    """
    t = _float("t", t).to(torch.float64).cpu()
    kl = _float("kl", kl).to(torch.float64).cpu()
    lo, hi = window
    check_positive("window[0]", lo)
    check_positive("window[1]", hi)
    if not lo < hi:
        raise ValueError(f"window: expected lo < hi, got {window}")
    squeeze = kl.ndim == 1
    kl2 = kl.unsqueeze(-1) if squeeze else kl
    if kl2.ndim != 2 or kl2.shape[0] != t.shape[0]:
        raise ValueError(f"kl: expected shape ({t.shape[0]},) or ({t.shape[0]}, B), "
                         f"got {tuple(kl.shape)}")
    rates = []
    for col in kl2.T:
        mask = (col >= lo) & (col <= hi)
        if int(mask.sum()) < 3:
            raise ValueError(f"kl: fewer than 3 points inside window {window}; extend the horizon")
        tt, yy = t[mask], torch.log(col[mask])
        tc = tt - tt.mean()
        rates.append(-float((tc * (yy - yy.mean())).sum() / (tc * tc).sum()))
    out = torch.tensor(rates, dtype=torch.float64)
    return out[0] if squeeze else out


# --------------------------------------------------------------------------- discrete time
def project_to_simplex(eta, tol: float = 1e-3) -> torch.Tensor:
    """The authors' ``project_simplex``: clip entries below ``tol`` to ``tol``; if the sum exceeds
    ``1 - tol``, divide by ``sum_i (eta_i + tol)`` (leaves ``p_{n+1} > 0``). Batched."""
    eta = _float("eta", eta)
    check_positive("tol", tol)
    if tol * eta.shape[-1] >= 1:
        raise ValueError(f"tol: n * tol must be < 1, got n={eta.shape[-1]}, tol={tol}")
    eta = eta.clamp_min(tol)
    total = eta.sum(-1, keepdim=True)
    rescaled = eta / (total + tol * eta.shape[-1])
    return torch.where(total > 1 - tol, rescaled, eta)


def _check_lr(lr, dtype, device) -> torch.Tensor:
    lr_t = _float("lr", lr).to(dtype=dtype, device=device)
    if bool((lr_t <= 0).any()):
        raise ValueError(f"lr: expected positive step sizes, min is {float(lr_t.min())}")
    return lr_t


def discrete_step(method: str, x, q, lr, project: bool = True, tol: float = 1e-3) -> torch.Tensor:
    """One iteration x <- x - lr * direction in the method's chart (eta for GD-eta/NGD, theta for
    GD-theta). ``lr`` broadcasts against ``x`` without its last axis. GD-eta and NGD apply
    :func:`project_to_simplex` when ``project`` (the authors' treatment of leaving the simplex)."""
    _check_method(method)
    q = check_simplex_point("q", q)
    x = _float("x", x)
    lr_t = _check_lr(lr, x.dtype, x.device).unsqueeze(-1)
    if method == "gd_theta":
        return x - lr_t * grad_loss_theta(x, q)
    if method == "ngd":
        new = x - lr_t * (x - q[..., :-1])
    else:
        new = x - lr_t * grad_loss_eta(x, q)
    return project_to_simplex(new, tol) if project else new


def run_iterations(method: str, p0, q, lr, num_iters: int, project: bool = True,
                   tol: float = 1e-3) -> torch.Tensor:
    """Run ``num_iters`` iterations from starts ``p0`` [..., n+1]; return KL(q || p_k), [K+1, ...].

    ``lr`` broadcasts against ``p0`` without its last axis (e.g. lr [L, 1] and p0 [B, n+1]
    sweep L learning rates over B starts). Without projection, iterates that leave the simplex
    give ``inf`` KL from then on.
    """
    _check_method(method)
    q = check_simplex_point("q", q)
    p0 = check_simplex_point("p0", p0)
    check_positive_int("num_iters", num_iters)
    lr_t = _check_lr(lr, p0.dtype, p0.device)
    shape = torch.broadcast_shapes(tuple(lr_t.shape), tuple(p0.shape[:-1]))
    p0 = p0.expand(shape + (p0.shape[-1],))
    x = theta_from_p(p0) if method == "gd_theta" else p0[..., :-1].clone()
    history = [kl_divergence(q, p0)]
    alive = torch.ones(shape, dtype=torch.bool, device=p0.device)
    for _ in range(num_iters):
        if method == "gd_theta":
            x = x - lr_t.unsqueeze(-1) * grad_loss_theta(x, q)
            history.append(kl_divergence(q, p_from_theta(x)))
            continue
        safe = torch.where(alive.unsqueeze(-1), x, q[..., :-1].expand_as(x))
        direction = safe - q[..., :-1] if method == "ngd" else grad_loss_eta(safe, q)
        x = safe - lr_t.unsqueeze(-1) * direction
        if project:
            x = project_to_simplex(x, tol)
        last = 1 - x.sum(-1)
        alive = alive & (x > 0).all(-1) & (last > 0)
        p = torch.cat([x, last.unsqueeze(-1)], dim=-1)
        p_safe = torch.where(alive.unsqueeze(-1), p, q.expand_as(p))
        kl = (q * (torch.log(q) - torch.log(p_safe))).sum(-1)
        history.append(torch.where(alive, kl, torch.full_like(kl, math.inf)))
    return torch.stack(history)


def rise_time(excess, threshold: float) -> torch.Tensor:
    """First iteration k after which ``excess`` stays below ``threshold`` (``excess`` [K+1, ...]).

    Returns K+1 where the last iterate is not below the threshold (did not converge).
    """
    excess = as_tensor("excess", excess)
    check_positive("threshold", threshold)
    below = torch.nan_to_num(excess, nan=math.inf) < threshold
    # stays below from k on: reverse cumulative AND
    stays = torch.flip(torch.cummin(torch.flip(below.to(torch.int8), [0]), dim=0).values, [0])
    num = excess.shape[0]
    first = torch.where(stays.bool().any(0), stays.to(torch.int64).argmax(0),
                        torch.full(stays.shape[1:], num, dtype=torch.int64, device=excess.device))
    return first


# --------------------------------------------------------------------------- noise
def ngd_noise_floor(n: int, lr: float, batch: int) -> float:
    """Small-noise stationary excess KL of mini-batch NGD: alpha n / (2 (2 - alpha) B)."""
    check_positive_int("n", n)
    check_positive_int("batch", batch)
    check_positive("lr", lr)
    if lr >= 2:
        raise ValueError(f"lr: NGD is unstable for lr >= 2, got {lr}")
    return lr * n / (2 * (2 - lr) * batch)


def minibatch_ngd(q_hat, p0, lr: float, batch: int, num_iters: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Mini-batch NGD eta <- (1 - lr) eta + lr * histogram(batch of B draws from q_hat).

    ``p0`` [C, n+1] runs C independent chains; returns KL(q_hat || p_k), shape [K+1, C]
    (``inf`` once a category has probability 0, which happens at lr = 1 when a batch misses it).
    """
    q_hat = check_simplex_point("q_hat", q_hat)
    p0 = check_simplex_point("p0", p0)
    check_positive("lr", lr)
    check_positive_int("batch", batch)
    check_positive_int("num_iters", num_iters)
    if lr > 1:
        raise ValueError(f"lr: mini-batch NGD here needs lr <= 1 (convex combination), got {lr}")
    chains = p0.shape[0]
    p = p0.clone()
    history = [kl_divergence(q_hat, p0)]
    cdf = torch.cumsum(q_hat.to("cpu", torch.float64), 0)
    ones = torch.ones(chains, batch, dtype=p.dtype)
    for _ in range(num_iters):
        uniforms = torch.rand(chains, batch, dtype=torch.float64, generator=generator)
        draws = torch.searchsorted(cdf, uniforms * cdf[-1]).clamp_max(q_hat.shape[-1] - 1)
        counts = torch.zeros(chains, q_hat.shape[-1], dtype=p.dtype)
        counts.scatter_add_(1, draws, ones)
        hist = (counts / batch).to(p.device)
        p = (1 - lr) * p + lr * hist
        with torch.no_grad():
            log_p = torch.where(p > 0, torch.log(p.clamp_min(1e-300)),
                                torch.full_like(p, -math.inf))
            history.append((q_hat * (torch.log(q_hat) - log_p)).sum(-1))
    return torch.stack(history)
