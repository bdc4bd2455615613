r"""Shallow univariate ReLU networks: gradient dynamics, knots, and the two implicit biases.

The model of Williams et al. (NeurIPS 2019), with every layer trained:

.. math::

    f(x) = \sum_{i=1}^{m} c_i\,[a_i x + b_i]_+, \qquad
    L(a, b, c) = \tfrac12 \sum_{j=1}^{n} \big(f(x_j) - y_j\big)^2 ,

trained by full-batch gradient descent :math:`\theta \leftarrow \theta - \eta \nabla L`.
With residuals :math:`\rho_j = f(x_j) - y_j` and activities
:math:`s_{ij} = \mathbb 1[a_i x_j + b_i > 0]`,

.. math::

    \partial_{c_i} L = \sum_j \rho_j [a_i x_j + b_i]_+ ,\quad
    \partial_{a_i} L = c_i \sum_j \rho_j s_{ij} x_j ,\quad
    \partial_{b_i} L = c_i \sum_j \rho_j s_{ij} .

Geometry of a neuron: knot :math:`e_i = -b_i / a_i`, slope jump :math:`c_i |a_i|` at the knot
(:math:`f'' = \sum_i c_i |a_i| \delta_{e_i}`), conserved quantity under gradient flow
:math:`\delta_i = c_i^2 - a_i^2 - b_i^2`. Non-redundant coordinates
:math:`(a_i, b_i) = r_i(\cos\theta_i, \sin\theta_i)`, :math:`u_i = c_i r_i`, in which

.. math::

    \dot u_i = -\sqrt{\delta_i^2 + 4u_i^2}\;\partial_{u_i} G, \qquad
    \dot\theta_i = -r_i^{-2}\,\partial_{\theta_i} G, \qquad
    r_i^2 = \tfrac12\big(\sqrt{\delta_i^2 + 4u_i^2} - \delta_i\big),

with :math:`G(u, \theta) = L`. Kernel regime: the first layer frozen at its law :math:`q(a, b)`,
the minimum-norm fit of :math:`c` tends (width to infinity) to the interpolant minimising
:math:`\int f''(x)^2 / \nu(x)\,dx` with the curvature weight

.. math::

    \nu(x) = \int |a|^3\, q(a, -a x)\, da ,

which is :math:`2\sigma_a^3\sigma_b^3 / (\pi(\sigma_a^2 x^2 + \sigma_b^2)^2)` for
:math:`(a, b) \sim \mathcal N(0, \mathrm{diag}(\sigma_a^2, \sigma_b^2))` and the constant
:math:`1/(2M)` on :math:`(-M, M)` for :math:`a = \pm 1`, :math:`b \sim U[-M, M]` (natural cubic
spline). The weighted spline is computed from its representer system (scipy has no spline
routine with a position-dependent curvature weight); the constant-weight case is cross-checked
against ``scipy.interpolate.CubicSpline(bc_type='natural')`` and
``scipy.interpolate.make_smoothing_spline``.

Parameters are batched: ``a, b, c`` have shape ``(..., m)``, the data ``x, y`` shape ``(n,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, interpolate, linalg

from gradynamics.validation import as_tensor, check_finite, check_positive, check_positive_int

__all__ = [
    "Params",
    "TrainResult",
    "conserved_quantity",
    "curvature_weight_gaussian",
    "curvature_weight_uniform",
    "evaluate",
    "gd_train",
    "init_params",
    "knot_displacement",
    "knot_velocity",
    "knots",
    "layer_scales",
    "linear_interpolant",
    "loss",
    "loss_gradients",
    "natural_cubic_spline",
    "random_feature_min_norm",
    "reduced_coordinates",
    "reduced_velocity",
    "regime_sweep",
    "SweepResult",
    "relu_net",
    "slope_jumps",
    "slope_mass_near_data",
    "sup_distance",
    "tangent_kernel",
    "weighted_spline",
]


@dataclass(frozen=True)
class Params:
    """First-layer weights ``a``, biases ``b`` and output weights ``c``, each of shape (..., m)."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor

    def detach(self) -> Params:
        """A detached copy (no autograd history)."""
        return Params(self.a.detach().clone(), self.b.detach().clone(), self.c.detach().clone())


