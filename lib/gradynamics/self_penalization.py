r"""Self-penalization in kernel feature selection (Jordan, Liu, Ruan, 2021), reconstructed.

The model: kernel ridge regression with a feature-scaled kernel, and gradient descent on the
scales. For a weight vector :math:`\beta \ge 0` and :math:`q \in (0, 2]`,

.. math::

   K_\beta(x, x') = \exp\Big(-\sum_{j=1}^p \beta_j |x_j - x'_j|^q\Big)

(:math:`q = 1`: the product Laplace kernel, "l1 kernel"; :math:`q = 2`: the Gaussian ARD
kernel, "l2 kernel"). The inner kernel-ridge problem has a closed-form value,

.. math::

   F(\beta) = \min_f \frac{1}{2n}\sum_i (y_i - f(x_i))^2 + \frac{\lambda}{2}\|f\|^2_{K_\beta}
   = \frac{\lambda}{2} y^\top (K_\beta + n\lambda I)^{-1} y ,

and, with :math:`\alpha = (K_\beta + n\lambda I)^{-1} y` and
:math:`D_j[i, k] = |x_{ij} - x_{kj}|^q`, the envelope-theorem gradient

.. math::

   \partial_j F(\beta) = \frac{\lambda}{2} \sum_{i,k} \alpha_i \alpha_k K_{ik} D_j[i, k] .

Projected gradient descent :math:`\beta \leftarrow \max(\beta - \eta \nabla F(\beta), 0)`
with Armijo backtracking produces exact zeros through the projection (no threshold anywhere).

Everything here is batched: a leading seed axis ``S`` (one data set per seed, each with its own
distance tensor) and a regularisation axis ``L`` (several lambdas sharing one data set), so
one tensor program runs a whole experiment. The per-feature distances are stored dense,
``(S, p, n, n)``, so that the kernel and the gradient are two batched matrix products.

The objective, the algorithm and the theorem statements of the paper are reconstructed (only
its abstract was available); see the chapter ``book/self_penalization``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gradynamics.validation import (
    as_tensor,
    check_finite,
    check_positive,
    check_positive_int,
    check_same_dtype,
)

__all__ = [
    "FeatureDistances",
    "PGDResult",
    "abs_pair_form",
    "baseline_supports",
    "compare_selectors",
    "distance_moment",
    "expected_noise_slope",
    "feature_distances",
    "gradient_at_zero",
    "interaction_benchmark",
    "kernel_matrix",
    "noise_slope_samples",
    "objective",
    "objective_and_gradient",
    "projected_gradient_descent",
    "ridge_primal_value",
    "selected_support",
    "selection_data",
    "selection_study",
    "selection_summary",
]


# ----------------------------------------------------------------------------- distances
@dataclass(frozen=True)
class FeatureDistances:
    r"""Per-feature distances ``values[s, j, i, k] = |x_ij - x_kj|^q`` of ``S`` data sets."""

    values: torch.Tensor
    q: float

    @property
    def n_seeds(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    @property
    def n(self) -> int:
        return int(self.values.shape[-1])

    def flat(self) -> torch.Tensor:
        """The distances as ``(S, p, n * n)`` (a view)."""
        return self.values.reshape(self.n_seeds, self.n_features, -1)


def feature_distances(X: torch.Tensor, q: float) -> FeatureDistances:
    r"""Per-feature distances of the rows of ``X`` (shape ``(n, p)`` or ``(S, n, p)``)."""
    X = as_tensor("X", X)
    if X.ndim not in (2, 3):
        raise ValueError(f"X: expected shape (n, p) or (S, n, p), got {tuple(X.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"X: expected a floating-point tensor, got {X.dtype}")
    check_finite("X", X)
    q = _check_q(q)
    if X.ndim == 2:
        X = X.unsqueeze(0)
    if X.shape[1] < 2 or X.shape[2] < 1:
        raise ValueError(f"X: expected at least 2 rows and 1 column, got {tuple(X.shape[1:])}")
    Xt = X.transpose(1, 2)                                     # (S, p, n)
    diff = (Xt.unsqueeze(-1) - Xt.unsqueeze(-2)).abs()         # (S, p, n, n)
    return FeatureDistances(diff if q == 1.0 else diff.pow(q), q=q)


def _check_q(q: float) -> float:
    q = check_positive("q", q)
    if q > 2:
        raise ValueError(f"q: expected 0 < q <= 2 (a positive definite kernel), got {q}")
    return q


def distance_moment(q: float) -> float:
    r""":math:`c_q = E|X - X'|^q = 2^q\Gamma((q+1)/2)/\sqrt\pi` for independent standard normals."""
    q = _check_q(q)
    return 2.0**q * math.gamma((q + 1) / 2) / math.sqrt(math.pi)


# ----------------------------------------------------------------------------- core kernels
def _check_problem(beta: torch.Tensor | float, dist: FeatureDistances, y: torch.Tensor,
                   lam: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate and broadcast to beta (S, L, p), y (S, n), lam (L,)."""
    if not isinstance(dist, FeatureDistances):
        raise ValueError(f"dist: expected FeatureDistances, got {type(dist).__name__}")
    values = dist.values
    S, p, n = dist.n_seeds, dist.n_features, dist.n
    y = as_tensor("y", y, device=values.device)
    check_same_dtype(dist=values, y=y)
    if y.ndim == 1:
        y = y.unsqueeze(0)
    if y.ndim != 2 or y.shape[-1] != n or y.shape[0] not in (1, S):
        raise ValueError(f"y: expected shape (n,) or (S, n) with n={n}, S={S}, "
                         f"got {tuple(y.shape)}")
    check_finite("y", y)
    y = y.expand(S, n)
    lam_t = as_tensor("lam", lam, dtype=values.dtype, device=values.device).reshape(-1)
    check_finite("lam", lam_t)
    if lam_t.numel() == 0 or bool((lam_t <= 0).any()):
        raise ValueError(f"lam: expected values > 0, got {lam_t.tolist()}")
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        beta = torch.full((p,), float(beta), dtype=values.dtype, device=values.device)
    beta = as_tensor("beta", beta, device=values.device)
    check_same_dtype(dist=values, beta=beta)
    check_finite("beta", beta)
    if beta.ndim == 0 or beta.shape[-1] != p:
        raise ValueError(f"beta: expected a last axis of size p={p}, got {tuple(beta.shape)}")
    if bool((beta < 0).any()):
        raise ValueError(f"beta: expected entries >= 0, min is {float(beta.min())}")
    L = lam_t.numel()
    while beta.ndim < 3:
        beta = beta.unsqueeze(0)
    try:
        beta = beta.expand(S, L, p)
    except RuntimeError as err:
        raise ValueError(f"beta: shape {tuple(beta.shape)} does not broadcast to "
                         f"(S, L, p) = {(S, L, p)}") from err
    return beta, y, lam_t


