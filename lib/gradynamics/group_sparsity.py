r"""Implicit regularization toward group sparsity: diagonally grouped linear networks (DGLNN).

The setting of Li, Nguyen, Hegde and Wong (ICLR 2023), as their released code runs it.

**Data.** :math:`y = X w^\star + \varepsilon`, :math:`X \in \mathbb{R}^{n \times p}` Rademacher,
Gaussian, or (for the analysis) orthogonal with :math:`X^\top X / n = I`;
:math:`\varepsilon \sim \mathcal N(0, \sigma^2 I_n)`. Groups are contiguous blocks of size
:math:`b`, :math:`L = p / b` of them. A validation set of :math:`\lfloor n/3 \rfloor` rows is
drawn from the same law.

**Model.** :math:`w_l = u_l^2 v_l` with one scalar :math:`u_l` and one vector
:math:`v_l \in \mathbb{R}^b` per group, stored as an ``(B, L)`` tensor ``u`` and an
``(B, L, b)`` tensor ``V`` (``B`` independent problems in one batch). Loss (mean-scaled):

.. math::

    \mathcal L(u, V) = \frac1n \Big\|y - \sum_l u_l^2 X_l v_l\Big\|_2^2, \qquad
    g = \nabla_w \mathcal L = \tfrac2n X^\top (X w - y),

    \nabla_{v_l}\mathcal L = u_l^2 g_l, \qquad
    \nabla_{u_l}\mathcal L = 2 u_l \langle v_l, g_l\rangle .

**Algorithm 1** (GD with weight normalisation), in its overflow-free :math:`w`-space form:

.. math::

    v_l \leftarrow \frac{w_l - g_l}{\|w_l - g_l\|}
    \;\Big(= \frac{v_l - u_l^{-4}\nabla_{v_l}\mathcal L}{\|\cdot\|}\Big), \qquad
    u_l \leftarrow u_l\,(1 - 2\eta\langle v_l, g_l\rangle).

**Algorithm 2** runs Algorithm 1, then switches to plain GD with step :math:`\eta` on both
:math:`u` and :math:`v` (each :math:`v_l` still renormalised). Two switch rules are available:
the authors' tolerance rule ``switch_tol`` (switch once
:math:`\max_l |u_l^t - u_l^{t-1}| / |u_l^{t-1} + 10^{-12}| < \tau`, with :math:`u^{-1} := 1`), and
the fixed epoch ``switch_epoch`` used by their comparison notebook.

**Plain GD** (``"gd"``) runs gradient descent on :math:`(u, V)` without normalisation; it
conserves :math:`u_l^2 - 2\|v_l\|^2` along the gradient flow.

**DLNN** (the size-one-group baseline of the earlier paper): :math:`w = a^{\odot 2} - c^{\odot 2}`
by plain GD from :math:`a = c = \alpha\mathbf 1` (or :math:`w = a^{\odot 2}` with
``only_positive``).

Baselines: scikit-learn's ``lasso_path`` (lasso) and a batched proximal-gradient (FISTA) group
lasso, tested against skglm's ``GroupLasso``. The module-per-group, float32
:func:`conventional_reference_train` re-implements the authors' loop style for timing and as an
autograd-based cross-check of the batched trainers.

**Orthogonal design** (:math:`X^\top X/n = I`, reconstructed analysis): the gate follows the
logistic map :math:`u_l \leftarrow u_l(1 + 4\eta(\|\hat w_l\| - u_l^2))` with
:math:`\hat w = X^\top y/n` (:func:`correlation`), so :math:`\log u_l^2` first grows with slope
:math:`8\eta\|\hat w_l\|` (:func:`early_growth_slopes`) and group :math:`l` enters near
:func:`logistic_entry_epoch` (measured by :func:`entry_epochs`).

Errors: ``est_err`` is the **sum-scaled** :math:`\|w - w^\star\|_2^2` (the comparison notebook's
convention); divide by :math:`p` for the mean-scaled value that ``group_model.py`` logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gradynamics.runtime import DEFAULT_DTYPE
from gradynamics.validation import (
    as_tensor,
    check_finite,
    check_positive,
    check_positive_int,
    check_same_dtype,
)

__all__ = [
    "DESIGNS",
    "GroupData",
    "TrainResult",
    "conserved_quantity",
    "conventional_reference_train",
    "correlation",
    "dglnn_gradients",
    "dglnn_loss",
    "dglnn_weights",
    "early_growth_slopes",
    "entry_epochs",
    "group_lasso_path",
    "group_lasso_skglm",
    "group_lasso_validation",
    "group_norms",
    "init_dglnn",
    "lasso_path_validation",
    "least_squares_error",
    "logistic_entry_epoch",
    "loss_gradient_w",
    "make_data",
    "noise_sweep_summary",
    "oracle_least_squares_error",
    "patience_stop_epoch",
    "select_by_validation",
    "support_recovered",
    "transition_sample_size",
    "train_dglnn",
    "train_dlnn",
]

DESIGNS = ("rademacher", "gaussian", "orthogonal")
ALGORITHMS = ("alg1", "alg2", "gd")


# ------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class GroupData:
    """A batch of ``B`` regression problems, zero-padded to a common number of rows.

    ``X`` (B, n_max, p), ``y`` (B, n_max), ``X_val`` (B, m_max, p), ``y_val`` (B, m_max),
    ``w_star`` (B, p), ``noise`` (B,), ``n_samples``/``n_val`` (B,) the true row counts, and
    ``grid_shape``: the batch is the product ``len(n) x len(noise) x repetitions`` in that order.
    """

    X: torch.Tensor
    y: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    w_star: torch.Tensor
    noise: torch.Tensor
    n_samples: torch.Tensor
    n_val: torch.Tensor
    group_size: int
    grid_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        # Row-vector products (w^T X^T, r^T X) run about twice as fast as batched mat-vecs on
        # the CPU, so the transposed designs are kept contiguous once.
        object.__setattr__(self, "_Xt", self.X.transpose(1, 2).contiguous())
        object.__setattr__(self, "_X_val_t", self.X_val.transpose(1, 2).contiguous())

    @property
    def batch(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[-1]

    @property
    def n_groups(self) -> int:
        return self.n_features // self.group_size

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio :math:`\\|Xw^\\star\\| / \\|\\varepsilon\\|` per problem, (B,)."""
        signal = torch.einsum("bnp,bp->bn", self.X, self.w_star)
        return signal.norm(dim=-1) / (self.y - signal).norm(dim=-1)

    def select(self, index: torch.Tensor | Sequence[int]) -> GroupData:
        """The problems ``index`` (indices may repeat) as a new batch."""
        idx = as_tensor("index", index).to(device=self.X.device)
        if idx.is_floating_point() or idx.ndim != 1 or idx.numel() == 0:
            raise ValueError(f"index: expected a non-empty 1-D integer sequence, got shape "
                             f"{tuple(idx.shape)} and dtype {idx.dtype}")
        if int(idx.min()) < -self.batch or int(idx.max()) >= self.batch:
            raise ValueError(f"index: expected entries in [0, {self.batch}), got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        idx = idx.long()
        return GroupData(self.X[idx], self.y[idx], self.X_val[idx], self.y_val[idx],
                         self.w_star[idx], self.noise[idx], self.n_samples[idx],
                         self.n_val[idx], self.group_size, (1, 1, len(idx)))

    def to(self, dtype: torch.dtype | None = None,
           device: torch.device | None = None) -> GroupData:
        """The same problems in another dtype and/or on another device."""
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(dtype=dtype or t.dtype, device=device or t.device) \
                if t.is_floating_point() else t.to(device=device or t.device)
        return GroupData(move(self.X), move(self.y), move(self.X_val), move(self.y_val),
                         move(self.w_star), move(self.noise), move(self.n_samples),
                         move(self.n_val), self.group_size, self.grid_shape)


def _design(kind: str, rows: int, p: int, generator: torch.Generator) -> torch.Tensor:
    if kind == "rademacher":
        return torch.randint(0, 2, (rows, p), generator=generator).to(torch.float64) * 2 - 1
    if kind == "gaussian":
        return torch.randn(rows, p, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(torch.randn(rows, p, generator=generator, dtype=torch.float64))
    return math.sqrt(rows) * q * torch.sign(torch.diagonal(r))  # X^T X / n = I


def make_data(n: int | Sequence[int], p: int, group_size: int, w_star: torch.Tensor,
              noise: float | Sequence[float], repetitions: int = 1, design: str = "rademacher",
              generator: torch.Generator | None = None, dtype: torch.dtype = DEFAULT_DTYPE,
              device: torch.device | None = None) -> GroupData:
    """Draw ``len(n) x len(noise) x repetitions`` problems :math:`y = Xw^\\star + \\varepsilon`.

    Data are drawn on the CPU from ``generator`` (the same numbers on every device), then moved.
    The ``"orthogonal"`` design (``n >= p``) has :math:`X^\\top X/n = I` and a Gaussian
    validation set.
    """
    n_list = [n] if isinstance(n, (int, np.integer)) and not isinstance(n, bool) else list(n)
    if not n_list:
        raise ValueError("n: expected at least one sample size")
    n_list = [check_positive_int("n", v, minimum=3) for v in n_list]
    p = check_positive_int("p", p)
    group_size = check_positive_int("group_size", group_size)
    if p % group_size:
        raise ValueError(f"group_size: expected a divisor of p={p}, got {group_size}")
    repetitions = check_positive_int("repetitions", repetitions)
    if design not in DESIGNS:
        raise ValueError(f"design: expected one of {DESIGNS}, got {design!r}")
    if design == "orthogonal" and min(n_list) < p:
        raise ValueError(f"n: the orthogonal design needs n >= p={p}, got {min(n_list)}")
    noise_list = [noise] if isinstance(noise, (int, float)) and not isinstance(noise, bool) \
        else list(noise)
    if not noise_list:
        raise ValueError("noise: expected at least one noise level")
    noise_list = [check_positive("noise", s, allow_zero=True) for s in noise_list]
    w_star = as_tensor("w_star", w_star, dtype=torch.float64, device=torch.device("cpu"))
    if w_star.shape != (p,):
        raise ValueError(f"w_star: expected shape ({p},), got {tuple(w_star.shape)}")
    check_finite("w_star", w_star)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n_max = max(n_list)
    m_max = n_max // 3
    batch = len(n_list) * len(noise_list) * repetitions
    X = torch.zeros(batch, n_max, p, dtype=torch.float64)
    X_val = torch.zeros(batch, max(m_max, 1), p, dtype=torch.float64)
    y = torch.zeros(batch, n_max, dtype=torch.float64)
    y_val = torch.zeros(batch, max(m_max, 1), dtype=torch.float64)
    sig, n_rows, m_rows = [], [], []
    k = 0
    for rows in n_list:
        m = rows // 3
        for sigma in noise_list:
            for _ in range(repetitions):
                X[k, :rows] = _design(design, rows, p, generator)
                val_kind = "gaussian" if design == "orthogonal" else design
                X_val[k, :m] = _design(val_kind, m, p, generator)
                y[k, :rows] = X[k, :rows] @ w_star + sigma * torch.randn(
                    rows, generator=generator, dtype=torch.float64)
                y_val[k, :m] = X_val[k, :m] @ w_star + sigma * torch.randn(
                    m, generator=generator, dtype=torch.float64)
                sig.append(sigma)
                n_rows.append(rows)
                m_rows.append(m)
                k += 1
    data = GroupData(X, y, X_val, y_val, w_star.expand(batch, p).clone(),
                     torch.tensor(sig, dtype=torch.float64), torch.tensor(n_rows),
                     torch.tensor(m_rows), group_size,
                     (len(n_list), len(noise_list), repetitions))
    return data.to(dtype=dtype, device=device)


def _check_data(data: GroupData) -> None:
    if not isinstance(data, GroupData):
        raise ValueError(f"data: expected a GroupData from make_data, got {type(data).__name__}")


# ------------------------------------------------------------------------- model and loss
def group_norms(w: torch.Tensor, group_size: int) -> torch.Tensor:
    """Euclidean norm of each contiguous group: ``(..., p) -> (..., p // group_size)``."""
    w = as_tensor("w", w)
    group_size = check_positive_int("group_size", group_size)
    if w.ndim < 1 or w.shape[-1] % group_size:
        raise ValueError(f"w: last axis must be a multiple of group_size={group_size}, "
                         f"got shape {tuple(w.shape)}")
    return w.reshape(*w.shape[:-1], -1, group_size).norm(dim=-1)


def init_dglnn(batch: int, n_groups: int, group_size: int, alpha: float = 1e-6,
               dtype: torch.dtype = DEFAULT_DTYPE,
               device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' initialisation: :math:`u_l = \\alpha`, :math:`v_l = \\mathbf 1/\\sqrt b`."""
    batch = check_positive_int("batch", batch)
    n_groups = check_positive_int("n_groups", n_groups)
    group_size = check_positive_int("group_size", group_size)
    alpha = check_positive("alpha", alpha)
    u = torch.full((batch, n_groups), alpha, dtype=dtype, device=device)
    V = torch.full((batch, n_groups, group_size), group_size ** -0.5, dtype=dtype, device=device)
    return u, V


def _check_uv(u: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u, V = as_tensor("u", u), as_tensor("V", V)
    if u.ndim != 2 or V.ndim != 3 or V.shape[:2] != u.shape:
        raise ValueError(f"u and V: expected shapes (B, L) and (B, L, b), got {tuple(u.shape)} "
                         f"and {tuple(V.shape)}")
    if u.dtype != V.dtype:
        raise ValueError(f"u and V: dtypes differ, {u.dtype} vs {V.dtype}")
    check_finite("u", u)
    check_finite("V", V)
    return u, V


def _weights(u: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    return (u.square().unsqueeze(-1) * V).flatten(-2)


def dglnn_weights(u: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """The linear predictor :math:`w_l = u_l^2 v_l`, shape (B, p)."""
    return _weights(*_check_uv(u, V))


def _grad_w(data: GroupData, w: torch.Tensor) -> torch.Tensor:
    residual = (w.unsqueeze(1) @ data._Xt).squeeze(1) - data.y
    scale = (2.0 / data.n_samples.to(w.dtype)).unsqueeze(-1)
    return scale * (residual.unsqueeze(1) @ data.X).squeeze(1)


def _mse(Xt: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    residual = (w.unsqueeze(1) @ Xt).squeeze(1) - y
    return residual.square().sum(-1) / rows.to(w.dtype)


def _check_w(data: GroupData, w: torch.Tensor) -> torch.Tensor:
    w = as_tensor("w", w)
    if tuple(w.shape) != (data.batch, data.n_features):
        raise ValueError(f"w: expected shape {(data.batch, data.n_features)}, "
                         f"got {tuple(w.shape)}")
    if w.dtype != data.X.dtype:
        raise ValueError(f"w: dtype {w.dtype} differs from the data's {data.X.dtype}")
    return w


def _check_model(data: GroupData, u: torch.Tensor,
                 V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(u, V)`` against the batch ``data`` (shapes and dtype), naming the argument."""
    _check_data(data)
    u, V = _check_uv(u, V)
    expected = (data.batch, data.n_groups, data.group_size)
    if tuple(V.shape) != expected:
        raise ValueError(f"V: expected shape {expected} for this data, got {tuple(V.shape)}")
    check_same_dtype(data=data.X, u=u)
    return u, V


def conserved_quantity(u: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """:math:`u_l^2 - 2\\|v_l\\|^2` per group, (B, L): constant along the gradient flow on
    :math:`(u, V)` without normalisation."""
    u, V = _check_uv(u, V)
    return u.square() - 2 * V.square().sum(-1)


def correlation(data: GroupData) -> torch.Tensor:
    """:math:`\\hat w = X^\\top y / n` per problem, (B, p): the least-squares estimate when
    :math:`X^\\top X / n = I`; its group norms :math:`\\|X_l^\\top y\\|/n` order the groups."""
    _check_data(data)
    return (data.y.unsqueeze(1) @ data.X).squeeze(1) / data.n_samples.to(data.X.dtype)[:, None]


def loss_gradient_w(data: GroupData, w: torch.Tensor) -> torch.Tensor:
    """:math:`g = \\nabla_w \\mathcal L = \\tfrac2n X^\\top(Xw - y)`, shape (B, p)."""
    _check_data(data)
    return _grad_w(data, _check_w(data, w))


def dglnn_loss(data: GroupData, u: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """The mean-scaled training loss :math:`\\frac1n\\|y - Xw\\|^2` per problem, shape (B,)."""
    u, V = _check_model(data, u, V)
    return _mse(data._Xt, data.y, data.n_samples, _weights(u, V))


def dglnn_gradients(data: GroupData, u: torch.Tensor,
                    V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form gradients :math:`(\\nabla_u \\mathcal L, \\nabla_V \\mathcal L)`,
    shapes (B, L) and (B, L, b)."""
    u, V = _check_model(data, u, V)
    g = _grad_w(data, _weights(u, V)).reshape(V.shape)
    return 2 * u * (V * g).sum(-1), u.square().unsqueeze(-1) * g


# ------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """Curves (epochs + 1, B) of a batched run, the final weights, and optional histories.

    ``est_err`` is the sum-scaled :math:`\\|w_t - w^\\star\\|^2`; ``val_mse`` is mean-scaled;
    ``best_w`` holds the weights at the validation-selected epoch. ``u_history``
    (epochs + 1, B, L) and ``w_history`` (epochs + 1, B, p) are kept when requested;
    ``switch_epoch`` (B,) is the first small-step epoch of Algorithm 2 (-1: never).
    """

    est_err: torch.Tensor
    val_mse: torch.Tensor
    w_final: torch.Tensor
    best_w: torch.Tensor
    u_history: torch.Tensor | None = None
    w_history: torch.Tensor | None = None
    switch_epoch: torch.Tensor | None = None

    def best_epoch(self) -> torch.Tensor:
        """Epoch of minimum validation error per problem (early stopping), (B,)."""
        return _nan_argmin(self.val_mse)

    def best_error(self) -> torch.Tensor:
        """Estimation error at the validation-selected epoch, (B,)."""
        return self.est_err.gather(0, self.best_epoch().unsqueeze(0)).squeeze(0)


def _nan_argmin(curves: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(curves), curves, torch.inf).argmin(0)


class _Recorder:
    def __init__(self, data: GroupData, keep_u: bool, keep_w: bool) -> None:
        self.data, self.keep_u, self.keep_w = data, keep_u, keep_w
        self.est, self.val, self.us, self.ws = [], [], [], []
        self.best_val = torch.full((data.batch,), torch.inf, dtype=data.X.dtype,
                                   device=data.X.device)
        self.best_w = torch.zeros_like(data.w_star)

    def __call__(self, w: torch.Tensor, u: torch.Tensor | None = None) -> None:
        d = self.data
        val = _mse(d._X_val_t, d.y_val, d.n_val, w)
        self.est.append((w - d.w_star).square().sum(-1))
        self.val.append(val)
        better = val < self.best_val  # strict: the first epoch of the minimum is kept
        self.best_val = torch.where(better, val, self.best_val)
        self.best_w = torch.where(better.unsqueeze(-1), w, self.best_w)
        if self.keep_u and u is not None:
            self.us.append(u.clone())
        if self.keep_w:
            self.ws.append(w.clone())

    def result(self, w: torch.Tensor, switch: torch.Tensor | None = None) -> TrainResult:
        return TrainResult(torch.stack(self.est), torch.stack(self.val), w, self.best_w,
                           torch.stack(self.us) if self.us else None,
                           torch.stack(self.ws) if self.ws else None, switch)


def _normalize(V: torch.Tensor) -> torch.Tensor:
    return V / V.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(V.dtype).tiny)


def train_dglnn(data: GroupData, algorithm: str, lr: float, epochs: int, alpha: float = 1e-6,
                switch_tol: float | None = None, switch_epoch: int | None = None,
                init: tuple[torch.Tensor, torch.Tensor] | None = None, keep_u: bool = False,
                keep_w: bool = False) -> TrainResult:
    """Train a batch of DGLNNs by ``"alg1"``, ``"alg2"`` (give exactly one of ``switch_tol`` /
    ``switch_epoch``) or plain ``"gd"`` (no normalisation); record curves every epoch."""
    _check_data(data)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
    lr = check_positive("lr", lr)
    epochs = check_positive_int("epochs", epochs)
    if algorithm == "alg2":
        if (switch_tol is None) == (switch_epoch is None):
            raise ValueError("switch_tol/switch_epoch: Algorithm 2 needs exactly one of them")
        if switch_tol is not None:
            switch_tol = check_positive("switch_tol", switch_tol)
        if switch_epoch is not None:
            switch_epoch = check_positive_int("switch_epoch", switch_epoch, minimum=0)
    elif switch_tol is not None or switch_epoch is not None:
        raise ValueError(f"switch_tol/switch_epoch: only Algorithm 2 switches, got {algorithm!r}")
    dtype, device = data.X.dtype, data.X.device
    if init is None:
        u, V = init_dglnn(data.batch, data.n_groups, data.group_size, alpha, dtype, device)
    else:
        u, V = _check_uv(*init)
        if tuple(V.shape) != (data.batch, data.n_groups, data.group_size):
            raise ValueError(f"init: expected V of shape "
                             f"{(data.batch, data.n_groups, data.group_size)}, "
                             f"got {tuple(V.shape)}")
        u, V = u.to(dtype=dtype, device=device).clone(), V.to(dtype=dtype, device=device).clone()
    record = _Recorder(data, keep_u, keep_w)
    switched = torch.zeros(data.batch, dtype=torch.bool, device=device)
    switch_at = torch.full((data.batch,), -1, dtype=torch.long, device=device)
    prev_u = torch.ones_like(u)
    w = _weights(u, V)
    record(w, u)
    for epoch in range(epochs):
        g = _grad_w(data, w).reshape(V.shape)
        inner = (V * g).sum(-1)
        if algorithm == "alg1" or (algorithm == "alg2" and not bool(switched.all())):
            V1 = _normalize(w.reshape(V.shape) - g)      # Algorithm 1, w-space form
            u1 = u * (1 - 2 * lr * inner)
        if algorithm != "alg1":
            V2 = V - lr * u.square().unsqueeze(-1) * g   # plain GD on (u, V)
            u2 = u - lr * 2 * u * inner
            if algorithm == "alg2":
                V2 = _normalize(V2)
        if algorithm == "alg1":
            u, V = u1, V1
        elif algorithm == "gd":
            u, V = u2, V2
        elif bool(switched.all()):
            u, V = u2, V2
        else:
            u = torch.where(switched.unsqueeze(-1), u2, u1)
            V = torch.where(switched[:, None, None], V2, V1)
            if switch_tol is not None:
                rel = ((u - prev_u).abs() / (prev_u + 1e-12).abs()).amax(-1)
                prev_u = u
                now = (~switched) & (rel < switch_tol)
            else:
                now = (~switched) & torch.tensor(epoch + 1 >= switch_epoch, device=device)
            switch_at = torch.where(now, epoch + 1, switch_at)
            switched = switched | now
        w = _weights(u, V)
        record(w, u)
    return record.result(w, switch_at if algorithm == "alg2" else None)


def train_dlnn(data: GroupData, lr: float, epochs: int, alpha: float = 1e-6,
               only_positive: bool = False) -> TrainResult:
    """Plain GD on the diagonal linear network :math:`w = a^{\\odot2} - c^{\\odot2}` (or
    :math:`a^{\\odot2}` with ``only_positive``) from :math:`a = c = \\alpha\\mathbf 1`."""
    _check_data(data)
    lr = check_positive("lr", lr)
    epochs = check_positive_int("epochs", epochs)
    alpha = check_positive("alpha", alpha)
    a = torch.full_like(data.w_star, alpha)
    c = torch.zeros_like(a) if only_positive else torch.full_like(a, alpha)
    record = _Recorder(data, False, False)
    w = a.square() - c.square()
    record(w)
    for _ in range(epochs):
        g = _grad_w(data, w)
        a = a - lr * 2 * a * g
        if not only_positive:
            c = c + lr * 2 * c * g
        w = a.square() - c.square()
        record(w)
    return record.result(w)


def select_by_validation(result: TrainResult) -> tuple[torch.Tensor, torch.Tensor]:
    """(epoch, estimation error) at the minimum validation error of each problem."""
    if not isinstance(result, TrainResult):
        raise ValueError(f"result: expected a TrainResult, got {type(result).__name__}")
    return result.best_epoch(), result.best_error()


def patience_stop_epoch(curve: torch.Tensor, patience: int = 10) -> torch.Tensor:
    """Epoch at which a patience rule on ``curve`` (epochs, B) fires: the first epoch after
    ``patience`` consecutive epochs without a strict improvement of the best value (the
    authors' ``EarlyStopping``); ``epochs - 1`` when it never fires. Shape (B,)."""
    curve = as_tensor("curve", curve)
    if curve.ndim not in (1, 2) or curve.shape[0] < 1:
        raise ValueError(f"curve: expected shape (epochs,) or (epochs, B), got "
                         f"{tuple(curve.shape)}")
    patience = check_positive_int("patience", patience)
    c = curve.reshape(curve.shape[0], -1)
    best = torch.cummin(c, dim=0).values
    improved = torch.ones_like(c, dtype=torch.bool)
    improved[1:] = best[1:] < best[:-1]
    epochs = torch.arange(c.shape[0], device=c.device).unsqueeze(-1).expand_as(c)
    last_improvement = torch.cummax(torch.where(improved, epochs, 0), dim=0).values
    fired = (epochs - last_improvement) >= patience
    first = torch.where(fired, epochs, c.shape[0] - 1).amin(0)
    return first.reshape(curve.shape[1:])


# ------------------------------------------------------- the orthogonal-design analysis
def logistic_entry_epoch(hat_norms: torch.Tensor, alpha: float, lr: float) -> torch.Tensor:
    """Predicted epoch at which a group enters on an orthogonal design,
    :math:`t_l = \\log(\\|\\hat w_l\\|/\\alpha^2) / (8\\eta\\|\\hat w_l\\|)`: the half-time of
    the logistic law :math:`\\dot x = 8\\eta x(\\|\\hat w_l\\| - x)` for :math:`x = u_l^2`,
    :math:`x(0) = \\alpha^2 \\ll \\|\\hat w_l\\|`."""
    hat_norms = as_tensor("hat_norms", hat_norms)
    check_finite("hat_norms", hat_norms)
    if not hat_norms.is_floating_point() or bool((hat_norms <= 0).any()):
        raise ValueError("hat_norms: expected positive floating-point group norms")
    alpha = check_positive("alpha", alpha)
    lr = check_positive("lr", lr)
    return torch.log(hat_norms / alpha**2) / (8 * lr * hat_norms)


def entry_epochs(norms: torch.Tensor, targets: torch.Tensor,
                 fraction: float = 0.5) -> torch.Tensor:
    """First epoch at which ``norms`` (epochs + 1, ...) exceeds ``fraction * targets`` (...);
    -1 where it never does. Shape: ``norms.shape[1:]``."""
    norms, targets = as_tensor("norms", norms), as_tensor("targets", targets)
    if norms.ndim < 1 or tuple(norms.shape[1:]) != tuple(targets.shape):
        raise ValueError(f"norms: expected shape (epochs + 1, *{tuple(targets.shape)}), got "
                         f"{tuple(norms.shape)}")
    fraction = check_positive("fraction", fraction)
    above = norms > fraction * targets
    return torch.where(above.any(0), above.to(torch.int8).argmax(0), -1)


def early_growth_slopes(u_history: torch.Tensor, targets: torch.Tensor, below: float = 0.01,
                        skip: int = 5) -> torch.Tensor:
    """Least-squares slope of :math:`\\log u_l^2(t)` against :math:`t` over the early phase:
    the epochs :math:`t \\ge 1` with :math:`u_l^2 <` ``below`` :math:`\\times` ``targets``,
    leaving out the first ``skip`` of them (the direction is still turning). ``u_history``
    (epochs + 1, ...), ``targets`` (...) -> slopes (...); NaN where fewer than 2 epochs remain."""
    u_history, targets = as_tensor("u_history", u_history), as_tensor("targets", targets)
    if u_history.ndim < 1 or tuple(u_history.shape[1:]) != tuple(targets.shape):
        raise ValueError(f"u_history: expected shape (epochs + 1, *{tuple(targets.shape)}), "
                         f"got {tuple(u_history.shape)}")
    below = check_positive("below", below)
    skip = check_positive_int("skip", skip, minimum=0)
    log_x = u_history[1:].square().log()
    mask = u_history[1:].square() < below * targets
    mask = mask & (mask.cumsum(0) > skip)
    t = torch.arange(1, u_history.shape[0], dtype=log_x.dtype, device=log_x.device)
    t = t.reshape(-1, *([1] * targets.ndim))
    weight = mask.to(log_x.dtype)
    count = weight.sum(0)
    t_mean = (weight * t).sum(0) / count
    y_mean = (weight * torch.where(mask, log_x, 0)).sum(0) / count
    dt = torch.where(mask, t - t_mean, 0)
    slope = (dt * torch.where(mask, log_x - y_mean, 0)).sum(0) / dt.square().sum(0)
    return torch.where(count >= 2, slope, torch.nan)


def transition_sample_size(sample_sizes: Sequence[float], probability: Sequence[float],
                           level: float = 0.5) -> float:
    """The sample size at which a recovery curve first reaches ``level`` (linear interpolation
    between grid points); ``inf`` when it never does."""
    n = np.asarray(sample_sizes, dtype=np.float64)
    prob = np.asarray(probability, dtype=np.float64)
    if n.ndim != 1 or n.size < 2 or np.any(np.diff(n) <= 0):
        raise ValueError(f"sample_sizes: expected an increasing 1-D grid, got {n.tolist()}")
    if prob.shape != n.shape or not np.all(np.isfinite(prob)):
        raise ValueError(f"probability: expected {n.size} finite values, got shape {prob.shape}")
    level = check_positive("level", level)
    hit = np.flatnonzero(prob >= level)
    if hit.size == 0:
        return math.inf
    k = int(hit[0])
    if k == 0:
        return float(n[0])
    frac = (level - prob[k - 1]) / (prob[k] - prob[k - 1])
    return float(n[k - 1] + frac * (n[k] - n[k - 1]))


def noise_sweep_summary(noise_levels: Sequence[float], errors: dict[str, torch.Tensor],
                        reference: str = "DGLNN", fit_levels: int = 5) -> dict:
    """Summary of a noise sweep whose errors (levels x repetitions, flattened level-major as
    :func:`make_data` orders them) are given per method: the median error per level, the
    least-squares slope of log median error against :math:`\\log\\sigma` over the first
    ``fit_levels`` levels, and, for every other method, the fraction of problems on which
    ``reference`` has the smaller error and whether its median is smaller at every level."""
    sigma = np.asarray(noise_levels, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size < 2 or np.any(sigma <= 0):
        raise ValueError(f"noise_levels: expected >= 2 positive levels, got {sigma.tolist()}")
    if not isinstance(errors, dict) or reference not in errors:
        raise ValueError(f"errors: expected a dict of per-method errors containing "
                         f"{reference!r}")
    fit_levels = check_positive_int("fit_levels", fit_levels, minimum=2)
    if fit_levels > sigma.size:
        raise ValueError(f"fit_levels: expected <= {sigma.size}, got {fit_levels}")
    table = {}
    for name, e in errors.items():
        e = as_tensor(f"errors[{name!r}]", e).detach().cpu().to(torch.float64)
        if e.ndim != 1 or e.numel() % sigma.size:
            raise ValueError(f"errors[{name!r}]: expected a multiple of {sigma.size} values, "
                             f"got shape {tuple(e.shape)}")
        table[name] = e.reshape(sigma.size, -1)
    medians = {name: e.median(-1).values.numpy() for name, e in table.items()}
    slopes = {name: float(np.polyfit(np.log(sigma[:fit_levels]),
                                     np.log(m[:fit_levels]), 1)[0])
              for name, m in medians.items()}
    others = [name for name in table if name != reference]
    return {"median_error": {k: m.tolist() for k, m in medians.items()},
            "loglog_slope_low_noise": slopes,
            "fraction_reference_better": {k: float((table[reference] < table[k]).double()
                                                   .mean()) for k in others},
            "median_below_at_every_level": {k: bool(np.all(medians[reference] < medians[k]))
                                            for k in others}}


# ------------------------------------------------------------------- reference estimators
def _rows(data: GroupData, k: int) -> tuple[np.ndarray, ...]:
    n, m = int(data.n_samples[k]), int(data.n_val[k])
    to_np = lambda t: t.detach().cpu().to(torch.float64).numpy()  # noqa: E731
    return (to_np(data.X[k, :n]), to_np(data.y[k, :n]), to_np(data.X_val[k, :m]),
            to_np(data.y_val[k, :m]))


def oracle_least_squares_error(data: GroupData) -> torch.Tensor:
    """:math:`\\|\\hat w_S - w^\\star_S\\|^2` of least squares on the true support, (B,)."""
    _check_data(data)
    if not bool((data.w_star != 0).any(-1).all()):
        raise ValueError("data: the oracle needs a nonzero w_star in every problem")
    out = []
    for k in range(data.batch):
        X, y, _, _ = _rows(data, k)
        support = np.flatnonzero(data.w_star[k].cpu().numpy())
        w_hat = np.linalg.lstsq(X[:, support], y, rcond=None)[0]
        out.append(float(np.sum((w_hat - data.w_star[k].cpu().numpy()[support]) ** 2)))
    return torch.tensor(out, dtype=torch.float64)


def least_squares_error(data: GroupData) -> torch.Tensor:
    """:math:`\\|\\hat w - w^\\star\\|^2` of full least squares (needs n >= p), (B,)."""
    _check_data(data)
    if int(data.n_samples.min()) < data.n_features:
        raise ValueError("data: full least squares needs n >= p for every problem")
    out = []
    for k in range(data.batch):
        X, y, _, _ = _rows(data, k)
        w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
        out.append(float(np.sum((w_hat - data.w_star[k].cpu().numpy()) ** 2)))
    return torch.tensor(out, dtype=torch.float64)


def lasso_path_validation(data: GroupData, n_alphas: int = 15, eps: float = 1e-2,
                          tol: float = 1e-7) -> torch.Tensor:
    """scikit-learn ``lasso_path`` per problem on the grid
    :math:`\\alpha_{\\max}\\cdot` geomspace(1, ``eps``, ``n_alphas``); the coefficients of least
    validation MSE, shape (B, p).

    ``tol`` is scikit-learn's duality-gap tolerance, which it scales by :math:`\\|y\\|^2`: its
    default 1e-4 lets warm-started small penalties stop before moving (tested against
    ``Lasso`` fitted to convergence)."""
    from sklearn.linear_model import lasso_path

    _check_data(data)
    n_alphas = check_positive_int("n_alphas", n_alphas, minimum=2)
    eps = check_positive("eps", eps)
    tol = check_positive("tol", tol)
    out = np.zeros((data.batch, data.n_features))
    for k in range(data.batch):
        X, y, X_val, y_val = _rows(data, k)
        alpha_max = np.abs(X.T @ y).max() / X.shape[0]
        alphas = alpha_max * np.geomspace(1.0, eps, n_alphas)
        _, coefs, _ = lasso_path(X, y, alphas=alphas, max_iter=100_000, tol=tol)
        val = ((X_val @ coefs - y_val[:, None]) ** 2).mean(0)
        out[k] = coefs[:, int(np.argmin(val))]
    return torch.as_tensor(out, dtype=data.X.dtype, device=data.X.device)


def group_lasso_validation(data: GroupData, n_penalties: int = 10, eps: float = 1e-2,
                           iterations: int = 100, return_penalty: bool = False
                           ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`group_lasso_path` on the grid :math:`\\lambda_{\\max}\\cdot` geomspace(1, ``eps``,
    ``n_penalties``) per problem, :math:`\\lambda_{\\max} = \\max_l \\|X_l^\\top y\\|/n`;
    the coefficients of least validation MSE, shape (B, p), and with ``return_penalty`` also
    the chosen penalties (B,)."""
    _check_data(data)
    n_penalties = check_positive_int("n_penalties", n_penalties, minimum=2)
    eps = check_positive("eps", eps)
    lam_max = group_norms(correlation(data), data.group_size).amax(-1)
    grid = torch.logspace(0, math.log10(eps), n_penalties, dtype=lam_max.dtype,
                          device=lam_max.device)
    path = group_lasso_path(data, grid.unsqueeze(-1) * lam_max, iterations)
    val = torch.stack([_mse(data._X_val_t, data.y_val, data.n_val, coef) for coef in path])
    best = _nan_argmin(val)
    batch = torch.arange(data.batch, device=val.device)
    chosen = path[best, batch]
    return (chosen, grid[best] * lam_max) if return_penalty else chosen


def group_lasso_path(data: GroupData, penalties: torch.Tensor | Sequence[float],
                     iterations: int = 200) -> torch.Tensor:
    """Batched FISTA for :math:`\\frac1{2n}\\|y - Xw\\|^2 + \\lambda\\sum_l\\|w_l\\|` along a
    decreasing penalty path (warm starts). ``penalties`` (K,) or (K, B) -> coefficients (K, B, p).

    The objective is skglm's ``GroupLasso`` with unit weights (tested against it).
    """
    _check_data(data)
    lam = as_tensor("penalties", penalties, dtype=data.X.dtype, device=data.X.device)
    if lam.ndim == 1:
        lam = lam.unsqueeze(-1).expand(-1, data.batch)
    if lam.ndim != 2 or lam.shape[1] != data.batch or lam.shape[0] < 1:
        raise ValueError(f"penalties: expected shape (K,) or (K, {data.batch}), "
                         f"got {tuple(lam.shape)}")
    check_finite("penalties", lam)
    if bool((lam < 0).any()):
        raise ValueError("penalties: expected >= 0")
    iterations = check_positive_int("iterations", iterations)
    n = data.n_samples.to(data.X.dtype).unsqueeze(-1)
    lipschitz = torch.linalg.matrix_norm(data.X, ord=2).square().unsqueeze(-1) / n
    step = 1.0 / lipschitz
    b = data.group_size
    w = torch.zeros_like(data.w_star)
    path = []
    for k in range(lam.shape[0]):
        threshold = (step * lam[k].unsqueeze(-1)).unsqueeze(-1)
        z, w_prev, t = w, w, 1.0
        for _ in range(iterations):
            grad = _grad_w(data, z) / 2  # gradient of the 1/(2n)-scaled loss
            x = (z - step * grad).reshape(data.batch, -1, b)
            norms = x.norm(dim=-1, keepdim=True)
            shrink = (1 - threshold / norms.clamp_min(torch.finfo(x.dtype).tiny)).clamp_min(0)
            w = (shrink * x).flatten(-2)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = w + ((t - 1) / t_next) * (w - w_prev)
            w_prev, t = w, t_next
        path.append(w)
    return torch.stack(path)


def group_lasso_skglm(X: np.ndarray, y: np.ndarray, group_size: int, penalty: float,
                      tol: float = 1e-10) -> np.ndarray:
    """skglm's ``GroupLasso`` (no intercept) on one problem: the peer of :func:`group_lasso_path`.

    The first call compiles skglm's numba kernels (about ten seconds of CPU).
    """
    from skglm import GroupLasso

    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X: expected a numeric (n, p) array, got shape {X.shape}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"y: expected a numeric array of shape ({X.shape[0]},), got {y.shape}")
    check_finite("X", X)
    check_finite("y", y)
    group_size = check_positive_int("group_size", group_size)
    if X.shape[1] % group_size:
        raise ValueError(f"group_size: expected a divisor of p={X.shape[1]}, got {group_size}")
    penalty = check_positive("penalty", penalty)
    tol = check_positive("tol", tol)
    model = GroupLasso(groups=group_size, alpha=penalty, fit_intercept=False, tol=tol,
                       max_iter=1000, max_epochs=100_000)
    return model.fit(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)).coef_


def support_recovered(w: torch.Tensor, w_star: torch.Tensor, group_size: int,
                      threshold: float | None = None) -> torch.Tensor:
    """Exact group-support recovery: the groups with :math:`\\|w_l\\| >` ``threshold`` are the
    true groups. Default threshold: half the smallest true group norm. Returns bools (B,)."""
    w, w_star = as_tensor("w", w), as_tensor("w_star", w_star)
    if w.shape != w_star.shape:
        raise ValueError(f"w and w_star: shapes differ, {tuple(w.shape)} vs "
                         f"{tuple(w_star.shape)}")
    true_norms = group_norms(w_star, group_size)
    truth = true_norms > 0
    if not bool(truth.any(-1).all()):
        raise ValueError("w_star: expected at least one nonzero group in every problem")
    if threshold is None:
        threshold = 0.5 * float(true_norms[truth].min())
    threshold = check_positive("threshold", threshold)
    found = group_norms(w.to(w_star.dtype), group_size) > threshold
    found = found & torch.isfinite(w).reshape(*w.shape[:-1], -1, group_size).all(-1)
    return (found == truth).all(-1)


# ------------------------------------------------------------- the authors' loop style
class _GroupModule(torch.nn.Module):
    """One ``Linear(b, 1)`` per group (the directions) and one ``Linear(L, 1)`` (the scales)."""

    def __init__(self, n_groups: int, group_size: int, alpha: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.group_size = group_size
        self.first = torch.nn.ModuleList(
            torch.nn.Linear(group_size, 1, bias=False, dtype=dtype) for _ in range(n_groups))
        self.second = torch.nn.Linear(n_groups, 1, bias=False, dtype=dtype)
        with torch.no_grad():
            for layer in self.first:
                layer.weight.fill_(group_size ** -0.5)
            self.second.weight.fill_(alpha)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        blocks = X.split(self.group_size, dim=-1)
        pairs = zip(self.first, blocks, strict=True)
        hidden = torch.cat([layer(block) for layer, block in pairs], dim=-1)
        return hidden @ self.second.weight.squeeze(0).square()

    def weights(self) -> torch.Tensor:
        u2 = self.second.weight.detach().squeeze(0).square()
        return torch.cat([u2[k] * layer.weight.detach().squeeze(0)
                          for k, layer in enumerate(self.first)])


def conventional_reference_train(X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor,
                                 y_val: torch.Tensor, w_star: torch.Tensor, group_size: int,
                                 lr: float, epochs: int, alpha: float = 1e-6,
                                 switch_tol: float | None = None,
                                 switch_epoch: int | None = None,
                                 dtype: torch.dtype = torch.float32) -> dict:
    """The conventional reference: one problem, one module per group, autograd, ``torch.optim.SGD``
    with the per-group learning rate :math:`1/u_l^4` on the directions (Algorithm 1) and a switch
    to step ``lr`` everywhere (Algorithm 2), float32 by default -- the authors' loop style.
    Returns ``{"est_err", "val_mse", "w"}`` (curves of length epochs + 1)."""
    lr = check_positive("lr", lr)
    epochs = check_positive_int("epochs", epochs)
    group_size = check_positive_int("group_size", group_size)
    alpha = check_positive("alpha", alpha)
    if switch_tol is not None and switch_epoch is not None:
        raise ValueError("switch_tol/switch_epoch: give at most one of them")
    if switch_tol is not None:
        switch_tol = check_positive("switch_tol", switch_tol)
    if switch_epoch is not None:
        switch_epoch = check_positive_int("switch_epoch", switch_epoch, minimum=0)
    tensors = [as_tensor(name, t, dtype=dtype) for name, t in
               (("X", X), ("y", y), ("X_val", X_val), ("y_val", y_val), ("w_star", w_star))]
    X, y, X_val, y_val, w_star = tensors
    if X.ndim != 2 or X.shape[1] % group_size:
        raise ValueError(f"X: expected (n, p) with p a multiple of {group_size}, "
                         f"got {tuple(X.shape)}")
    p = X.shape[1]
    for name, t, shape in (("y", y, (X.shape[0],)), ("X_val", X_val, (X_val.shape[0], p)),
                           ("y_val", y_val, (X_val.shape[0],)), ("w_star", w_star, (p,))):
        if t.ndim != len(shape) or tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
        check_finite(name, t)
    check_finite("X", X)
    model = _GroupModule(X.shape[1] // group_size, group_size, alpha, dtype)
    groups = [{"params": layer.parameters(), "lr": 1.0} for layer in model.first]
    optimizer = torch.optim.SGD(groups + [{"params": model.second.parameters(), "lr": lr}])
    mse = torch.nn.MSELoss()
    est, val = [float((model.weights() - w_star).square().sum())], []
    with torch.no_grad():
        val.append(float(mse(model(X_val), y_val)))
    prev_u, switched = torch.ones(X.shape[1] // group_size, dtype=dtype), False
    for epoch in range(epochs):
        u = model.second.weight.detach().squeeze(0).clone()
        for k, group in enumerate(optimizer.param_groups[:-1]):
            group["lr"] = lr if switched else float(1.0 / u[k] ** 4)
        optimizer.zero_grad()
        mse(model(X), y).backward()
        optimizer.step()
        with torch.no_grad():
            for layer in model.first:
                layer.weight /= layer.weight.norm()
            if not switched and (switch_tol is not None or switch_epoch is not None):
                u_new = model.second.weight.squeeze(0)
                if switch_tol is not None:
                    switched = bool(((u_new - prev_u).abs() / (prev_u + 1e-12).abs()).max()
                                    < switch_tol)
                    prev_u = u_new.clone()
                else:
                    switched = epoch + 1 >= switch_epoch
            val.append(float(mse(model(X_val), y_val)))
        est.append(float((model.weights() - w_star).square().sum()))
    return {"est_err": est, "val_mse": val, "w": model.weights()}