def _check_params(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out = []
    for name, value in (("a", a), ("b", b), ("c", c)):
        t = as_tensor(name, value)
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
        if t.ndim < 1 or t.shape[-1] < 1:
            raise ValueError(f"{name}: expected shape (..., m) with m >= 1, got {tuple(t.shape)}")
        check_finite(name, t)
        out.append(t)
    if not (out[0].shape == out[1].shape == out[2].shape):
        raise ValueError(f"a, b, c: shapes differ, {tuple(out[0].shape)}, {tuple(out[1].shape)}, "
                         f"{tuple(out[2].shape)}")
    return tuple(out)


def _check_points(name: str, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    t = as_tensor(name, x, dtype=like.dtype, device=like.device)
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of inputs, got {tuple(t.shape)}")
    check_finite(name, t)
    return t


def _check_data(x: torch.Tensor, y: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = _check_points("x", x, like)
    y = as_tensor("y", y, dtype=like.dtype, device=like.device)
    if y.ndim < 1 or y.shape[-1] != x.shape[0]:
        raise ValueError(f"y: expected shape (..., {x.shape[0]}) like x, got {tuple(y.shape)}")
    check_finite("y", y)
    return x, y


# --------------------------------------------------------------------------------- the network
def relu_net(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Network output ``sum_i c_i [a_i x + b_i]_+``, shape (..., n) for inputs x of shape (n,)."""
    a, b, c = _check_params(a, b, c)
    x = _check_points("x", x, a)
    pre = a.unsqueeze(-1) * x + b.unsqueeze(-1)
    return (c.unsqueeze(-2) @ pre.clamp_min(0)).squeeze(-2)


def evaluate(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
             chunk: int = 256) -> torch.Tensor:
    """:func:`relu_net` in chunks of ``chunk`` inputs (for very wide networks on long grids)."""
    check_positive_int("chunk", chunk)
    a, b, c = _check_params(a, b, c)
    x = _check_points("x", x, a)
    with torch.no_grad():
        return torch.cat([relu_net(x[k:k + chunk], a, b, c) for k in range(0, x.numel(), chunk)],
                         dim=-1)


def loss(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
         c: torch.Tensor) -> torch.Tensor:
    """Square loss ``0.5 * sum_j (f(x_j) - y_j)^2``, one value per batch entry."""
    a, b, c = _check_params(a, b, c)
    x, y = _check_data(x, y, a)
    return 0.5 * ((relu_net(x, a, b, c) - y) ** 2).sum(-1)


def _gradients(x, y, a, b, c):
    pre = a.unsqueeze(-1) * x + b.unsqueeze(-1)              # (..., m, n)
    act = (pre > 0).to(a.dtype)
    hidden = pre * act
    rho = (c.unsqueeze(-2) @ hidden).squeeze(-2) - y         # (..., n)
    grad_c = (hidden @ rho.unsqueeze(-1)).squeeze(-1)
    act_rho = act * rho.unsqueeze(-2)
    grad_b = c * act_rho.sum(-1)
    grad_a = c * (act_rho @ x.unsqueeze(-1)).squeeze(-1)
    return grad_a, grad_b, grad_c, 0.5 * (rho ** 2).sum(-1)


def loss_gradients(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   c: torch.Tensor) -> tuple[Params, torch.Tensor]:
    """Closed-form gradient of :func:`loss` with respect to (a, b, c), and the loss itself."""
    a, b, c = _check_params(a, b, c)
    x, y = _check_data(x, y, a)
    grad_a, grad_b, grad_c, value = _gradients(x, y, a, b, c)
    return Params(grad_a, grad_b, grad_c), value


def tangent_kernel(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   c: torch.Tensor) -> torch.Tensor:
    """Tangent kernel ``J J^T`` (shape (..., n, n)) of f(x_1..x_n) w.r.t. (a, b, c)."""
    a, b, c = _check_params(a, b, c)
    x = _check_points("x", x, a)
    pre = a.unsqueeze(-1) * x + b.unsqueeze(-1)
    hidden = pre.clamp_min(0)
    weighted = (pre > 0).to(a.dtype) * c.abs().unsqueeze(-1)           # (..., m, n)
    first = weighted.transpose(-1, -2) @ weighted * (x.unsqueeze(-1) * x + 1)
    return hidden.transpose(-1, -2) @ hidden + first


# ---------------------------------------------------------------------------- initialisation
def layer_scales(ratio: float | torch.Tensor, size: float) -> tuple:
    """Scales ``(s_ab, s_c)`` with ``s_ab / s_c = ratio`` and ``s_ab * s_c = size``."""
    size = check_positive("size", size)
    r = torch.as_tensor(ratio, dtype=torch.float64)
    if not bool(torch.isfinite(r).all()) or bool((r <= 0).any()):
        raise ValueError(f"ratio: expected finite positive values, got {ratio!r}")
    s_ab, s_c = torch.sqrt(size * r), torch.sqrt(size / r)
    if r.ndim == 0:
        return float(s_ab), float(s_c)
    return s_ab, s_c


def init_params(m: int, scale_ab: float | torch.Tensor, scale_c: float | torch.Tensor, *,
                batch: Sequence[int] = (), law: str = "gaussian", knot_range: float = 2.0,
                generator: torch.Generator | None = None, device: torch.device | None = None,
                dtype: torch.dtype = torch.float64) -> Params:
    """Random parameters of shape (*batch, m): first layer times ``scale_ab``, c ~ scale_c N(0,1).

    ``law='gaussian'``: (a, b) ~ N(0, I). ``law='uniform'``: a = +-1, b ~ U[-M, M] with
    M = ``knot_range`` (knots uniform on [-M, M]). Scales may be tensors broadcasting to
    ``batch`` (one value per arm of a sweep). Set the width scaling by passing e.g.
    ``scale_c = kappa * m ** -gamma``.
    """
    m = check_positive_int("m", m)
    batch = tuple(check_positive_int("batch", k) for k in batch)
    check_positive("knot_range", knot_range)
    if law not in ("gaussian", "uniform"):
        raise ValueError(f"law: expected 'gaussian' or 'uniform', got {law!r}")
    shape = (*batch, m)
    scales = []
    for name, s in (("scale_ab", scale_ab), ("scale_c", scale_c)):
        t = torch.as_tensor(s, dtype=dtype)
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"{name}: expected finite non-negative scales, got {s!r}")
        if t.ndim:
            if tuple(t.shape) != batch:
                raise ValueError(f"{name}: expected a scalar or shape {batch}, "
                                 f"got {tuple(t.shape)}")
            t = t.unsqueeze(-1)
        scales.append(t.to(device))
    s_ab, s_c = scales
    if law == "gaussian":
        a = torch.randn(shape, generator=generator, dtype=dtype)
        b = torch.randn(shape, generator=generator, dtype=dtype)
    else:
        a = torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
        b = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * knot_range
    c = torch.randn(shape, generator=generator, dtype=dtype)
    a, b, c = (t.to(device) for t in (a, b, c))
    return Params(a * s_ab, b * s_ab, c * s_c)


# ------------------------------------------------------------------------------ geometry
def knots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Knot positions ``e_i = -b_i / a_i`` (inf where a_i = 0)."""
    a, b, _ = _check_params(a, b, torch.zeros_like(torch.as_tensor(a)))
    return -b / a


def slope_jumps(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Slope jump of f at each knot, ``c_i |a_i|`` (the atoms of f'')."""
    a, _, c = _check_params(a, torch.zeros_like(torch.as_tensor(a)), c)
    return c * a.abs()


def conserved_quantity(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``delta_i = c_i^2 - a_i^2 - b_i^2``, constant along the gradient flow."""
    a, b, c = _check_params(a, b, c)
    return c ** 2 - a ** 2 - b ** 2


def reduced_coordinates(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> dict:
    """Non-redundant coordinates: ``u = c r``, ``theta = atan2(b, a)``, with ``r`` and ``delta``."""
    a, b, c = _check_params(a, b, c)
    r = torch.sqrt(a ** 2 + b ** 2)
    return {"u": c * r, "theta": torch.atan2(b, a), "r": r, "delta": c ** 2 - r ** 2}


def _reduced_partials(x, y, u, theta):
    cos, sin = torch.cos(theta), torch.sin(theta)
    pre = cos.unsqueeze(-1) * x + sin.unsqueeze(-1)
    act = (pre > 0).to(u.dtype)
    rho = (u.unsqueeze(-2) @ (pre * act)).squeeze(-2) - y
    g_u = ((pre * act) @ rho.unsqueeze(-1)).squeeze(-1)
    dpre = cos.unsqueeze(-1) - x * sin.unsqueeze(-1)
    g_theta = u * ((act * dpre) @ rho.unsqueeze(-1)).squeeze(-1)
    return g_u, g_theta


def reduced_velocity(x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, theta: torch.Tensor,
                     delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-flow velocity ``(du/dt, dtheta/dt)`` in the coordinates (u, theta) given delta."""
    u, theta, delta = _check_params(u, theta, delta)
    x, y = _check_data(x, y, u)
    g_u, g_theta = _reduced_partials(x, y, u, theta)
    speed = torch.sqrt(delta ** 2 + 4 * u ** 2)
    r2 = 0.5 * (speed - delta)
    if bool((r2 <= 0).any()):
        raise ValueError("u, delta: r^2 = (sqrt(delta^2 + 4u^2) - delta)/2 must be > 0")
    return -speed * g_u, -g_theta / r2


def knot_velocity(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                  c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Knot velocity ``de/dt = (c/a) sum_{j active} rho_j (1 + e x_j)`` and the knot force.

    The force is ``dL/de`` at fixed (a, c): ``-c a sum_{j active} rho_j``, piecewise constant
    in e between consecutive data points (at fixed residuals).
    """
    a, b, c = _check_params(a, b, c)
    x, y = _check_data(x, y, a)
    if bool((a == 0).any()):
        raise ValueError("a: knots are undefined where a_i = 0")
    pre = a.unsqueeze(-1) * x + b.unsqueeze(-1)
    act = (pre > 0).to(a.dtype)
    rho = (c.unsqueeze(-2) @ (pre * act)).squeeze(-2) - y
    e = -b / a
    act_rho = act * rho.unsqueeze(-2)
    velocity = (c / a) * (act_rho.sum(-1) + e * (act_rho @ x.unsqueeze(-1)).squeeze(-1))
    force = -c * a * act_rho.sum(-1)
    return velocity, force


# ------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainResult:
    """Final parameters, and snapshots of (a, b, c) and the loss at the recorded steps."""

    params: Params
    steps: torch.Tensor          # (T,)
    a: torch.Tensor              # (T, ..., m)
    b: torch.Tensor
    c: torch.Tensor
    loss: torch.Tensor           # (T, ...)

    @property
    def knots(self) -> torch.Tensor:
        """Knot trajectories, shape (T, ..., m)."""
        return -self.b / self.a


def gd_train(x: torch.Tensor, y: torch.Tensor, init: Params, lr: float | torch.Tensor,
             steps: int, record: Sequence[int] | None = None,
             progress: bool | None = False) -> TrainResult:
    """Full-batch GD on all of (a, b, c) from ``init`` (batched; ``lr`` may be one per arm).

    ``record`` lists the step counts at which parameters and loss are stored (step 0 = init);
    the default is the init and the end. ``progress=None`` shows a tqdm bar only in a terminal.
    """
    a, b, c = (t.detach().clone() for t in _check_params(init.a, init.b, init.c))
    x, y = _check_data(x, y, a)
    steps = check_positive_int("steps", steps, minimum=0)
    eta = as_tensor("lr", lr, dtype=a.dtype, device=a.device)
    check_finite("lr", eta)
    if bool((eta <= 0).any()):
        raise ValueError(f"lr: expected positive step sizes, got {lr!r}")
    if eta.ndim:
        if eta.shape != a.shape[:-1]:
            raise ValueError(f"lr: expected a scalar or shape {tuple(a.shape[:-1])}, "
                             f"got {tuple(eta.shape)}")
        eta = eta.unsqueeze(-1)
    wanted = sorted(set(record)) if record is not None else [0, steps]
    if any(int(k) < 0 or int(k) > steps for k in wanted):
        raise ValueError(f"record: step counts must lie in [0, {steps}]")
    wanted_set = set(int(k) for k in wanted)
    snaps: dict[str, list] = {"a": [], "b": [], "c": [], "loss": []}
    from tqdm.auto import trange

    # The tensors are tiny: on a CPU, intra-op threads cost more than they save (measured 10-15x
    # slower with 2 threads on a loaded 2-core machine), so the loop runs single-threaded.
    threads = torch.get_num_threads()
    if a.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        for k in trange(steps + 1, disable=None if progress is None else not progress,
                        leave=False):
            grad_a, grad_b, grad_c, value = _gradients(x, y, a, b, c)
            if k in wanted_set:
                for key, t in (("a", a), ("b", b), ("c", c), ("loss", value)):
                    snaps[key].append(t.clone())
            if k == steps:
                break
            a = a - eta * grad_a
            b = b - eta * grad_b
            c = c - eta * grad_c
    finally:
        torch.set_num_threads(threads)
    if not bool(torch.isfinite(value).all()):
        raise FloatingPointError("gd_train: the loss diverged (reduce lr)")
    return TrainResult(Params(a, b, c), torch.tensor(wanted), *(torch.stack(snaps[key])
                       for key in ("a", "b", "c", "loss")))


# -------------------------------------------------------------------------- diagnostics
def knot_displacement(e_start: torch.Tensor, e_end: torch.Tensor) -> torch.Tensor:
    """Median over neurons of ``|e_end - e_start|`` (robust to knots at infinity), per arm."""
    e_start, e_end = as_tensor("e_start", e_start), as_tensor("e_end", e_end)
    if e_start.shape != e_end.shape:
        raise ValueError(f"e_end: shape {tuple(e_end.shape)} differs from e_start")
    shift = (e_end - e_start).abs()
    shift = torch.where(torch.isnan(shift), torch.full_like(shift, math.inf), shift)
    return shift.median(dim=-1).values


def slope_mass_near_data(x_data: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                         c: torch.Tensor, eps: float) -> torch.Tensor:
    """Share of the slope mass ``sum |c_i a_i|`` (knots in [x_1, x_n]) within ``eps`` of data."""
    check_positive("eps", eps)
    a, b, c = _check_params(a, b, c)
    x_data = _check_points("x_data", x_data, a)
    e = -b / a
    weight = (c * a).abs()
    inside = (e >= x_data.min() - eps) & (e <= x_data.max() + eps)
    near = ((e.unsqueeze(-1) - x_data).abs() <= eps).any(-1)
    total = (weight * inside).sum(-1)
    return (weight * (inside & near)).sum(-1) / total.clamp_min(torch.finfo(a.dtype).tiny)


def sup_distance(f: np.ndarray | torch.Tensor, g: np.ndarray | torch.Tensor) -> float:
    """``max |f - g|`` over a grid (both evaluated on the same points)."""
    f_np = np.asarray(f.detach().cpu() if isinstance(f, torch.Tensor) else f, dtype=float)
    g_np = np.asarray(g.detach().cpu() if isinstance(g, torch.Tensor) else g, dtype=float)
    if f_np.shape != g_np.shape:
        raise ValueError(f"f and g: shapes differ, {f_np.shape} vs {g_np.shape}")
    if not (np.isfinite(f_np).all() and np.isfinite(g_np).all()):
        raise ValueError("f, g: contain NaN or infinite values")
    return float(np.abs(f_np - g_np).max(axis=-1).max()) if f_np.ndim else abs(float(f_np - g_np))


# ----------------------------------------------------------------------- kernel regime
def curvature_weight_gaussian(x: np.ndarray | float, sigma_a: float = 1.0,
                              sigma_b: float = 1.0) -> np.ndarray:
    """``nu = 2 s_a^3 s_b^3 / (pi (s_a^2 x^2 + s_b^2)^2)`` for (a, b) ~ N(0, diag(s_a^2, s_b^2))."""
    check_positive("sigma_a", sigma_a)
    check_positive("sigma_b", sigma_b)
    x = np.asarray(x, dtype=float)
    return 2 * sigma_a ** 3 * sigma_b ** 3 / (np.pi * (sigma_a ** 2 * x ** 2 + sigma_b ** 2) ** 2)


def curvature_weight_uniform(x: np.ndarray | float, knot_range: float = 2.0) -> np.ndarray:
    """``nu(x) = 1/(2M)`` on (-M, M), 0 outside, for a = +-1 and b ~ U[-M, M]."""
    check_positive("knot_range", knot_range)
    x = np.asarray(x, dtype=float)
    return np.where(np.abs(x) < knot_range, 1.0 / (2 * knot_range), 0.0)


def _check_xy_np(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"x: expected a 1-D array of at least 2 points, got shape {x.shape}")
    if y.shape != x.shape:
        raise ValueError(f"y: expected shape {x.shape} like x, got {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x, y: contain NaN or infinite values")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x: expected strictly increasing data points")
    return x, y


def natural_cubic_spline(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The natural cubic spline through the data (``scipy.interpolate.CubicSpline``)."""
    x, y = _check_xy_np(x, y)
    return interpolate.CubicSpline(x, y, bc_type="natural")


def linear_interpolant(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The linear spline through the data (``scipy.interpolate.make_interp_spline``, k=1)."""
    x, y = _check_xy_np(x, y)
    return interpolate.make_interp_spline(x, y, k=1)


def _moments(points: np.ndarray, start: float, nu: Callable) -> np.ndarray:
    """``N_k(s) = int_start^s t^k nu(t) dt`` for k = 0, 1, 2 at each point (cumulative quad)."""
    order = np.argsort(points)
    out = np.zeros((points.size, 3))
    acc = np.zeros(3)
    prev = start
    for idx in order:
        s = max(points[idx], start)
        if s > prev:
            for k in range(3):
                acc[k] += integrate.quad(lambda t, k=k: t ** k * nu(t), prev, s,
                                         epsabs=1e-13, epsrel=1e-12, limit=200)[0]
            prev = s
        out[idx] = acc
    return out


def _kernel(p: np.ndarray, q: np.ndarray, mom_p: np.ndarray, mom_q: np.ndarray) -> np.ndarray:
    """``K(p, q) = int_{x_1}^{min(p,q)} nu(t) (p - t)(q - t) dt`` from the cumulative moments."""
    use_p = p[:, None] <= q[None, :]
    mom = np.where(use_p[..., None], mom_p[:, None, :], mom_q[None, :, :])
    return (p[:, None] * q[None, :] * mom[..., 0] - (p[:, None] + q[None, :]) * mom[..., 1]
            + mom[..., 2])


def weighted_spline(x: np.ndarray, y: np.ndarray, nu: Callable[[float], float],
                    smoothing: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """Minimiser of ``sum_j (f(x_j)-y_j)^2 + smoothing * int f''^2 / nu`` (interpolant if 0).

    Representer form ``f(t) = alpha + beta t + sum_j w_j K(t, x_j)`` with
    ``K(s, t) = int nu(r) (s - r)_+ (t - r)_+ dr`` and ``sum w = sum w x = 0``; hence
    ``f'' = nu * (piecewise linear)`` and f is affine outside [x_1, x_n]. For constant nu this
    is the natural cubic (smoothing) spline.
    """
    x, y = _check_xy_np(x, y)
    if not callable(nu):
        raise ValueError("nu: expected a callable curvature weight")
    check_positive("smoothing", smoothing, allow_zero=True)
    nu_vals = np.array([nu(t) for t in np.linspace(x[0], x[-1], 33)], dtype=float)
    if not np.isfinite(nu_vals).all() or np.any(nu_vals <= 0):
        raise ValueError("nu: expected a finite, strictly positive weight on [x_1, x_n]")
    n = x.size
    mom_x = _moments(x, x[0], nu)
    kmat = _kernel(x, x, mom_x, mom_x)
    system = np.zeros((n + 2, n + 2))
    system[:n, :n] = kmat + smoothing * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1] = system[n + 1, :n] = x
    sol = linalg.solve(system, np.concatenate([y, [0.0, 0.0]]), assume_a="sym")
    w, alpha, beta = sol[:n], sol[n], sol[n + 1]

    def spline(t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        mom_t = _moments(t, x[0], nu)
        return alpha + beta * t + _kernel(t, x, mom_t, mom_x) @ w

    return spline


def random_feature_min_norm(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                            affine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-||c|| interpolant with the first layer frozen (the kernel-regime limit of GD).

    Returns ``c`` (shape (..., m)) and the affine coefficients ``(alpha, beta)`` (zeros unless
    ``affine``: then an unpenalised ``alpha + beta x`` is added to the network).
    """
    a, b, _ = _check_params(a, b, torch.zeros_like(torch.as_tensor(a)))
    x, y = _check_data(x, y, a)
    phi = (a.unsqueeze(-1) * x + b.unsqueeze(-1)).clamp_min(0).transpose(-1, -2)  # (..., n, m)
    target = y.expand(*phi.shape[:-2], -1).unsqueeze(-1)
    coef = torch.zeros(*phi.shape[:-2], 2, dtype=a.dtype, device=a.device)
    if affine:
        design = torch.stack([torch.ones_like(x), x], dim=-1)              # (n, 2)
        q, _ = torch.linalg.qr(design)
        proj = torch.eye(x.numel(), dtype=a.dtype, device=a.device) - q @ q.T
        c = torch.linalg.pinv(proj @ phi) @ (proj @ target)
        resid = (target - phi @ c).squeeze(-1)
        coef = torch.linalg.lstsq(design.expand(*phi.shape[:-2], -1, -1),
                                  resid.unsqueeze(-1)).solution.squeeze(-1)
    else:
        c = torch.linalg.pinv(phi) @ target
    return c.squeeze(-1), coef


# ------------------------------------------------------------------------ regime sweep
@dataclass(frozen=True)
class SweepResult:
    """One GD run per layer-scale ratio, with the regime diagnostics of each arm."""

    ratios: torch.Tensor          # (B,) s_ab / s_c
    lr: torch.Tensor              # (B,) step size used per arm
    train: TrainResult            # snapshots, shape (T, B, m)
    grid: torch.Tensor            # (G,) evaluation grid on [x_1, x_n]
    f_final: torch.Tensor         # (B, G)
    dist_cubic: torch.Tensor      # (B,) sup |f - natural cubic spline|
    dist_linear: torch.Tensor     # (B,) sup |f - linear interpolant|
    displacement: torch.Tensor    # (B,) median |e(T) - e(0)|
    early_mass: torch.Tensor      # (B,) max over records <= early_steps of the near-data slope mass


def regime_sweep(x: torch.Tensor, y: torch.Tensor, ratios: torch.Tensor, m: int, steps: int, *,
                 size: float = 1e-3, lr_cap: float = 0.02, lr_factor: float = 1.0,
                 law: str = "uniform", knot_range: float = 2.0, early_steps: int = 10_000,
                 eps: float = 0.02, n_records: int = 40, generator: torch.Generator | None = None,
                 progress: bool | None = False) -> SweepResult:
    """GD from init scales ``s_ab / s_c = ratio``, ``s_ab * s_c = size``; all arms batched.

    Each arm's step is ``min(lr_cap, lr_factor / lambda_max)`` with ``lambda_max`` the largest
    tangent-kernel eigenvalue at initialisation. Records are log-spaced in the step count.
    """
    ratios = as_tensor("ratios", ratios, dtype=torch.float64)
    if ratios.ndim != 1 or ratios.numel() < 1:
        raise ValueError(f"ratios: expected a non-empty 1-D tensor, got {tuple(ratios.shape)}")
    xd = _check_points("x", x, ratios)
    _, yd = _check_data(xd, y, ratios)
    if yd.ndim != 1:
        raise ValueError("y: expected one data set of shape (n,)")
    steps = check_positive_int("steps", steps)
    check_positive("lr_cap", lr_cap)
    check_positive("lr_factor", lr_factor)
    s_ab, s_c = layer_scales(ratios, size)
    device = torch.as_tensor(x).device
    init = init_params(m, s_ab, s_c, batch=(ratios.numel(),), law=law, knot_range=knot_range,
                       generator=generator, device=device)
    xd, yd = xd.to(device), yd.to(device)
    lam = torch.linalg.eigvalsh(tangent_kernel(xd, init.a, init.b, init.c))[..., -1]
    lr = torch.clamp(lr_factor / lam, max=lr_cap)
    record = sorted({0, steps, *np.unique(np.geomspace(1, steps, n_records).astype(int)).tolist()})
    train = gd_train(xd, yd, init, lr, steps, record=record, progress=progress)
    grid = torch.linspace(float(xd.min()), float(xd.max()), 401, dtype=xd.dtype, device=device)
    f_final = evaluate(grid, train.params.a, train.params.b, train.params.c)
    xs, ys, gs = xd.cpu().numpy(), yd.cpu().numpy(), grid.cpu().numpy()
    f_np = f_final.cpu().numpy()
    dist_cubic = np.abs(f_np - natural_cubic_spline(xs, ys)(gs)).max(-1)
    dist_linear = np.abs(f_np - linear_interpolant(xs, ys)(gs)).max(-1)
    displacement = knot_displacement(train.knots[0], train.knots[-1])
    early = [k for k, s in enumerate(record) if s <= early_steps]
    mass = slope_mass_near_data(xd, train.a[early], train.b[early], train.c[early], eps)
    return SweepResult(ratios, lr, train, grid, f_final, torch.as_tensor(dist_cubic),
                       torch.as_tensor(dist_linear), displacement, mass.amax(0))