def _kernel(beta: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """K (S, L, n, n) = exp(-sum_j beta_j D_j) from beta (S, L, p), flat distances (S, p, n^2)."""
    n = math.isqrt(flat.shape[-1])
    return torch.exp(-torch.bmm(beta, flat)).reshape(beta.shape[0], beta.shape[1], n, n)


def _solve(K: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """alpha = (K + n lam I)^{-1} y by Cholesky, batched over (S, L); unchecked."""
    n = K.shape[-1]
    A = K.clone()
    A.diagonal(dim1=-2, dim2=-1).add_((n * lam).reshape(1, -1, 1))
    chol, _ = torch.linalg.cholesky_ex(A)
    rhs = y.unsqueeze(1).expand(-1, K.shape[1], -1).unsqueeze(-1)
    half = torch.linalg.solve_triangular(chol, rhs, upper=False)
    return torch.linalg.solve_triangular(chol.mT, half, upper=True).squeeze(-1)


def _value(alpha: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return 0.5 * lam.reshape(1, -1) * torch.einsum("sln,sn->sl", alpha, y)


def _gradient(alpha: torch.Tensor, K: torch.Tensor, flat: torch.Tensor,
              lam: torch.Tensor) -> torch.Tensor:
    """(lam/2) sum_{ik} alpha_i alpha_k K_ik D_j[i,k], batched (S, L, p); unchecked."""
    weights = alpha.unsqueeze(-1) * alpha.unsqueeze(-2) * K               # (S, L, n, n)
    weights = (0.5 * lam.reshape(1, -1, 1, 1)) * weights
    return torch.bmm(weights.reshape(K.shape[0], K.shape[1], -1), flat.transpose(1, 2))


def _squeeze(t: torch.Tensor, squeeze_seed: bool, squeeze_lam: bool) -> torch.Tensor:
    if squeeze_lam:
        t = t.squeeze(1)
    if squeeze_seed:
        t = t.squeeze(0)
    return t


def _squeeze_flags(beta_in: torch.Tensor | float, y_in: torch.Tensor,
                   lam_in: torch.Tensor | float, dist: FeatureDistances) -> tuple[bool, bool]:
    lam_scalar = not isinstance(lam_in, torch.Tensor) or lam_in.ndim == 0
    beta_ndim = beta_in.ndim if isinstance(beta_in, torch.Tensor) else 1
    y_ndim = y_in.ndim if isinstance(y_in, torch.Tensor) else 1
    single = isinstance(dist, FeatureDistances) and dist.n_seeds == 1
    return single and beta_ndim <= 2 and y_ndim == 1, lam_scalar


# ----------------------------------------------------------------------------- public API
def kernel_matrix(beta: torch.Tensor, dist: FeatureDistances) -> torch.Tensor:
    r""":math:`K_\beta` for ``beta`` ``(p,)`` or ``(S, L, p)``; returns ``(S, L, n, n)``."""
    y0 = dist.values.new_zeros(dist.n) if isinstance(dist, FeatureDistances) else None
    beta_b, _, _ = _check_problem(beta, dist, y0, 1.0)
    return _kernel(beta_b.contiguous(), dist.flat())


def objective(beta: torch.Tensor, dist: FeatureDistances, y: torch.Tensor,
              lam: torch.Tensor | float) -> torch.Tensor:
    r""":math:`F(\beta) = \frac{\lambda}{2} y^\top (K_\beta + n\lambda I)^{-1} y` (differentiable).

    Solved with ``torch.linalg.solve`` (LU), so autograd through it is an independent
    reference for the closed-form gradient of :func:`objective_and_gradient`.
    """
    squeeze_seed, squeeze_lam = _squeeze_flags(beta, y, lam, dist)
    beta_b, y_b, lam_t = _check_problem(beta, dist, y, lam)
    n, L = dist.n, lam_t.numel()
    K = _kernel(beta_b, dist.flat())
    eye = torch.eye(n, dtype=K.dtype, device=K.device)
    A = K + n * lam_t.reshape(1, -1, 1, 1) * eye
    rhs = y_b.unsqueeze(1).expand(-1, L, -1).unsqueeze(-1)
    alpha = torch.linalg.solve(A, rhs).squeeze(-1)
    return _squeeze(_value(alpha, y_b, lam_t), squeeze_seed, squeeze_lam)


def objective_and_gradient(beta: torch.Tensor, dist: FeatureDistances, y: torch.Tensor,
                           lam: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`F(\beta)` and its closed-form gradient (envelope theorem), Cholesky-based.

    ``beta``: ``(p,)`` or ``(S, L, p)`` (broadcast); ``y``: ``(n,)`` or ``(S, n)``; ``lam``: a
    number or a 1-D tensor of ``L`` values. Returns ``F`` of shape ``(S, L)`` and the gradient
    ``(S, L, p)``, with the seed axis dropped for a single data set and the lambda axis dropped
    for a scalar ``lam``.
    """
    squeeze_seed, squeeze_lam = _squeeze_flags(beta, y, lam, dist)
    beta_b, y_b, lam_t = _check_problem(beta, dist, y, lam)
    K = _kernel(beta_b.contiguous(), dist.flat())
    alpha = _solve(K, y_b, lam_t)
    value = _value(alpha, y_b, lam_t)
    grad = _gradient(alpha, K, dist.flat(), lam_t)
    return (_squeeze(value, squeeze_seed, squeeze_lam), _squeeze(grad, squeeze_seed, squeeze_lam))


def ridge_primal_value(K: torch.Tensor, y: torch.Tensor, coef: torch.Tensor,
                       lam: float) -> torch.Tensor:
    r"""The inner objective :math:`\|y - Kc\|^2/(2n) + \lambda c^\top K c/2` at ``coef``.

    Evaluated directly from its definition (no solve), so that the value of a minimiser found
    by another solver (e.g. scikit-learn's ``KernelRidge``) can be compared with :math:`F`.
    """
    K = as_tensor("K", K)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K: expected a square matrix, got shape {tuple(K.shape)}")
    y = as_tensor("y", y, device=K.device)
    coef = as_tensor("coef", coef, device=K.device)
    check_same_dtype(K=K, y=y, coef=coef)
    for name, vec in (("y", y), ("coef", coef)):
        if vec.shape != (K.shape[0],):
            raise ValueError(f"{name}: expected shape ({K.shape[0]},), got {tuple(vec.shape)}")
    lam = check_positive("lam", lam)
    fit = K @ coef
    n = K.shape[0]
    return 0.5 / n * (y - fit).square().sum() + 0.5 * lam * coef @ fit


def _single_fit(beta, dist, y, lam):
    lam = check_positive("lam", lam)
    beta_b, y_b, lam_t = _check_problem(beta, dist, y, lam)
    if dist.n_seeds != 1:
        raise ValueError(f"dist: expected a single data set, got {dist.n_seeds} seeds")
    K = _kernel(beta_b.contiguous(), dist.flat())
    return K[0, 0], _solve(K, y_b, lam_t)[0, 0], lam


def expected_noise_slope(beta: torch.Tensor, dist: FeatureDistances, y: torch.Tensor,
                         lam: float, moment: float) -> torch.Tensor:
    r"""Mean of :math:`\partial_j F` over redraws of a column :math:`j` with :math:`\beta_j = 0`.

    At :math:`\beta_j = 0` the fit does not depend on column :math:`j`, so averaging the
    gradient over an independent redraw of that column gives

    .. math::

       \frac{\lambda}{2} c_q \sum_{i \ne k} \alpha_i \alpha_k K_{ik}
       = \frac{\lambda}{2} c_q (\alpha^\top K \alpha - \|\alpha\|^2),

    where :math:`c_q = E|X_{ij} - X_{kj}|^q` is ``moment``. Single data set, scalar ``lam``.
    """
    check_positive("moment", moment)
    K, alpha, lam = _single_fit(beta, dist, y, lam)
    return 0.5 * lam * moment * (alpha @ K @ alpha - alpha @ alpha)


def noise_slope_samples(beta: torch.Tensor, dist: FeatureDistances, y: torch.Tensor,
                        lam: float, columns: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    r""":math:`\partial_j F` at ``beta`` for each redrawn column of ``columns`` (shape ``(R, n)``).

    The coordinate :math:`j` is an extra feature with :math:`\beta_j = 0`: the fit is that of
    ``beta`` on ``dist`` and the gradient is
    :math:`\frac{\lambda}{2}\sum_{ik}\alpha_i\alpha_k K_{ik} |c_i - c_k|^q` for each column
    :math:`c`, with the ``q`` of ``dist``. Returns shape ``(R,)``.
    """
    chunk = check_positive_int("chunk", chunk)
    K, alpha, lam = _single_fit(beta, dist, y, lam)
    columns = as_tensor("columns", columns, device=dist.values.device)
    check_same_dtype(dist=dist.values, columns=columns)
    if columns.ndim != 2 or columns.shape[1] != dist.n:
        raise ValueError(f"columns: expected shape (R, {dist.n}), got {tuple(columns.shape)}")
    check_finite("columns", columns)
    weights = 0.5 * lam * alpha.unsqueeze(-1) * alpha.unsqueeze(-2) * K
    if dist.q == 2.0:
        # sum_ik W_ik (c_i - c_k)^2 = 2 sum_i c_i^2 (W 1)_i - 2 c^T W c  (W symmetric): O(R n^2)
        quadratic = ((columns @ weights) * columns).sum(-1)
        return 2 * (columns.square() @ weights.sum(-1)) - 2 * quadratic
    weights = weights.reshape(-1)
    out = []
    for start in range(0, columns.shape[0], chunk):
        block = columns[start:start + chunk]
        pair = (block.unsqueeze(-1) - block.unsqueeze(-2)).abs()
        pair = pair if dist.q == 1.0 else pair.pow(dist.q)
        out.append(pair.reshape(block.shape[0], -1) @ weights)
    return torch.cat(out)


def abs_pair_form(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_{i,k} a_i a_k |x_i - x_k|` over the last axis in :math:`O(n \log n)` (sorting).

    With :math:`x` sorted, :math:`\sum_{i,k} = 2\sum_i a_i \sum_{k < i} a_k (x_i - x_k)`.
    """
    a = as_tensor("a", a)
    x = as_tensor("x", x)
    if a.shape != x.shape or a.ndim < 1:
        raise ValueError(f"a and x: expected equal shapes with >= 1 axis, got "
                         f"{tuple(a.shape)} and {tuple(x.shape)}")
    check_same_dtype(a=a, x=x)
    order = torch.argsort(x, dim=-1)
    xs = torch.gather(x, -1, order)
    a_s = torch.gather(a, -1, order)
    mass_before = torch.cumsum(a_s, dim=-1) - a_s
    moment_before = torch.cumsum(a_s * xs, dim=-1) - a_s * xs
    return 2 * (a_s * (xs * mass_before - moment_before)).sum(-1)


def gradient_at_zero(X: torch.Tensor, y: torch.Tensor, lam: float, q: float) -> torch.Tensor:
    r""":math:`\nabla F(0)` for ``X`` ``(..., n, p)`` and ``y`` ``(..., n)``; ``q`` is 1 or 2.

    At :math:`\beta = 0`, :math:`K = \mathbf 1\mathbf 1^\top` and (Sherman-Morrison)
    :math:`\alpha = (y - \bar y/(1+\lambda))/(n\lambda)`, so
    :math:`\partial_j F(0) = \frac{\lambda}{2} \sum_{ik}\alpha_i\alpha_k|x_{ij}-x_{kj}|^q`:
    :math:`O(n\log n)` per feature for :math:`q = 1` (:func:`abs_pair_form`) and :math:`O(n)`
    for :math:`q = 2` (moments). Works for :math:`n` in the thousands.
    """
    X = as_tensor("X", X)
    y = as_tensor("y", y)
    if X.ndim < 2 or y.shape != X.shape[:-1]:
        raise ValueError(f"X and y: expected shapes (..., n, p) and (..., n), got "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    if not X.is_floating_point():
        raise ValueError(f"X: expected a floating-point tensor, got {X.dtype}")
    check_same_dtype(X=X, y=y)
    check_finite("X", X)
    check_finite("y", y)
    lam = check_positive("lam", lam)
    if q not in (1, 2):
        raise ValueError(f"q: expected 1 or 2, got {q!r}")
    n = X.shape[-2]
    alpha = (y - y.mean(-1, keepdim=True) / (1 + lam)) / (n * lam)
    if q == 2:
        total = alpha.sum(-1, keepdim=True)
        first = torch.einsum("...n,...np->...p", alpha, X)
        second = torch.einsum("...n,...np->...p", alpha, X.square())
        form = 2 * total * second - 2 * first.square()
    else:
        Xt = X.transpose(-1, -2)                       # (..., p, n)
        form = abs_pair_form(alpha.unsqueeze(-2).expand_as(Xt), Xt)
    return 0.5 * lam * form


# ----------------------------------------------------------------------------- algorithm
@dataclass
class PGDResult:
    r"""Output of :func:`projected_gradient_descent`; batch shapes ``(S, L)``.

    ``first_zero[..., j]`` is the first iteration after which ``beta_j == 0`` (0 if it started
    at zero, -1 if it never reached zero); ``reentered[..., j]`` is True if a coordinate left
    zero again after reaching it. ``path`` (optional) has shape ``(T + 1, S, L, p)``.
    """

    beta: torch.Tensor
    value: torch.Tensor
    gradient: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor  # stopped by the tolerance (not by a failed line search)
    step: torch.Tensor
    first_zero: torch.Tensor
    reentered: torch.Tensor
    path: torch.Tensor | None


def projected_gradient_descent(beta0: torch.Tensor | float, dist: FeatureDistances,
                               y: torch.Tensor, lam: torch.Tensor | float, *,
                               step: float = 0.1, shrink: float = 0.5, armijo: float = 1e-3,
                               grow: float = 2.0, tol: float = 1e-3, max_iter: int = 2000,
                               max_backtracks: int = 40, record_path: bool = False) -> PGDResult:
    r"""Projected gradient descent on :math:`\beta \ge 0` with Armijo backtracking, batched.

    Each batch element ``(seed, lambda)`` keeps its own step size: a trial step starts at
    ``min(grow * previous, ...)`` (``step`` at the first iteration) and is multiplied by
    ``shrink`` until :math:`F(\beta^+) \le F(\beta) - a\|\beta^+ - \beta\|^2/\eta` (``a = armijo``),
    with :math:`\beta^+ = \max(\beta - \eta\nabla F(\beta), 0)`. An element stops when
    :math:`\|\beta^+ - \beta\|/\eta < \texttt{tol}` (the norm of the projected gradient mapping).
    Zeros come from the projection ``clamp(min=0)`` only.

    ``beta0``: a number (every coordinate) or a tensor broadcastable to ``(S, L, p)``.
    Results always carry the full ``(S, L, ...)`` batch shape.
    """
    if isinstance(beta0, (int, float)) and not isinstance(beta0, bool):
        check_positive("beta0", beta0, allow_zero=True)
    beta, y_b, lam_t = _check_problem(beta0, dist, y, lam)
    step = check_positive("step", step)
    shrink = check_positive("shrink", shrink)
    if shrink >= 1:
        raise ValueError(f"shrink: expected 0 < shrink < 1, got {shrink}")
    armijo = check_positive("armijo", armijo)
    if armijo >= 1:
        raise ValueError(f"armijo: expected 0 < armijo < 1, got {armijo}")
    grow = check_positive("grow", grow)
    if grow < 1:
        raise ValueError(f"grow: expected >= 1, got {grow}")
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    max_backtracks = check_positive_int("max_backtracks", max_backtracks)
    return _pgd(beta.contiguous().clone(), dist, y_b, lam_t, step, shrink, armijo, grow, tol,
                max_iter, max_backtracks, record_path)


class _Workspace:
    """Distances of a working set of seeds; K from a working set of features.

    A working set is a superset of what is still needed. It is rebuilt (one copy of the
    distances) only when the needed part shrinks to half of it or outgrows it, so an
    experiment copies its distances O(log S + log p) times, not once per iteration.
    """

    def __init__(self, dist: FeatureDistances) -> None:
        self.full = dist.flat()
        self.seeds = torch.arange(self.full.shape[0], device=self.full.device)
        self.flat = self.full
        self.features: torch.Tensor | None = None
        self.feature_sub: torch.Tensor | None = None

    def update_seeds(self, needed: torch.Tensor) -> bool:
        """Shrink the seed working set when ``needed`` is at most half of it; True if changed."""
        if 2 * needed.numel() > self.seeds.numel():
            return False
        self.seeds = needed
        self.flat = self.full.index_select(0, needed)
        self.features, self.feature_sub = None, None
        return True

    def kernel(self, beta: torch.Tensor) -> torch.Tensor:
        """K (S', L', n, n) from the coordinates positive somewhere in the batch (zeros add 0)."""
        p = self.flat.shape[1]
        active = torch.nonzero((beta > 0).any(dim=(0, 1))).flatten()
        if active.numel() > p // 2:
            return _kernel(beta, self.flat)
        current = self.features
        stale = (current is None or 2 * active.numel() <= current.numel()
                 or bool(torch.isin(active, current, invert=True).any()))
        if stale:
            self.features = active
            self.feature_sub = self.flat.index_select(1, active)
        return _kernel(beta.index_select(2, self.features).contiguous(), self.feature_sub)


def _pgd(beta: torch.Tensor, dist: FeatureDistances, y: torch.Tensor, lam: torch.Tensor,
         step: float, shrink: float, armijo: float, grow: float, tol: float, max_iter: int,
         max_backtracks: int, record_path: bool) -> PGDResult:
    S, L, p = beta.shape
    work = _Workspace(dist)
    K = work.kernel(beta)
    alpha = _solve(K, y, lam)
    state = dict(beta=beta, value=_value(alpha, y, lam), alpha=alpha, K=K,
                 grad=_gradient(alpha, K, work.flat, lam),
                 eta=torch.full((S, L), step / grow, dtype=beta.dtype, device=beta.device),
                 first_try=torch.ones(S, L, dtype=torch.bool, device=beta.device),
                 done=torch.zeros(S, L, dtype=torch.bool, device=beta.device))
    stalled_any = torch.zeros_like(state["done"])
    n_iter = torch.zeros(S, L, dtype=torch.long, device=beta.device)
    first_zero = torch.where(beta == 0, 0, -1)
    reentered = torch.zeros_like(beta, dtype=torch.bool)
    path = [beta.clone()] if record_path else None
    lams = torch.arange(L, device=beta.device)
    ws = dict(state)   # working state: rows work.seeds, columns lams
    for it in range(1, max_iter + 1):
        done = state["done"]
        needed_seeds = torch.nonzero(~done.all(dim=1)).flatten()
        needed_lams = torch.nonzero(~done.index_select(0, needed_seeds).all(dim=0)).flatten()
        if work.update_seeds(needed_seeds) or needed_lams.numel() < lams.numel():
            lams = needed_lams
            ws = {k: v.index_select(0, work.seeds).index_select(1, lams)
                  for k, v in state.items()}
        yy, lam_w = y.index_select(0, work.seeds), lam.index_select(0, lams)
        b, d = ws["beta"], ws["done"]
        b_new, v_new, a_new, K_new, e_new, stalled, first = _armijo_step(
            work, b, ws["value"], ws["alpha"], ws["K"], ws["grad"], ws["eta"],
            ws["first_try"], d, yy, lam_w, shrink, armijo, grow, max_backtracks)
        moved = ~d & ~stalled
        mapping = (b_new - b).norm(dim=-1) / e_new
        ws = dict(beta=b_new, value=v_new, alpha=a_new, K=K_new,
                  grad=_gradient(a_new, K_new, work.flat, lam_w), eta=e_new, first_try=first,
                  done=d | stalled | (moved & (mapping < tol)))
        rows, cols = work.seeds[:, None], lams[None, :]
        for key in state:
            state[key][rows, cols] = ws[key]
        stalled_any[rows, cols] |= stalled
        n_iter[rows, cols] = torch.where(moved, it, n_iter[rows, cols])
        zero = state["beta"] == 0
        first_zero = torch.where((first_zero < 0) & zero, it, first_zero)
        reentered = reentered | ((first_zero >= 0) & ~zero)
        if record_path:
            path.append(state["beta"].clone())
        if bool(state["done"].all()):
            break
    return PGDResult(beta=state["beta"], value=state["value"], gradient=state["grad"],
                     n_iter=n_iter, converged=state["done"] & ~stalled_any, step=state["eta"],
                     first_zero=first_zero, reentered=reentered,
                     path=torch.stack(path) if record_path else None)


def _armijo_step(work: _Workspace, beta: torch.Tensor, value: torch.Tensor,
                 alpha: torch.Tensor, K: torch.Tensor, grad: torch.Tensor, eta: torch.Tensor,
                 first_try: torch.Tensor, done: torch.Tensor, y: torch.Tensor,
                 lam: torch.Tensor, shrink: float, armijo: float, grow: float,
                 max_backtracks: int):
    """One projected step with backtracking for every element not yet done; unchecked.

    The trial step grows by ``grow`` only after a step that was accepted at its first trial.
    """
    trial = torch.where(~done & first_try, eta * grow, eta)
    pending = ~done
    accepted_first = torch.zeros_like(done)
    new_beta, new_value, new_alpha, new_K = beta.clone(), value.clone(), alpha.clone(), K.clone()
    for attempt in range(max_backtracks):
        cand = (beta - trial.unsqueeze(-1) * grad).clamp(min=0.0)
        cand = torch.where(pending.unsqueeze(-1), cand, beta)
        K_c = work.kernel(cand)
        alpha_c = _solve(K_c, y, lam)
        value_c = _value(alpha_c, y, lam)
        move = (cand - beta).square().sum(-1)
        ok = pending & (value_c <= value - armijo * move / trial)
        if attempt == 0:
            accepted_first = ok
        new_beta = torch.where(ok.unsqueeze(-1), cand, new_beta)
        new_value = torch.where(ok, value_c, new_value)
        new_alpha = torch.where(ok.unsqueeze(-1), alpha_c, new_alpha)
        new_K = torch.where(ok[..., None, None], K_c, new_K)
        eta = torch.where(ok, trial, eta)
        pending = pending & ~ok
        if not bool(pending.any()):
            break
        trial = torch.where(pending, trial * shrink, trial)
    first_try = torch.where(done, first_try, accepted_first)
    return new_beta, new_value, new_alpha, new_K, eta, pending, first_try


def selected_support(beta: torch.Tensor) -> torch.Tensor:
    r"""Boolean mask of the selected features: exactly the coordinates with ``beta > 0``."""
    beta = as_tensor("beta", beta)
    check_finite("beta", beta)
    if bool((beta < 0).any()):
        raise ValueError(f"beta: expected entries >= 0, min is {float(beta.min())}")
    return beta > 0


def selection_summary(beta: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per run: ``exact`` (support equals ``truth``), ``false_pos`` and ``missed`` counts."""
    support = selected_support(beta)
    truth = torch.as_tensor(truth, device=support.device)
    if truth.dtype != torch.bool or truth.shape != support.shape[-1:]:
        raise ValueError(f"truth: expected a boolean mask of shape ({support.shape[-1]},), "
                         f"got {tuple(truth.shape)} {truth.dtype}")
    return {"exact": (support == truth).all(-1),
            "false_pos": (support & ~truth).sum(-1),
            "missed": (~support & truth).sum(-1)}


def baseline_supports(X, y, k: int, random_state: int = 0) -> dict[str, tuple]:
    """Selected feature masks and CPU seconds of scikit-learn selectors on one data set.

    ``lasso_cv``: the non-zero coefficients of ``LassoCV(cv=5)``; ``forest_top_k``: the ``k``
    largest impurity importances of a 100-tree ``RandomForestRegressor``; ``mutual_info_top_k``:
    the ``k`` largest ``mutual_info_regression`` scores. Returns ``{name: (mask, seconds)}``.
    """
    import time

    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.feature_selection import mutual_info_regression
    from sklearn.linear_model import LassoCV

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X and y: expected shapes (n, p) and (n,), got {X.shape} and {y.shape}")
    k = check_positive_int("k", k)
    if k > X.shape[1]:
        raise ValueError(f"k: expected at most p={X.shape[1]}, got {k}")

    def top_k(scores):
        mask = np.zeros(X.shape[1], dtype=bool)
        mask[np.argsort(-scores, kind="stable")[:k]] = True
        return mask

    out = {}
    start = time.process_time()
    lasso = LassoCV(cv=5, random_state=random_state).fit(X, y)
    out["lasso_cv"] = (lasso.coef_ != 0, time.process_time() - start)
    start = time.process_time()
    forest = RandomForestRegressor(n_estimators=100, random_state=random_state).fit(X, y)
    out["forest_top_k"] = (top_k(forest.feature_importances_), time.process_time() - start)
    start = time.process_time()
    mi = mutual_info_regression(X, y, random_state=random_state)
    out["mutual_info_top_k"] = (top_k(mi), time.process_time() - start)
    return out


def compare_selectors(X, y, truth, lam: float, k: int, *, device=None,
                      tol: float = 1e-4, max_iter: int = 300) -> dict[str, dict[str, float]]:
    r"""Self-penalized PGD (:math:`\ell_1` kernel, :math:`\beta^0 = 0.02`) against the
    :func:`baseline_supports` selectors on ``S`` data sets ``X`` (S, n, p), ``y`` (S, n).

    ``truth``: boolean mask (p,) of the true features. Returns, per method (``"pgd"``,
    ``"lasso_cv"``, ``"forest_top_k"``, ``"mutual_info_top_k"``), the exact-recovery rate,
    the mean selected size, the mean number of false positives, the mean number of missed
    true features, and the CPU seconds per data set as a ratio to PGD's.
    """
    import time

    import numpy as np

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 3 or y.shape != X.shape[:2]:
        raise ValueError(f"X and y: expected shapes (S, n, p) and (S, n), got {X.shape} "
                         f"and {y.shape}")
    truth = np.asarray(truth)
    if truth.dtype != bool or truth.shape != (X.shape[2],):
        raise ValueError(f"truth: expected a boolean mask of shape ({X.shape[2]},), "
                         f"got {truth.shape} {truth.dtype}")
    check_positive("lam", lam)
    k = check_positive_int("k", k)
    device = torch.device("cpu") if device is None else torch.device(device)
    start = time.process_time()
    dist = feature_distances(torch.as_tensor(X, device=device), 1)
    res = projected_gradient_descent(0.02, dist, torch.as_tensor(y, device=device), lam,
                                     tol=tol, max_iter=max_iter)
    if device.type == "cuda":
        torch.cuda.synchronize()
    masks = {"pgd": (res.beta[:, 0] > 0).cpu().numpy()}
    cpu = {"pgd": (time.process_time() - start) / X.shape[0]}
    baselines = [baseline_supports(X[s], y[s], k=k, random_state=s) for s in range(X.shape[0])]
    for name in ("lasso_cv", "forest_top_k", "mutual_info_top_k"):
        masks[name] = np.array([b[name][0] for b in baselines])
        cpu[name] = float(np.mean([b[name][1] for b in baselines]))
    return {name: {"exact": float((m == truth).all(1).mean()),
                   "size": float(m.sum(1).mean()),
                   "false_pos": float((m & ~truth).sum(1).mean()),
                   "missed": float((~m & truth).sum(1).mean()),
                   "cpu_ratio": cpu[name] / cpu["pgd"]}
            for name, m in masks.items()}


def interaction_benchmark(seeds, n: int = 200, n_noise: int = 25,
                          noise: float = 0.3) -> tuple:
    r"""A selection benchmark with a pure interaction: :math:`y = 2x_1x_2 + x_3 +
    \text{noise}\cdot\varepsilon`, features uniform on :math:`[-1, 1]` plus ``n_noise`` pure
    noise features, all standardised per data set (numpy generator ``100 + seed``).

    :math:`x_1` and :math:`x_2` have no main effect (each is uncorrelated with ``y``).
    Returns ``X`` (S, n, 3 + n_noise), ``y`` (S, n) and the true mask.
    """
    import numpy as np

    n = check_positive_int("n", n)
    n_noise = check_positive_int("n_noise", n_noise)
    check_positive("noise", noise, allow_zero=True)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    p = 3 + n_noise
    Xs, ys = [], []
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        x = rng.uniform(-1.0, 1.0, (n, p))
        ys.append(2 * x[:, 0] * x[:, 1] + x[:, 2] + noise * rng.standard_normal(n))
        Xs.append(x)
    X, y = np.stack(Xs), np.stack(ys)
    X = (X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)
    y = (y - y.mean(1, keepdims=True)) / y.std(1, keepdims=True)
    return X, y, np.arange(p) < 3


# ----------------------------------------------------------------------------- selection studies
#: model name -> (base seed, noise sd); data set ``s`` comes from a generator seeded base + s.
SELECTION_MODELS = {"additive": (2024, 0.1), "interaction": (2025, 1.0)}


def selection_data(model: str, seeds, n: int = 200, p: int = 50, *,
                   dtype: torch.dtype = torch.float64) -> tuple:
    r"""Synthetic data sets of the chapter's selection studies; features 1 and 2 matter.

    ``"additive"``: :math:`y = \sin X_1 + X_2^2 + 0.1\,\varepsilon`; ``"interaction"``:
    :math:`y = X_1X_2 + \varepsilon` (no main effect), with :math:`X \sim N(0, I_p)` and
    :math:`y` centred per data set. Data set ``s`` comes from its own generator (seed
    ``base + s``, see ``SELECTION_MODELS``), so any subset of ``seeds`` is reproducible however
    the seeds are batched. Returns ``X`` (S, n, p), ``y`` (S, n) on the CPU and the true mask (p,).
    """
    if model not in SELECTION_MODELS:
        raise ValueError(f"model: expected one of {sorted(SELECTION_MODELS)}, got {model!r}")
    n = check_positive_int("n", n)
    p = check_positive_int("p", p, minimum=2)
    seeds = [int(s) for s in seeds]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds: expected at least one seed, all >= 0, got {seeds}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    base, noise = SELECTION_MODELS[model]
    Xs, ys = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(base + seed)
        X = torch.randn(n, p, generator=gen, dtype=torch.float64)
        eps = torch.randn(n, generator=gen, dtype=torch.float64)
        if model == "additive":
            y = torch.sin(X[:, 0]) + X[:, 1] ** 2 + noise * eps
        else:
            y = X[:, 0] * X[:, 1] + noise * eps
        Xs.append(X)
        ys.append(y - y.mean())
    truth = torch.zeros(p, dtype=torch.bool)
    truth[:2] = True
    return torch.stack(Xs).to(dtype), torch.stack(ys).to(dtype), truth


def selection_study(model: str, seeds, q: float, lams, *, n: int = 200, p: int = 50,
                    beta0: float = 0.02, tol: float = 1e-6, max_iter: int = 6000,
                    chunk: int = 20, device=None) -> dict[str, torch.Tensor]:
    r"""Self-penalized PGD on the :func:`selection_data` sets ``seeds``, every :math:`\lambda`
    in ``lams`` at once, ``chunk`` data sets per tensor program.

    Returns per data set and :math:`\lambda` (CPU tensors of shape (S, L)): ``exact``,
    ``false_pos``, ``missed`` (from :func:`selection_summary`), ``converged`` and ``n_iter``.
    Results do not depend on ``chunk`` beyond floating-point rounding (each data set's run is
    independent; the batch only shares the loop).
    """
    chunk = check_positive_int("chunk", chunk)
    lam_t = as_tensor("lams", lams, dtype=torch.float64).reshape(-1)
    check_finite("lams", lam_t)
    if lam_t.numel() == 0 or bool((lam_t <= 0).any()):
        raise ValueError(f"lams: expected positive values, got {lam_t.tolist()}")
    _check_q(q)
    X_all, y_all, truth = selection_data(model, seeds, n, p)
    device = torch.device("cpu") if device is None else torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, X_all.shape[0], chunk):
        X, y = X_all[start:start + chunk].to(device), y_all[start:start + chunk].to(device)
        res = projected_gradient_descent(beta0, feature_distances(X, q), y, lam_t.to(device),
                                         tol=tol, max_iter=max_iter)
        out = selection_summary(res.beta, truth.to(device))
        out |= {"converged": res.converged, "n_iter": res.n_iter}
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(value) for key, value in parts.items()}
