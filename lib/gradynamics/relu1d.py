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
the minimum-norm fit of :math:`c` tends (width to infinity) to the interpolant of the kernel
:math:`K(x, x') = \mathbb E_q\big[[a x + b]_+ [a x' + b]_+\big]`. With an unpenalised affine term
added, that interpolant minimises :math:`\int f''(x)^2 / \nu(x)\,dx` with the curvature weight

.. math::

    \nu(x) = \int |a|^3\, q(a, -a x)\, da ,

which is :math:`2\sigma_a^3\sigma_b^3 / (\pi(\sigma_a^2 x^2 + \sigma_b^2)^2)` for
:math:`(a, b) \sim \mathcal N(0, \mathrm{diag}(\sigma_a^2, \sigma_b^2))` and the constant
:math:`1/(2M)` on :math:`(-M, M)` for :math:`a = \pm 1`, :math:`b \sim U[-M, M]`: with the affine
term the uniform law gives exactly the natural cubic spline. Without it the limit is the kernel
interpolant of :func:`uniform_feature_kernel` (closed form), a cubic spline on :math:`[-M, M]` whose
end conditions come from a finite penalty on the affine part; it is *not* the natural cubic
spline on the data range. The weighted spline is computed from its representer system (scipy
has no spline routine with a position-dependent curvature weight); the constant-weight case
is cross-checked against ``scipy.interpolate.CubicSpline(bc_type='natural')`` and
``scipy.interpolate.make_smoothing_spline``.

Regimes: :func:`regime_sweep` trains arms with first-layer/second-layer scale ratio
:math:`s_{ab}/s_c` and product :math:`s_{ab}s_c` (all arms in one batched program);
:func:`width_sweep` fixes the ratio and scales the product like :math:`m^{-\gamma}`, for which
the relative first-layer change is estimated to scale like :math:`m^{\gamma - 1}`.
:func:`uniform_kernel_norm` evaluates the RKHS norm of the uniform-knot kernel,
:math:`2M\int f''^2 + (f'(M) + f'(-M))^2 + 3M^{-2}(f(M) + f(-M) - M(f'(M) - f'(-M)))^2`.

Parameters are batched: ``a, b, c`` have shape ``(..., m)``, the data ``x, y`` shape ``(n,)``.
Public functions validate their input and raise ``ValueError`` naming the argument; the
training loop runs private, unchecked kernels. One forward pass (:func:`_preact`) serves every
function: the first layer is stored as ``ab`` of shape ``(..., m, 2)`` and the inputs as the
design ``X = [x, 1]`` of shape ``(n, 2)``, so that the pre-activations are ``ab @ X^T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, interpolate, linalg

from gradynamics.validation import (
    as_tensor,
    check_finite,
    check_positive,
    check_positive_int,
    check_same_device,
    check_same_dtype,
)

__all__ = [
    "Params",
    "SweepResult",
    "TrainResult",
    "WidthSweepResult",
    "conserved_quantity",
    "curvature_weight_gaussian",
    "curvature_weight_uniform",
    "gd_train",
    "init_params",
    "knot_displacement",
    "knot_velocity",
    "knots",
    "layer_scales",
    "linear_interpolant",
    "linearized_fit",
    "loss",
    "loss_gradients",
    "natural_cubic_spline",
    "random_feature_fit",
    "random_feature_limit",
    "random_feature_min_norm",
    "reduced_coordinates",
    "reduced_velocity",
    "regime_sweep",
    "relu_net",
    "slope_mass_near_data",
    "sup_distance",
    "tangent_kernel",
    "uniform_feature_kernel",
    "uniform_kernel_norm",
    "weighted_spline",
    "width_sweep",
]


@dataclass(frozen=True)
class Params:
    """First-layer weights ``a``, biases ``b`` and output weights ``c``, each of shape (..., m)."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor


# ------------------------------------------------------------------------------ validation
def _check_params(*values: torch.Tensor, names: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Same-shape, same-dtype, finite floating tensors of shape (..., m); errors name ``names``."""
    out = []
    for name, value in zip(names, values, strict=True):
        t = as_tensor(name, value)
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
        if t.ndim < 1 or t.shape[-1] < 1:
            raise ValueError(f"{name}: expected shape (..., m) with m >= 1, got {tuple(t.shape)}")
        out.append(t)
    first, ref = names[0], out[0]
    check_same_dtype(**dict(zip(names, out, strict=True)))
    check_same_device(**dict(zip(names, out, strict=True)))
    for name, t in zip(names[1:], out[1:], strict=True):
        if t.shape != ref.shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)} differs from {first}'s "
                             f"{tuple(ref.shape)}")
    for name, t in zip(names, out, strict=True):
        check_finite(name, t)
    return tuple(out)


def _match_dtype(name: str, value, like: torch.Tensor, like_name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != like.dtype:
        raise ValueError(f"{name}: dtype {value.dtype} differs from {like_name}'s {like.dtype}")
    return as_tensor(name, value, dtype=like.dtype, device=like.device)


def _check_points(name: str, x, like: torch.Tensor, like_name: str) -> torch.Tensor:
    t = _match_dtype(name, x, like, like_name)
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of inputs, got {tuple(t.shape)}")
    check_finite(name, t)
    return t


def _check_targets(name: str, y, x: torch.Tensor, like: torch.Tensor,
                   like_name: str) -> torch.Tensor:
    t = _match_dtype(name, y, like, like_name)
    if t.ndim < 1 or t.shape[-1] != x.shape[0]:
        raise ValueError(f"{name}: expected shape (..., {x.shape[0]}) like x, got {tuple(t.shape)}")
    check_finite(name, t)
    return t


# ------------------------------------------------------------- the forward pass (one copy)
def _design(x: torch.Tensor) -> torch.Tensor:
    """Inputs as rows ``[x_j, 1]``, shape (n, 2)."""
    return torch.stack([x, torch.ones_like(x)], dim=-1)


def _stack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """First layer as ``ab`` of shape (..., m, 2)."""
    return torch.stack([a, b], dim=-1)


def _preact(ab: torch.Tensor, design: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``a_i x_j + b_i``, shape (..., m, n)."""
    return ab @ design.mT


def _net(design: torch.Tensor, ab: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (c.unsqueeze(-2) @ _preact(ab, design).clamp_min(0)).squeeze(-2)


def _grad_core(design, y, ab, c):
    """Gradients w.r.t. ``ab`` (..., m, 2) and ``c``, and the residuals, for the square loss."""
    pre = _preact(ab, design)                                   # (..., m, n)
    hidden = pre.clamp_min(0)
    rho = (c.unsqueeze(-2) @ hidden).squeeze(-2) - y            # (..., n)
    grad_c = (hidden @ rho.unsqueeze(-1)).squeeze(-1)
    act_rho = (pre > 0) * rho.unsqueeze(-2)                      # (..., m, n)
    grad_ab = c.unsqueeze(-1) * (act_rho @ design)              # (..., m, 2)
    return grad_ab, grad_c, rho


def _gradients(x, y, a, b, c):
    grad_ab, grad_c, rho = _grad_core(_design(x), y, _stack(a, b), c)
    return grad_ab[..., 0], grad_ab[..., 1], grad_c, 0.5 * (rho ** 2).sum(-1)


# --------------------------------------------------------------------------------- the network
def relu_net(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
             chunk: int = 4096) -> torch.Tensor:
    """Network output ``sum_i c_i [a_i x + b_i]_+``, shape (..., n) for inputs x of shape (n,).

    Inputs are processed ``chunk`` at a time (wide networks on long grids); autograd works.
    """
    chunk = check_positive_int("chunk", chunk)
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x = _check_points("x", x, a, "a")
    ab = _stack(a, b)
    return torch.cat([_net(_design(x[k:k + chunk]), ab, c) for k in range(0, x.numel(), chunk)],
                     dim=-1)


def loss(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
         c: torch.Tensor) -> torch.Tensor:
    """Square loss ``0.5 * sum_j (f(x_j) - y_j)^2``, one value per batch entry."""
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x = _check_points("x", x, a, "a")
    y = _check_targets("y", y, x, a, "a")
    return 0.5 * ((_net(_design(x), _stack(a, b), c) - y) ** 2).sum(-1)


def loss_gradients(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   c: torch.Tensor) -> tuple[Params, torch.Tensor]:
    """Closed-form gradient of :func:`loss` with respect to (a, b, c), and the loss itself."""
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x = _check_points("x", x, a, "a")
    y = _check_targets("y", y, x, a, "a")
    grad_a, grad_b, grad_c, value = _gradients(x, y, a, b, c)
    return Params(grad_a, grad_b, grad_c), value


def _tangent_kernel(x, x2, a, b, c):
    ab = _stack(a, b)
    d1, d2 = _design(x), _design(x2)
    pre1, pre2 = _preact(ab, d1), _preact(ab, d2)
    weighted = (pre1 > 0) * (c ** 2).unsqueeze(-1)
    first = (weighted.mT @ (pre2 > 0).to(a.dtype)) * (d1 @ d2.mT)
    return pre1.clamp_min(0).mT @ pre2.clamp_min(0) + first


def tangent_kernel(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                   x2: torch.Tensor | None = None) -> torch.Tensor:
    """Tangent kernel ``J(x) J(x2)^T`` (shape (..., n, n2)) w.r.t. (a, b, c); x2 defaults to x."""
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x = _check_points("x", x, a, "a")
    x2 = x if x2 is None else _check_points("x2", x2, a, "a")
    return _tangent_kernel(x, x2, a, b, c)


# ---------------------------------------------------------------------------- initialisation
def layer_scales(ratio: float | torch.Tensor, size: float | torch.Tensor) -> tuple:
    """Scales ``(s_ab, s_c)`` with ``s_ab / s_c = ratio`` and ``s_ab * s_c = size`` (broadcast)."""
    out = []
    for name, value in (("ratio", ratio), ("size", size)):
        t = as_tensor(name, value, dtype=torch.float64)
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ValueError(f"{name}: expected finite positive values, got {value!r}")
        out.append(t)
    r, s = out
    s_ab, s_c = torch.sqrt(s * r), torch.sqrt(s / r)
    if s_ab.ndim == 0:
        return float(s_ab), float(s_c)
    return s_ab, s_c


def init_params(m: int, scale_ab: float | torch.Tensor, scale_c: float | torch.Tensor, *,
                batch: Sequence[int] = (), law: str = "gaussian", knot_range: float = 2.0,
                generator: torch.Generator | None = None, device: torch.device | None = None,
                dtype: torch.dtype = torch.float64) -> Params:
    """Random parameters of shape (*batch, m): first layer times ``scale_ab``, c ~ scale_c N(0,1).

    ``law='gaussian'``: (a, b) ~ N(0, I). ``law='uniform'``: a = +-1, b ~ U[-M, M] with
    M = ``knot_range`` (knots uniform on [-M, M]). Scales may be tensors of shape ``batch``
    (one value per arm of a sweep). The random numbers are drawn on the CPU from ``generator``,
    so the same seed gives the same network on every device.
    """
    m = check_positive_int("m", m)
    batch = tuple(check_positive_int("batch", k) for k in batch)
    check_positive("knot_range", knot_range)
    if law not in ("gaussian", "uniform"):
        raise ValueError(f"law: expected 'gaussian' or 'uniform', got {law!r}")
    shape = (*batch, m)
    scales = []
    for name, s in (("scale_ab", scale_ab), ("scale_c", scale_c)):
        t = as_tensor(name, s, dtype=dtype)
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"{name}: expected finite non-negative scales, got {s!r}")
        if t.ndim:
            if tuple(t.shape) != batch:
                raise ValueError(f"{name}: expected a scalar or shape {batch}, "
                                 f"got {tuple(t.shape)}")
            t = t.unsqueeze(-1)
        scales.append(t.cpu())
    s_ab, s_c = scales
    if law == "gaussian":
        a = torch.randn(shape, generator=generator, dtype=dtype)
        b = torch.randn(shape, generator=generator, dtype=dtype)
    else:
        a = torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
        b = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * knot_range
    c = torch.randn(shape, generator=generator, dtype=dtype)
    return Params(*((t * s).to(device) for t, s in ((a, s_ab), (b, s_ab), (c, s_c))))


# ------------------------------------------------------------------------------ geometry
def knots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Knot positions ``e_i = -b_i / a_i`` (inf where a_i = 0)."""
    a, b = _check_params(a, b, names=("a", "b"))
    return -b / a


def conserved_quantity(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``delta_i = c_i^2 - a_i^2 - b_i^2``, constant along the gradient flow."""
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    return c ** 2 - a ** 2 - b ** 2


def reduced_coordinates(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> dict:
    """Non-redundant coordinates: ``u = c r``, ``theta = atan2(b, a)``, with ``r`` and ``delta``."""
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    r = torch.sqrt(a ** 2 + b ** 2)
    return {"u": c * r, "theta": torch.atan2(b, a), "r": r, "delta": c ** 2 - r ** 2}


def reduced_velocity(x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, theta: torch.Tensor,
                     delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-flow velocity ``(du/dt, dtheta/dt)`` in the coordinates (u, theta) given delta."""
    u, theta, delta = _check_params(u, theta, delta, names=("u", "theta", "delta"))
    x = _check_points("x", x, u, "u")
    y = _check_targets("y", y, x, u, "u")
    speed = torch.sqrt(delta ** 2 + 4 * u ** 2)
    r2 = 0.5 * (speed - delta)
    if bool((r2 <= 0).any()):
        raise ValueError("delta: r^2 = (sqrt(delta^2 + 4u^2) - delta)/2 must be > 0 "
                         "(u = 0 with delta >= 0 has no angle)")
    cos, sin = torch.cos(theta), torch.sin(theta)
    # G(u, theta) = L(a=cos, b=sin, c=u): dG/du = dL/dc, dG/dtheta = cos dL/db - sin dL/da.
    g_a, g_b, g_u, _ = _gradients(x, y, cos, sin, u)
    return -speed * g_u, -(cos * g_b - sin * g_a) / r2


def knot_velocity(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                  c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Knot velocity ``de/dt = (c/a) sum_{j active} rho_j (1 + e x_j)`` and the knot force.

    The force is ``dL/de`` at fixed (a, c): ``-c a sum_{j active} rho_j``, piecewise constant
    in e between consecutive data points (at fixed residuals).
    """
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x = _check_points("x", x, a, "a")
    y = _check_targets("y", y, x, a, "a")
    if bool((a == 0).any()):
        raise ValueError("a: knots are undefined where a_i = 0")
    g_a, g_b, _, _ = _gradients(x, y, a, b, c)
    e = -b / a
    return (g_b + e * g_a) / a, -a * g_b


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


def _check_lr(lr, like: torch.Tensor) -> torch.Tensor:
    eta = _match_dtype("lr", lr, like, "init.a")
    check_finite("lr", eta)
    if bool((eta <= 0).any()):
        raise ValueError(f"lr: expected positive step sizes, got {lr!r}")
    if eta.ndim and eta.shape != like.shape[:-1]:
        raise ValueError(f"lr: expected a scalar or shape {tuple(like.shape[:-1])}, "
                         f"got {tuple(eta.shape)}")
    return eta


def _check_steps(steps, batch: tuple) -> tuple[int, torch.Tensor | None]:
    """``steps`` as an int, or one count per arm (arms stop after their own count)."""
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        return check_positive_int("steps", steps, minimum=0), None
    t = as_tensor("steps", steps)
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"steps: expected integers, got dtype {t.dtype}")
    if tuple(t.shape) != batch:
        raise ValueError(f"steps: expected an integer or shape {batch}, got {tuple(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError("steps: expected counts >= 0")
    return int(t.max()), t.to(torch.int64)


def _gd_loop(design, y, ab, c, eta, total, wanted, stop=None, progress=False):
    """Unchecked full-batch GD on (ab, c); ``eta`` is a scalar or one step per arm."""
    ab, c = ab.clone(), c.clone()
    eta_c = eta.unsqueeze(-1) if eta.ndim else eta
    eta_ab = eta_c.unsqueeze(-1) if eta.ndim else eta
    changes = set() if stop is None else {int(s) for s in stop.unique()}
    snaps: dict[str, list] = {"ab": [], "c": [], "loss": []}
    steps = range(total + 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, leave=False)
    for k in steps:
        if k in changes:
            eta_c = (eta * (k < stop).to(eta.device)).unsqueeze(-1)
            eta_ab = eta_c.unsqueeze(-1)
        if k in wanted:
            rho = _net(design, ab, c) - y
            snaps["ab"].append(ab.clone())
            snaps["c"].append(c.clone())
            snaps["loss"].append(0.5 * (rho ** 2).sum(-1))
        if k == total:
            break
        grad_ab, grad_c, _ = _grad_core(design, y, ab, c)
        ab.addcmul_(eta_ab, grad_ab, value=-1.0)
        c.addcmul_(eta_c, grad_c, value=-1.0)
    return ab, c, snaps


def gd_train(x: torch.Tensor, y: torch.Tensor, init: Params, lr: float | torch.Tensor,
             steps: int | torch.Tensor, record: Sequence[int] | None = None,
             progress: bool = False) -> TrainResult:
    """Full-batch GD on all of (a, b, c) from ``init``; every arm of the batch in one program.

    ``lr`` is a scalar or one step size per arm; ``steps`` an int or one count per arm (an arm
    stops moving after its own count). ``record`` lists the step counts at which parameters and
    loss are stored (step 0 = init); the default is the init and the end. ``progress=True``
    shows a tqdm bar (off by default: notebooks stay silent).
    """
    a, b, c = _check_params(init.a, init.b, init.c, names=("init.a", "init.b", "init.c"))
    x = _check_points("x", x, a, "init.a")
    y = _check_targets("y", y, x, a, "init.a")
    total, stop = _check_steps(steps, tuple(a.shape[:-1]))
    eta = _check_lr(lr, a)
    if stop is not None:
        eta = eta.expand(*a.shape[:-1]).clone()
    wanted = sorted({int(k) for k in record}) if record is not None else [0, total]
    if any(k < 0 or k > total for k in wanted):
        raise ValueError(f"record: step counts must lie in [0, {total}]")
    ab, c_end, snaps = _gd_loop(_design(x), y, _stack(a, b), c, eta, total, set(wanted), stop,
                                progress)
    final_loss = snaps["loss"][-1] if wanted[-1] == total else None
    if final_loss is None:
        final_loss = 0.5 * ((_net(_design(x), ab, c_end) - y) ** 2).sum(-1)
    if not bool(torch.isfinite(final_loss).all()):
        raise FloatingPointError("gd_train: the loss diverged (reduce lr)")
    ab_t = torch.stack(snaps["ab"])
    return TrainResult(Params(ab[..., 0], ab[..., 1], c_end), torch.tensor(wanted),
                       ab_t[..., 0], ab_t[..., 1], torch.stack(snaps["c"]),
                       torch.stack(snaps["loss"]))


def linearized_fit(x: torch.Tensor, y: torch.Tensor, init: Params, lr: float | torch.Tensor,
                   steps: int, x_eval: torch.Tensor) -> torch.Tensor:
    """Output at ``x_eval`` after ``steps`` GD steps on the model linearised at ``init``.

    With tangent kernel ``K = J J^T`` on the data and residual ``r_0 = f_0(x) - y``, the
    linearised GD moves the output at ``t`` by ``-K(t, x) V diag((1 - (1 - eta lam)^k)/lam) V^T
    r_0`` (``K = V diag(lam) V^T``). Full GD stays close to it exactly when training is lazy.
    """
    a, b, c = _check_params(init.a, init.b, init.c, names=("init.a", "init.b", "init.c"))
    x = _check_points("x", x, a, "init.a")
    y = _check_targets("y", y, x, a, "init.a")
    x_eval = _check_points("x_eval", x_eval, a, "init.a")
    steps = check_positive_int("steps", steps, minimum=0)
    eta = _check_lr(lr, a)
    eta = eta.unsqueeze(-1) if eta.ndim else eta
    lam, vec = torch.linalg.eigh(_tangent_kernel(x, x, a, b, c))
    tiny = 1e-12 * lam[..., -1:].clamp_min(torch.finfo(a.dtype).tiny)
    z = eta * lam
    gone = torch.where(z < 0.5, -torch.expm1(steps * torch.log1p(-z.clamp(max=0.5))),
                       1 - (1 - z) ** steps)                  # 1 - (1 - eta lam)^steps, stably
    filt = torch.where(lam > tiny, gone / lam.clamp_min(torch.finfo(a.dtype).tiny), eta * steps)
    ab = _stack(a, b)
    r0 = _net(_design(x), ab, c) - y
    coef = vec @ (filt * (vec.mT @ r0.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
    cross = _tangent_kernel(x_eval, x, a, b, c)
    return _net(_design(x_eval), ab, c) - (cross @ coef).squeeze(-1)


# -------------------------------------------------------------------------- diagnostics
def knot_displacement(e_start: torch.Tensor, e_end: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Median over neurons of ``|e_end - e_start|`` (NaN counts as infinite), per arm.

    ``mask`` (same shape, bool) selects the neurons that count (padded arms of a sweep).
    """
    e_start = as_tensor("e_start", e_start)
    e_end = _match_dtype("e_end", e_end, e_start, "e_start")
    if e_start.shape != e_end.shape:
        raise ValueError(f"e_end: shape {tuple(e_end.shape)} differs from e_start's "
                         f"{tuple(e_start.shape)}")
    shift = (e_end - e_start).abs()
    shift = torch.where(torch.isnan(shift), torch.full_like(shift, math.inf), shift)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool \
                or mask.shape != shift.shape:
            raise ValueError(f"mask: expected a bool tensor of shape {tuple(shift.shape)}")
        shift = torch.where(mask.to(shift.device), shift, torch.full_like(shift, math.nan))
    return shift.nanmedian(dim=-1).values


def slope_mass_near_data(x_data: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                         c: torch.Tensor, eps: float) -> torch.Tensor:
    """Share of the slope mass ``sum |c_i a_i|`` (knots in [x_1, x_n]) within ``eps`` of data."""
    check_positive("eps", eps)
    a, b, c = _check_params(a, b, c, names=("a", "b", "c"))
    x_data = _check_points("x_data", x_data, a, "a")
    e = -b / a
    weight = (c * a).abs()
    inside = (e >= x_data.min() - eps) & (e <= x_data.max() + eps)
    near = ((e.unsqueeze(-1) - x_data).abs() <= eps).any(-1)
    total = (weight * inside).sum(-1)
    return (weight * (inside & near)).sum(-1) / total.clamp_min(torch.finfo(a.dtype).tiny)


def sup_distance(f: np.ndarray | torch.Tensor, g: np.ndarray | torch.Tensor):
    """``max |f - g|`` along the last axis (a float for 1-D inputs, else an array); g broadcasts."""
    arrays = []
    for name, v in (("f", f), ("g", g)):
        arr = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=float)
        if arr.ndim < 1 or arr.shape[-1] < 1:
            raise ValueError(f"{name}: expected values on a grid (last axis), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        arrays.append(arr)
    try:
        diff = np.abs(arrays[0] - arrays[1])
    except ValueError as err:
        raise ValueError(f"g: shape {arrays[1].shape} does not broadcast to f's "
                         f"{arrays[0].shape}") from err
    out = diff.max(axis=-1)
    return float(out) if out.ndim == 0 else out


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
    if not np.isfinite(x).all():
        raise ValueError("x: contains NaN or infinite values")
    if not np.isfinite(y).all():
        raise ValueError("y: contains NaN or infinite values")
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


def _affine_interpolant(kmat: np.ndarray, x: np.ndarray, y: np.ndarray, smoothing: float = 0.0):
    """Solve ``[K + s I, 1, x; 1^T, 0, 0; x^T, 0, 0] [w; alpha; beta] = [y; 0; 0]``."""
    n = x.size
    system = np.zeros((n + 2, n + 2))
    system[:n, :n] = kmat + smoothing * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1] = system[n + 1, :n] = x
    sol = linalg.solve(system, np.concatenate([y, [0.0, 0.0]]), assume_a="sym")
    return sol[:n], sol[n], sol[n + 1]


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
    mom_x = _moments(x, x[0], nu)
    w, alpha, beta = _affine_interpolant(_kernel(x, x, mom_x, mom_x), x, y, smoothing)

    def spline(t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        mom_t = _moments(t, x[0], nu)
        return alpha + beta * t + _kernel(t, x, mom_t, mom_x) @ w

    return spline


def _uniform_kernel(p: np.ndarray, q: np.ndarray, big_m: float) -> np.ndarray:
    lo = np.clip(np.minimum(p[:, None], q[None, :]), -big_m, big_m)
    hi = np.clip(np.maximum(p[:, None], q[None, :]), -big_m, big_m)
    pq, s = p[:, None] * q[None, :], p[:, None] + q[None, :]

    def moment(start, end):     # int_start^end (p - e)(q - e) de
        return pq * (end - start) - s * (end ** 2 - start ** 2) / 2 + (end ** 3 - start ** 3) / 3

    return (moment(-big_m, lo) + moment(hi, big_m)) / (4 * big_m)


def uniform_feature_kernel(p: np.ndarray, q: np.ndarray, knot_range: float = 2.0) -> np.ndarray:
    """``K(p, q) = E[[a p + b]_+ [a q + b]_+]`` for a = +-1, b ~ U[-M, M] (closed form).

    ``K = (F(-M, min(p, q)) + F(max(p, q), M)) / (4M)`` with ``F(s, t) = int_s^t (p-e)(q-e) de``
    (limits clipped to [-M, M]); the infinite-width limit of the random-feature Gram matrix.
    """
    check_positive("knot_range", knot_range)
    arrays = []
    for name, v in (("p", p), ("q", q)):
        arr = np.atleast_1d(np.asarray(v, dtype=float))
        if arr.ndim != 1 or not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected a finite 1-D array, got shape {arr.shape}")
        arrays.append(arr)
    return _uniform_kernel(arrays[0], arrays[1], float(knot_range))


def uniform_kernel_norm(values: np.ndarray, knot_range: float = 2.0) -> float:
    """Squared RKHS norm of :func:`uniform_feature_kernel`, from samples of f on [-M, M].

    ``values`` are f at ``np.linspace(-M, M, len(values))``; the norm is

    ``2M int f''^2 + (f'(M) + f'(-M))^2 + (3/M^2) (f(M) + f(-M) - M (f'(M) - f'(-M)))^2``,

    evaluated with second-order finite differences (error O(h^2) for smooth pieces).
    """
    check_positive("knot_range", knot_range)
    f = np.asarray(values, dtype=float)
    if f.ndim != 1 or f.size < 5:
        raise ValueError(f"values: expected a 1-D array of at least 5 samples, got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("values: contains NaN or infinite values")
    big_m = float(knot_range)
    h = 2 * big_m / (f.size - 1)
    f2 = np.diff(f, 2) / h ** 2
    weights = np.full(f2.size, h)
    weights[[0, -1]] = 1.5 * h                     # the end cells reach -M and M
    d_left = (-3 * f[0] + 4 * f[1] - f[2]) / (2 * h)
    d_right = (3 * f[-1] - 4 * f[-2] + f[-3]) / (2 * h)
    return float(2 * big_m * np.sum(weights * f2 ** 2) + (d_left + d_right) ** 2
                 + 3 / big_m ** 2 * (f[0] + f[-1] - big_m * (d_right - d_left)) ** 2)


def random_feature_limit(x: np.ndarray, y: np.ndarray, knot_range: float = 2.0,
                         affine: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Infinite-width limit of :func:`random_feature_min_norm` for the uniform-knot law.

    Without ``affine``: the kernel interpolant ``t -> K(t, x) K(x, x)^{-1} y`` of
    :func:`uniform_feature_kernel` (a cubic spline on [-M, M] with knots at the data that pays a
    finite price for its affine part: not the natural cubic spline). With ``affine``: the same
    kernel plus an unpenalised ``alpha + beta t``, which is the natural cubic spline.
    """
    x, y = _check_xy_np(x, y)
    check_positive("knot_range", knot_range)
    big_m = float(knot_range)
    if np.abs(x).max() >= big_m:
        raise ValueError(f"x: expected data inside (-knot_range, knot_range) = (-{big_m}, {big_m})")
    kmat = _uniform_kernel(x, x, big_m)
    if affine:
        w, alpha, beta = _affine_interpolant(kmat, x, y)
    else:
        w, alpha, beta = linalg.solve(kmat, y, assume_a="pos"), 0.0, 0.0

    def limit(t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        return alpha + beta * t + _uniform_kernel(t, x, big_m) @ w

    return limit


def random_feature_min_norm(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                            affine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-||c|| interpolant with the first layer frozen (the kernel-regime limit of GD).

    Returns ``c`` (shape (..., m)) and the affine coefficients ``(alpha, beta)`` (zeros unless
    ``affine``: then an unpenalised ``alpha + beta x`` is added to the network).
    """
    a, b = _check_params(a, b, names=("a", "b"))
    x = _check_points("x", x, a, "a")
    y = _check_targets("y", y, x, a, "a")
    if y.ndim != 1:
        raise ValueError(f"y: expected one data set of shape (n,), got {tuple(y.shape)}")
    phi = _preact(_stack(a, b), _design(x)).clamp_min(0).mT               # (..., n, m)
    target = y.expand(*phi.shape[:-2], -1).unsqueeze(-1)
    coef = torch.zeros(*phi.shape[:-2], 2, dtype=a.dtype, device=a.device)
    if affine:
        design = _design(x).flip(-1)                                       # rows [1, x_j]
        q, _ = torch.linalg.qr(design)
        proj = torch.eye(x.numel(), dtype=a.dtype, device=a.device) - q @ q.T
        c = torch.linalg.pinv(proj @ phi) @ (proj @ target)
        resid = (target - phi @ c).squeeze(-1)
        coef = torch.linalg.lstsq(design.expand(*phi.shape[:-2], -1, -1),
                                  resid.unsqueeze(-1)).solution.squeeze(-1)
    else:
        c = torch.linalg.pinv(phi) @ target
    return c.squeeze(-1), coef


def random_feature_fit(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                       t: torch.Tensor, affine: bool = False, chunk: int = 4096) -> torch.Tensor:
    """The fit of :func:`random_feature_min_norm` evaluated at ``t``, shape (..., len(t)).

    ``sum_i c_i [a_i t + b_i]_+`` plus, with ``affine``, the unpenalised ``alpha + beta t``;
    ``chunk`` is passed to :func:`relu_net` (wide networks on long grids).
    """
    c, coef = random_feature_min_norm(x, y, a, b, affine=affine)
    t = _check_points("t", t, c, "a")
    return relu_net(t, a, b, c, chunk=chunk) + coef[..., :1] + coef[..., 1:] * t


# ------------------------------------------------------------------------ regime sweep
@dataclass(frozen=True)
class SweepResult:
    """One GD run per arm (layer-scale ratio, width, size), with the regime diagnostics."""

    ratios: torch.Tensor          # (B,) s_ab / s_c
    widths: torch.Tensor          # (B,) width m of each arm (arms are zero-padded to max m)
    sizes: torch.Tensor           # (B,) s_ab * s_c
    mask: torch.Tensor            # (B, m_max) True for the arm's real neurons
    lr: torch.Tensor              # (B,) step size used per arm
    train: TrainResult            # snapshots, shape (T, B, m_max)
    grid: torch.Tensor            # (G,) evaluation grid on [x_1, x_n]
    f_final: torch.Tensor         # (B, G)
    dist_cubic: torch.Tensor      # (B,) sup |f - natural cubic spline|
    dist_linear: torch.Tensor     # (B,) sup |f - linear interpolant|
    displacement: torch.Tensor    # (B,) median |e(T) - e(0)|
    first_layer_change: torch.Tensor  # (B,) ||(a, b)(T) - (a, b)(0)|| / ||(a, b)(0)|| (laziness)
    early_mass: torch.Tensor      # (B,) max over records <= early_steps of the near-data slope mass
    final_loss: torch.Tensor      # (B,)
    converged: torch.Tensor       # (B,) final loss <= loss_tol
    steps_needed: torch.Tensor    # (B,) steps a frozen-kernel (lazy) arm needs to reach loss_tol
    lambda_min: torch.Tensor      # (B,) smallest tangent-kernel eigenvalue at initialisation


def regime_sweep(x: torch.Tensor, y: torch.Tensor, ratios: torch.Tensor,
                 m: int | Sequence[int], steps: int, *, size: float | torch.Tensor = 1e-3,
                 lr_cap: float = 0.02, lr_factor: float = 1.0, law: str = "uniform",
                 knot_range: float = 2.0, early_steps: int = 10_000, eps: float = 0.02,
                 n_records: int = 40, loss_tol: float = 1e-10, grid_points: int = 401,
                 generator: torch.Generator | None = None,
                 progress: bool = False) -> SweepResult:
    """GD from init scales ``s_ab / s_c = ratio``, ``s_ab * s_c = size``; all arms batched.

    ``ratios``, ``m`` (widths) and ``size`` broadcast to one value per arm; arms narrower than
    the widest are zero-padded (zero neurons stay exactly zero under GD). Each arm's step is
    ``min(lr_cap, lr_factor / lambda_max)`` with ``lambda_max`` the largest tangent-kernel
    eigenvalue at initialisation. Records are log-spaced in the step count. Laziness is measured
    by the relative change of the first layer, ``||(a, b)(T) - (a, b)(0)|| / ||(a, b)(0)||``,
    and by the median knot displacement. An arm is
    ``converged`` when its final loss is at most ``loss_tol``; ``steps_needed`` is the count a
    lazy arm needs for that, ``log(L_0 / loss_tol) / (-2 log(1 - eta lambda_min))`` (the
    slowest tangent-kernel mode; meaningless for arms whose kernel changes, i.e. adaptive ones).
    """
    ratios = as_tensor("ratios", ratios, dtype=torch.float64).cpu()
    if ratios.ndim != 1 or ratios.numel() < 1:
        raise ValueError(f"ratios: expected a non-empty 1-D tensor, got {tuple(ratios.shape)}")
    x_t = as_tensor("x", x)
    x_t = x_t if x_t.is_floating_point() else x_t.to(torch.float64)
    xd = _check_points("x", x_t, x_t, "x")
    yd = _check_targets("y", y, xd, xd, "x")
    if yd.ndim != 1:
        raise ValueError(f"y: expected one data set of shape (n,), got {tuple(yd.shape)}")
    steps = check_positive_int("steps", steps)
    early_steps = check_positive_int("early_steps", early_steps)
    n_records = check_positive_int("n_records", n_records, minimum=2)
    grid_points = check_positive_int("grid_points", grid_points, minimum=2)
    for name, value in (("lr_cap", lr_cap), ("lr_factor", lr_factor), ("loss_tol", loss_tol),
                        ("eps", eps)):
        check_positive(name, value)
    if isinstance(m, (int, np.integer)) and not isinstance(m, bool):
        widths = torch.tensor([check_positive_int("m", m)])
    else:
        widths = torch.tensor([check_positive_int("m", k) for k in m])
    sizes = as_tensor("size", size, dtype=torch.float64).cpu()
    try:
        ratios, widths, sizes = torch.broadcast_tensors(ratios, widths, sizes)
    except RuntimeError as err:
        raise ValueError(f"m, size: expected scalars or one value per ratio "
                         f"({ratios.numel()}), got {tuple(widths.shape)}, "
                         f"{tuple(sizes.shape)}") from err
    n_arms, m_max = ratios.numel(), int(widths.max())
    s_ab, s_c = layer_scales(ratios.clone(), sizes.clone())
    init = init_params(m_max, s_ab, s_c, batch=(n_arms,), law=law, knot_range=knot_range,
                       generator=generator, dtype=xd.dtype)
    mask = torch.arange(m_max) < widths.unsqueeze(-1)
    init = Params(*(t * mask for t in (init.a, init.b, init.c)))
    device = xd.device
    init = Params(*(t.to(device) for t in (init.a, init.b, init.c)))
    lam = torch.linalg.eigvalsh(_tangent_kernel(xd, xd, init.a, init.b, init.c))
    lr = torch.clamp(lr_factor / lam[..., -1], max=lr_cap)
    record = sorted({0, steps, *np.unique(np.geomspace(1, steps, n_records).astype(int)).tolist()})
    train = gd_train(xd, yd, init, lr, steps, record=record, progress=progress)
    grid = torch.linspace(float(xd.min()), float(xd.max()), grid_points, dtype=xd.dtype,
                          device=device)
    p = train.params
    f_final = relu_net(grid, p.a, p.b, p.c)
    xs, ys, gs = xd.cpu().numpy(), yd.cpu().numpy(), grid.cpu().numpy()
    dist_cubic = sup_distance(f_final, natural_cubic_spline(xs, ys)(gs))
    dist_linear = sup_distance(f_final, linear_interpolant(xs, ys)(gs))
    mask_d = mask.to(device)
    displacement = knot_displacement(train.knots[0], train.knots[-1], mask_d)
    moved = ((train.a[-1] - train.a[0]) ** 2 + (train.b[-1] - train.b[0]) ** 2).sum(-1)
    first_layer_change = torch.sqrt(moved / (train.a[0] ** 2 + train.b[0] ** 2).sum(-1))
    early = [k for k, s in enumerate(record) if s <= early_steps]
    mass = slope_mass_near_data(xd, train.a[early], train.b[early], train.c[early], eps)
    loss0, final_loss = train.loss[0], train.loss[-1]
    rate = -2 * torch.log1p(-lr * lam[..., 0])
    needed = torch.ceil(torch.log(loss0.clamp_min(loss_tol) / loss_tol) / rate)
    return SweepResult(ratios, widths, sizes, mask, lr, train, grid, f_final,
                       torch.as_tensor(dist_cubic), torch.as_tensor(dist_linear), displacement,
                       first_layer_change, mass.amax(0), final_loss, final_loss <= loss_tol,
                       needed, lam[..., 0])


@dataclass(frozen=True)
class WidthSweepResult:
    """The width sweep at one layer-scale ratio: first-layer change per (gamma, width)."""

    sweep: SweepResult           # the batched run; arm k = (gammas[k // W], widths[k % W])
    widths: np.ndarray           # (W,)
    gammas: np.ndarray           # (G,)
    change: np.ndarray           # (G, W) relative first-layer change ||Delta(a, b)|| / ||(a, b)||
    exponents: np.ndarray        # (G,) least-squares slope of log(change) against log(m)


def width_sweep(x: torch.Tensor, y: torch.Tensor, widths: Sequence[int],
                gammas: Sequence[float], steps: int, *, ratio: float = 100.0,
                base_size: float = 1e-3, base_width: int = 200,
                generator: torch.Generator | None = None, **options) -> WidthSweepResult:
    """:func:`regime_sweep` over widths x exponents at the fixed ratio ``s_ab / s_c = ratio``.

    Arm (gamma, m) starts from ``s_ab * s_c = base_size * (base_width / m)^gamma``; the scaling
    estimate predicts a relative first-layer change ``~ m^(gamma - 1)``. All arms run as one
    batched program (narrow arms zero-padded); ``options`` go to :func:`regime_sweep`.
    The fitted ``exponents`` are the slopes of ``log(change)`` against ``log(m)``.
    """
    widths = [check_positive_int("widths", w) for w in widths]
    if len(set(widths)) < 2:
        raise ValueError(f"widths: expected at least two distinct widths, got {widths}")
    gam = as_tensor("gammas", gammas, dtype=torch.float64).cpu()
    if gam.ndim != 1 or gam.numel() < 1:
        raise ValueError(f"gammas: expected a non-empty 1-D sequence, got {tuple(gam.shape)}")
    check_finite("gammas", gam)
    check_positive("ratio", ratio)
    check_positive("base_size", base_size)
    base_width = check_positive_int("base_width", base_width)
    arm_w = torch.tensor(widths * gam.numel(), dtype=torch.float64)
    arm_g = gam.repeat_interleave(len(widths))
    sweep = regime_sweep(x, y, torch.full((arm_w.numel(),), float(ratio), dtype=torch.float64),
                         m=widths * gam.numel(), size=base_size * (base_width / arm_w) ** arm_g,
                         steps=steps, generator=generator, **options)
    change = sweep.first_layer_change.cpu().numpy().reshape(gam.numel(), len(widths))
    log_w = np.log(np.array(widths, dtype=float))
    exponents = np.array([np.polyfit(log_w, np.log(row), 1)[0] for row in change])
    return WidthSweepResult(sweep, np.array(widths), gam.numpy(), change, exponents)
