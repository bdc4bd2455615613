r"""Deep equilibrium models with an implicit layer that is linear in its state (Kawaguchi, 2021).

**Model.** With a weight matrix :math:`A \in \mathbb{R}^{m\times m}`, a normaliser
:math:`\sigma` (by default the *column-wise* softmax, :func:`column_softmax`), a factor
:math:`\gamma \in (0, 1)` and features :math:`\Phi = [\phi(x_1), \dots, \phi(x_n)] \in
\mathbb{R}^{m \times n}`, the hidden state is the fixed point

.. math::

    Z = \gamma\,\sigma(A)\,Z + \Phi
    \quad\Longleftrightarrow\quad
    Z = U\Phi, \qquad U = (I - \gamma\sigma(A))^{-1},

and the output is :math:`\hat Y = BZ = W\Phi` with the end-to-end matrix :math:`W = BU`.
Because :math:`\sigma(A)` is column-stochastic, :math:`\|\gamma\sigma(A)\|_1 = \gamma < 1`: the
iteration :math:`Z \leftarrow \gamma\sigma(A)Z + \Phi` contracts in the :math:`\ell_1` norm.

**Implicit gradient.** For a loss :math:`\mathcal L(Z)` with :math:`G_Z = \partial\mathcal
L/\partial Z`, the adjoint :math:`\Lambda` solves :math:`(I - \gamma\sigma(A))^\top \Lambda = G_Z`
and

.. math::

    \frac{\partial\mathcal L}{\partial\Phi} = \Lambda,\qquad
    \frac{\partial\mathcal L}{\partial\sigma} = \gamma\,\Lambda Z^\top,\qquad
    \frac{\partial\mathcal L}{\partial A} = J_\sigma^\ast\Big[\frac{\partial\mathcal L}
    {\partial\sigma}\Big].

:func:`deq_layer` implements this as a ``torch.autograd.Function`` (forward: linear solve,
fixed-point iteration or Anderson acceleration; backward: the adjoint solve), so the layer
drops into any torch model. ``backward="unrolled"`` instead backpropagates through the
iterations (the baseline the implicit backward replaces).

**Training** (square loss :math:`\tfrac12\|B U \Phi - Y\|_F^2`): :func:`loss_and_gradients`
gives the closed-form gradients, :func:`train_gd` runs full-batch gradient descent batched over
instances and logs the loss, :math:`\sigma_{\min}(U_t)`, :math:`\|\sigma(A_t)\|_2` and the rate
bound :math:`2\eta\lambda^+_{\min}(\Phi\Phi^\top)\sigma_{\min}(U_t)^2`;
:func:`flow_velocity` is the induced preconditioned flow of :math:`W`,

.. math::

    \dot W = -\nabla U^\top U - \gamma^2 W\,J_\sigma J_\sigma^\ast[W^\top \nabla U^\top]\,U,
    \qquad \nabla = (W\Phi - Y)\Phi^\top .

Array layout follows the paper: samples are *columns* (``Phi`` has shape ``(..., m, n)``);
leading axes batch independent instances.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gradynamics.runtime import synchronize
from gradynamics.validation import (
    as_tensor,
    check_class_labels,
    check_finite,
    check_ndim,
    check_positive,
    check_positive_int,
    check_same_device,
    check_same_dtype,
)

__all__ = [
    "BackwardMemory",
    "ConvergenceSummary",
    "DEQClassifier",
    "SolverResult",
    "TrainingLog",
    "anderson_solve",
    "column_softmax",
    "convergence_summary",
    "deq_layer",
    "end_to_end_matrix",
    "fixed_point_iterates",
    "fixed_point_solve",
    "fit_log_rate",
    "flow_velocity",
    "lambda_min_plus",
    "linear_gd",
    "loss_and_gradients",
    "measure_backward_memory",
    "min_distance_interpolant",
    "optimal_loss",
    "output_weights_for",
    "random_relu_features",
    "solve_linear",
    "stable_step_size",
    "standardized_features",
    "torchdeq_fixed_point",
    "train_classifier",
    "train_gd",
]

SOLVERS = ("linear", "fixed_point", "anderson")
BACKWARDS = ("implicit", "unrolled")


# ----------------------------------------------------------------------------- validation
def _float_tensor(name: str, value, ndim_min: int = 2) -> torch.Tensor:
    tensor = as_tensor(name, value)
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    if tensor.ndim < ndim_min:
        raise ValueError(f"{name}: expected at least {ndim_min} dimensions, "
                         f"got shape {tuple(tensor.shape)}")
    check_finite(name, tensor)
    return tensor


def _square(name: str, value) -> torch.Tensor:
    tensor = _float_tensor(name, value)
    if tensor.shape[-1] != tensor.shape[-2]:
        raise ValueError(f"{name}: expected square matrices (..., m, m), "
                         f"got shape {tuple(tensor.shape)}")
    return tensor


def _gamma(gamma, like: torch.Tensor) -> torch.Tensor:
    """gamma as a tensor broadcastable to (..., 1, 1), every entry in (0, 1)."""
    if isinstance(gamma, bool):
        raise ValueError(f"gamma: expected a number in (0, 1), got {gamma!r}")
    if isinstance(gamma, (int, float)):
        if not math.isfinite(gamma) or not 0 < gamma < 1:
            raise ValueError(f"gamma: expected a number in (0, 1), got {gamma}")
        return torch.tensor(float(gamma), dtype=like.dtype, device=like.device)
    tensor = as_tensor("gamma", gamma)
    if not tensor.is_floating_point():
        raise ValueError(f"gamma: expected floating-point values in (0, 1), got {tensor.dtype}")
    check_finite("gamma", tensor)
    if bool(((tensor <= 0) | (tensor >= 1)).any()):
        raise ValueError("gamma: expected every entry in (0, 1)")
    tensor = tensor.to(dtype=like.dtype, device=like.device)
    return tensor.reshape(*tensor.shape, 1, 1) if tensor.ndim > 0 else tensor


def _same_dtype_device(**tensors: torch.Tensor) -> None:
    check_same_dtype(**tensors)
    check_same_device(**tensors)


def _check_features(A: torch.Tensor, Phi: torch.Tensor) -> None:
    if Phi.shape[-2] != A.shape[-1]:
        raise ValueError(f"Phi: expected {A.shape[-1]} rows (the width m of A), "
                         f"got shape {tuple(Phi.shape)}")
    _same_dtype_device(A=A, Phi=Phi)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- the layer
def column_softmax(A: torch.Tensor) -> torch.Tensor:
    """Column-wise softmax sigma(A)_ij = exp(A_ij) / sum_k exp(A_kj); columns sum to 1."""
    A = _float_tensor("A", A)
    return _column_softmax(A)


def _column_softmax(A: torch.Tensor) -> torch.Tensor:
    return torch.softmax(A, dim=-2)


def _column_softmax_vjp(S: torch.Tensor, grad_S: torch.Tensor) -> torch.Tensor:
    """J_sigma^* applied to grad_S: column j is (diag(s_j) - s_j s_j^T) grad_S[:, j]."""
    return S * (grad_S - (S * grad_S).sum(dim=-2, keepdim=True))


def _eye_like(S: torch.Tensor) -> torch.Tensor:
    return torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)


def solve_linear(A: torch.Tensor, Phi: torch.Tensor, gamma: float | torch.Tensor,
                 normalizer: Callable[[torch.Tensor], torch.Tensor] = column_softmax
                 ) -> torch.Tensor:
    """The exact fixed point Z = (I - gamma sigma(A))^{-1} Phi by a dense linear solve."""
    A, Phi = _square("A", A), _float_tensor("Phi", Phi)
    _check_features(A, Phi)
    g = _gamma(gamma, A)
    S = normalizer(A)
    return torch.linalg.solve(_eye_like(S) - g * S, Phi)


def end_to_end_matrix(A: torch.Tensor, B: torch.Tensor,
                      gamma: float | torch.Tensor) -> torch.Tensor:
    """W = B (I - gamma sigma(A))^{-1}: the shallow linear model the DEQ computes."""
    A, B = _square("A", A), _float_tensor("B", B)
    if B.shape[-1] != A.shape[-1]:
        raise ValueError(f"B: expected {A.shape[-1]} columns, got shape {tuple(B.shape)}")
    _same_dtype_device(A=A, B=B)
    g = _gamma(gamma, A)
    S = _column_softmax(A)
    M = _eye_like(S) - g * S
    return torch.linalg.solve(M.transpose(-1, -2), B.transpose(-1, -2)).transpose(-1, -2)


def output_weights_for(W: torch.Tensor, A: torch.Tensor,
                       gamma: float | torch.Tensor) -> torch.Tensor:
    """The output layer B = W (I - gamma sigma(A)) that makes the DEQ compute x -> W phi(x)."""
    A, W = _square("A", A), _float_tensor("W", W)
    if W.shape[-1] != A.shape[-1]:
        raise ValueError(f"W: expected {A.shape[-1]} columns, got shape {tuple(W.shape)}")
    _same_dtype_device(A=A, W=W)
    g = _gamma(gamma, A)
    S = _column_softmax(A)
    return W @ (_eye_like(S) - g * S)


def fixed_point_iterates(A: torch.Tensor, Phi: torch.Tensor, gamma: float | torch.Tensor,
                         n_iter: int, z0: torch.Tensor | None = None) -> torch.Tensor:
    """All iterates z^(0..n_iter) of z <- gamma sigma(A) z + Phi, stacked on a new first axis."""
    A, Phi = _square("A", A), _float_tensor("Phi", Phi)
    _check_features(A, Phi)
    n_iter = check_positive_int("n_iter", n_iter)
    g = _gamma(gamma, A)
    z = torch.zeros_like(Phi) if z0 is None else _float_tensor("z0", z0)
    if z0 is not None and tuple(z.shape) != tuple(Phi.shape):
        raise ValueError(f"z0: expected shape {tuple(Phi.shape)}, got {tuple(z.shape)}")
    GS = g * _column_softmax(A)
    iterates = [z]
    for _ in range(n_iter):
        z = GS @ z + Phi
        iterates.append(z)
    return torch.stack(iterates)


@dataclass(frozen=True)
class SolverResult:
    """A fixed point ``z``, the relative residual after each iteration, and the iterations used."""

    z: torch.Tensor
    residuals: torch.Tensor
    n_iter: int


def _relative_residual(fz: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    diff = (fz - z).flatten(start_dim=-2).norm(dim=-1)
    scale = fz.flatten(start_dim=-2).norm(dim=-1).clamp_min(1e-300)
    return (diff / scale).max()


def _check_solver_args(fn, z0, max_iter, tol) -> tuple[torch.Tensor, int, float]:
    if not callable(fn):
        raise ValueError("fn: expected a callable z -> f(z)")
    z0 = _float_tensor("z0", z0)
    max_iter = check_positive_int("max_iter", max_iter)
    tol = check_positive("tol", tol, allow_zero=True)
    return z0, max_iter, tol


def fixed_point_solve(fn: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                      max_iter: int = 500, tol: float = 1e-12) -> SolverResult:
    """Plain fixed-point iteration z <- fn(z) until the relative residual is below ``tol``."""
    z0, max_iter, tol = _check_solver_args(fn, z0, max_iter, tol)
    return _fixed_point(fn, z0, max_iter, tol)


def _fixed_point(fn, z, max_iter: int, tol: float) -> SolverResult:
    residuals = []
    for k in range(max_iter):
        fz = fn(z)
        residuals.append(_relative_residual(fz, z))
        z = fz
        if tol > 0 and float(residuals[-1]) < tol:
            return SolverResult(z, torch.stack(residuals), k + 1)
    return SolverResult(z, torch.stack(residuals), max_iter)


def anderson_solve(fn: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor,
                   memory: int = 5, max_iter: int = 200, tol: float = 1e-12,
                   regularization: float = 1e-10) -> SolverResult:
    """Anderson acceleration of z <- fn(z), batched over the leading axes of ``z0``.

    Each instance (the last two axes) mixes its last ``memory`` iterates with the weights
    alpha that minimise ||sum_i alpha_i (f(x_i) - x_i)||^2 subject to sum_i alpha_i = 1
    (Tikhonov term ``regularization`` times the largest residual Gram entry).
    """
    z0, max_iter, tol = _check_solver_args(fn, z0, max_iter, tol)
    memory = check_positive_int("memory", memory, minimum=2)
    check_positive("regularization", regularization, allow_zero=True)
    return _anderson(fn, z0, memory, max_iter, tol, regularization)


def _anderson(fn, z0, memory: int, max_iter: int, tol: float, lam: float) -> SolverResult:
    shape = z0.shape
    batch = int(torch.tensor(shape[:-2]).prod()) if len(shape) > 2 else 1
    size = shape[-2] * shape[-1]

    def f(x: torch.Tensor) -> torch.Tensor:
        return fn(x.reshape(shape)).reshape(batch, size)

    X = torch.zeros(batch, memory, size, dtype=z0.dtype, device=z0.device)
    F = torch.zeros_like(X)
    X[:, 0] = z0.reshape(batch, size)
    F[:, 0] = f(X[:, 0])
    X[:, 1] = F[:, 0]
    F[:, 1] = f(X[:, 1])
    residuals = [_relative_residual(F[:, 0:1], X[:, 0:1]), _relative_residual(F[:, 1:2], X[:, 1:2])]
    last = 1
    for k in range(2, max_iter):
        if tol > 0 and float(residuals[-1]) < tol:
            return SolverResult(F[:, last].reshape(shape), torch.stack(residuals), k)
        n = min(k, memory)
        G = F[:, :n] - X[:, :n]
        gram = G @ G.transpose(1, 2)
        scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-300)
        H = torch.zeros(batch, n + 1, n + 1, dtype=z0.dtype, device=z0.device)
        H[:, 0, 1:] = H[:, 1:, 0] = 1
        H[:, 1:, 1:] = gram + (lam * scale)[:, None, None] * torch.eye(
            n, dtype=z0.dtype, device=z0.device)
        rhs = torch.zeros(batch, n + 1, 1, dtype=z0.dtype, device=z0.device)
        rhs[:, 0] = 1
        alpha = torch.linalg.solve(H, rhs)[:, 1:, 0]
        last = k % memory
        X[:, last] = (alpha[:, None] @ F[:, :n])[:, 0]
        F[:, last] = f(X[:, last])
        residuals.append(_relative_residual(F[:, last:last + 1], X[:, last:last + 1]))
    return SolverResult(F[:, last].reshape(shape), torch.stack(residuals), max_iter)


def _solve(S: torch.Tensor, rhs: torch.Tensor, gamma: torch.Tensor, solver: str,
           max_iter: int, tol: float) -> torch.Tensor:
    """Solve z = gamma S z + rhs with the named solver (no validation: a hot path)."""
    if solver == "linear":
        return torch.linalg.solve(_eye_like(S) - gamma * S, rhs)
    GS = gamma * S

    def fn(z: torch.Tensor) -> torch.Tensor:
        return GS @ z + rhs

    z0 = torch.zeros(torch.broadcast_shapes(GS.shape[:-2], rhs.shape[:-2]) + rhs.shape[-2:],
                     dtype=rhs.dtype, device=rhs.device)
    if solver == "fixed_point":
        return _fixed_point(fn, z0, max_iter, tol).z
    return _anderson(fn, z0, 5, max_iter, tol, 1e-10).z


class _ImplicitFixedPoint(torch.autograd.Function):
    """Forward: solve Z = gamma sigma(A) Z + Phi. Backward: the adjoint (IFT) solve."""

    @staticmethod
    def forward(ctx, A, Phi, gamma, normalizer, solver, max_iter, tol):  # noqa: D401
        S = normalizer(A)
        Z = _solve(S, Phi, gamma, solver, max_iter, tol)
        ctx.save_for_backward(A, Z)
        ctx.settings = (gamma, normalizer, solver, max_iter, tol, Phi.shape)
        return Z

    @staticmethod
    def backward(ctx, grad_Z):
        A, Z = ctx.saved_tensors
        gamma, normalizer, solver, max_iter, tol, phi_shape = ctx.settings
        with torch.enable_grad():
            A_leaf = A.detach().requires_grad_(True)
            S = normalizer(A_leaf)
        # Adjoint: Lambda = gamma S^T Lambda + grad_Z, i.e. (I - gamma S)^T Lambda = grad_Z.
        Lam = _solve(S.detach().transpose(-1, -2), grad_Z, gamma, solver, max_iter, tol)
        grad_S = (gamma * (Lam @ Z.transpose(-1, -2))).sum_to_size(S.shape)
        (grad_A,) = torch.autograd.grad(S, A_leaf, grad_S)
        return grad_A, Lam.sum_to_size(phi_shape), None, None, None, None, None


def deq_layer(A: torch.Tensor, Phi: torch.Tensor, gamma: float | torch.Tensor,
              solver: str = "anderson", backward: str = "implicit", max_iter: int = 200,
              tol: float = 1e-12,
              normalizer: Callable[[torch.Tensor], torch.Tensor] = column_softmax
              ) -> torch.Tensor:
    """The implicit layer Z = gamma sigma(A) Z + Phi as a differentiable torch operation.

    ``backward="implicit"``: the forward solve runs without a graph and the backward pass
    solves the adjoint system with the same ``solver`` (memory independent of the iterations).
    ``backward="unrolled"``: ``max_iter`` plain iterations recorded by autograd (``solver`` and
    ``tol`` are ignored); the backward pass backpropagates through all of them.
    ``gamma`` is a constant of the layer: no gradient flows to it.
    """
    A, Phi = _square("A", A), _float_tensor("Phi", Phi)
    _check_features(A, Phi)
    g = _gamma(gamma, A)
    _choice("solver", solver, SOLVERS)
    _choice("backward", backward, BACKWARDS)
    max_iter = check_positive_int("max_iter", max_iter)
    tol = check_positive("tol", tol, allow_zero=True)
    if not callable(normalizer):
        raise ValueError("normalizer: expected a callable A -> sigma(A)")
    if backward == "unrolled":
        GS = g * normalizer(A)
        z = torch.zeros_like(Phi)
        for _ in range(max_iter):
            z = GS @ z + Phi
        return z
    return _ImplicitFixedPoint.apply(A, Phi, g, normalizer, solver, max_iter, tol)


def torchdeq_fixed_point(A: torch.Tensor, Phi: torch.Tensor, gamma: float,
                         **deq_kwargs) -> torch.Tensor:
    """The same layer through the peer library ``torchdeq`` (``get_deq(**deq_kwargs)``).

    torchdeq works batch-first, so the layer is written for the states ``Z^T`` (n, m):
    ``z -> gamma z sigma(A)^T + Phi^T``. Returns ``Z`` (m, n) with torchdeq's backward attached.
    """
    from torchdeq import get_deq

    A, Phi = _square("A", A), _float_tensor("Phi", Phi)
    check_ndim("A", A, 2)
    check_ndim("Phi", Phi, 2)
    _check_features(A, Phi)
    if isinstance(gamma, torch.Tensor) and gamma.numel() != 1:
        raise ValueError(f"gamma: expected one number in (0, 1), got shape {tuple(gamma.shape)}")
    g = float(_gamma(gamma, A))
    deq = get_deq(**deq_kwargs)
    S_T = _column_softmax(A).transpose(0, 1)
    Phi_T = Phi.transpose(0, 1)

    def func(z: torch.Tensor) -> torch.Tensor:
        return g * z @ S_T + Phi_T

    z_out, _ = deq(func, torch.zeros_like(Phi_T))
    return z_out[-1].transpose(0, 1)


# ----------------------------------------------------------------------------- features, data
def standardized_features(X: torch.Tensor) -> torch.Tensor:
    """phi = identity on standardised inputs: X (n, d) -> Phi (d, n), rows of mean 0, variance 1."""
    X = _float_tensor("X", X)
    check_ndim("X", X, 2)
    if X.shape[0] < 2:
        raise ValueError(f"X: expected at least 2 samples, got shape {tuple(X.shape)}")
    std = X.std(dim=0, keepdim=True)
    if bool((std == 0).any()):
        raise ValueError("X: a column is constant and cannot be standardised")
    return ((X - X.mean(dim=0, keepdim=True)) / std).transpose(0, 1)


def random_relu_features(X: torch.Tensor, width: int, generator: torch.Generator
                         ) -> torch.Tensor:
    """Fixed random ReLU features phi(x) = relu(V x + c) / sqrt(width): X (n, d) -> (width, n)."""
    X = _float_tensor("X", X)
    check_ndim("X", X, 2)
    width = check_positive_int("width", width)
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator: expected a torch.Generator")
    d = X.shape[1]
    V = torch.randn(width, d, generator=generator, dtype=X.dtype) / math.sqrt(d)
    c = torch.randn(width, 1, generator=generator, dtype=X.dtype)
    V, c = V.to(X.device), c.to(X.device)
    return torch.relu(V @ X.transpose(0, 1) + c) / math.sqrt(width)


# ----------------------------------------------------------------------------- square loss, GD
def _targets(Phi: torch.Tensor, Y: torch.Tensor) -> None:
    if Y.shape[-1] != Phi.shape[-1]:
        raise ValueError(f"Y: expected {Phi.shape[-1]} columns (one per sample), "
                         f"got shape {tuple(Y.shape)}")
    _same_dtype_device(Phi=Phi, Y=Y)


def _check_problem(A, B, Phi, Y):
    A, B = _square("A", A), _float_tensor("B", B)
    Phi, Y = _float_tensor("Phi", Phi), _float_tensor("Y", Y)
    _check_features(A, Phi)
    if B.shape[-1] != A.shape[-1]:
        raise ValueError(f"B: expected {A.shape[-1]} columns, got shape {tuple(B.shape)}")
    if Y.shape[-2] != B.shape[-2]:
        raise ValueError(f"Y: expected {B.shape[-2]} rows (the outputs of B), "
                         f"got shape {tuple(Y.shape)}")
    _same_dtype_device(A=A, B=B)
    _targets(Phi, Y)
    return A, B, Phi, Y


def _loss_grads(A, B, Phi, Y, g):
    """Square loss, its gradients in A and B, and U (hot loop: no validation)."""
    S = _column_softmax(A)
    M = _eye_like(S) - g * S
    U = torch.linalg.inv(M)
    Z = U @ Phi
    G = B @ Z - Y
    loss = 0.5 * G.square().sum(dim=(-2, -1))
    grad_B = G @ Z.transpose(-1, -2)
    Lam = U.transpose(-1, -2) @ (B.transpose(-1, -2) @ G)
    grad_A = _column_softmax_vjp(S, g * (Lam @ Z.transpose(-1, -2)))
    return loss, grad_A, grad_B, S, M, U


def loss_and_gradients(A: torch.Tensor, B: torch.Tensor, Phi: torch.Tensor, Y: torch.Tensor,
                       gamma: float | torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Square loss 1/2 ||B U Phi - Y||_F^2 and its closed-form (adjoint) gradients in A and B."""
    A, B, Phi, Y = _check_problem(A, B, Phi, Y)
    loss, grad_A, grad_B, *_ = _loss_grads(A, B, Phi, Y, _gamma(gamma, A))
    return loss, grad_A, grad_B


def flow_velocity(A: torch.Tensor, B: torch.Tensor, Phi: torch.Tensor, Y: torch.Tensor,
                  gamma: float | torch.Tensor) -> torch.Tensor:
    """dW/dt under gradient flow on (A, B): -nabla U^T U - gamma^2 W J J^*[W^T nabla U^T] U."""
    A, B, Phi, Y = _check_problem(A, B, Phi, Y)
    g = _gamma(gamma, A)
    S = _column_softmax(A)
    U = torch.linalg.inv(_eye_like(S) - g * S)
    W = B @ U
    nabla = (W @ Phi - Y) @ Phi.transpose(-1, -2)
    inner = W.transpose(-1, -2) @ nabla @ U.transpose(-1, -2)
    # J J^*: apply the column-softmax VJP, then its (self-adjoint) JVP: both are the same map.
    precond = _column_softmax_vjp(S, _column_softmax_vjp(S, inner))
    return -nabla @ U.transpose(-1, -2) @ U - g**2 * W @ precond @ U


def optimal_loss(Phi: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """L* = min_W 1/2 ||W Phi - Y||_F^2 (least squares through the pseudo-inverse of Phi)."""
    Phi, Y = _float_tensor("Phi", Phi), _float_tensor("Y", Y)
    _targets(Phi, Y)
    W = Y @ torch.linalg.pinv(Phi)
    return 0.5 * (W @ Phi - Y).square().sum(dim=(-2, -1))


def lambda_min_plus(Phi: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """Smallest nonzero eigenvalue of Phi Phi^T (relative cut-off ``rtol`` times the largest)."""
    Phi = _float_tensor("Phi", Phi)
    check_positive("rtol", rtol)
    eig = torch.linalg.svdvals(Phi).square()
    masked = torch.where(eig > rtol * eig.amax(dim=-1, keepdim=True), eig,
                         torch.full_like(eig, float("inf")))
    return masked.amin(dim=-1)


def stable_step_size(Phi: torch.Tensor, gamma: float | torch.Tensor,
                     factor: float = 0.5) -> torch.Tensor:
    """The step size eta = factor (1 - gamma)^2 / lambda_max(Phi Phi^T) of the GD theorem [R]."""
    Phi = _float_tensor("Phi", Phi)
    check_positive("factor", factor)
    g = _gamma(gamma, Phi)
    lam_max = torch.linalg.svdvals(Phi)[..., 0].square()
    return (factor * (1 - g) ** 2).squeeze(-1).squeeze(-1) / lam_max


@dataclass(frozen=True)
class TrainingLog:
    """Per-step logs of :func:`train_gd`; leading axis: steps 0..n_steps, then instances."""

    loss: torch.Tensor
    sigma_min_U: torch.Tensor
    sigma_norm2: torch.Tensor
    rate_bound: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor


def train_gd(A0: torch.Tensor, B0: torch.Tensor, Phi: torch.Tensor, Y: torch.Tensor,
             gamma: float | torch.Tensor, step_size: float | torch.Tensor,
             n_steps: int) -> TrainingLog:
    """Full-batch GD on (A, B) for the square loss, batched over the leading axes of A0/B0.

    Logs at every step the loss, sigma_min(U_t) = 1/||I - gamma sigma(A_t)||_2,
    ||sigma(A_t)||_2 and the rate bound 2 eta lambda_min^+(Phi Phi^T) sigma_min(U_t)^2.
    """
    A, B, Phi, Y = _check_problem(A0, B0, Phi, Y)
    n_steps = check_positive_int("n_steps", n_steps)
    g = _gamma(gamma, A)
    if isinstance(step_size, torch.Tensor):
        eta = _float_tensor("step_size", step_size, ndim_min=0)
        if bool((eta <= 0).any()):
            raise ValueError("step_size: expected every entry > 0")
        eta = eta.to(dtype=A.dtype, device=A.device)
    else:
        eta = torch.tensor(check_positive("step_size", step_size), dtype=A.dtype,
                           device=A.device)
    eta_b = eta.reshape(*eta.shape, 1, 1) if eta.ndim > 0 else eta
    lam = lambda_min_plus(Phi)
    A, B = A.clone(), B.clone()
    losses, smin, snorm = [], [], []
    for step in range(n_steps + 1):
        loss, grad_A, grad_B, S, M, _ = _loss_grads(A, B, Phi, Y, g)
        losses.append(loss)
        smin.append(1.0 / torch.linalg.matrix_norm(M, ord=2))
        snorm.append(torch.linalg.matrix_norm(S, ord=2))
        if step < n_steps:
            A = A - eta_b * grad_A
            B = B - eta_b * grad_B
    sigma_min_U = torch.stack(smin)
    return TrainingLog(loss=torch.stack(losses), sigma_min_U=sigma_min_U,
                       sigma_norm2=torch.stack(snorm),
                       rate_bound=2 * eta * lam * sigma_min_U.square(), A=A, B=B)


def linear_gd(W0: torch.Tensor, Phi: torch.Tensor, Y: torch.Tensor, step_size: float,
              n_steps: int) -> torch.Tensor:
    """Plain GD on the shallow model W for 1/2 ||W Phi - Y||_F^2, from W0; returns the last W."""
    W, Phi, Y = _float_tensor("W0", W0), _float_tensor("Phi", Phi), _float_tensor("Y", Y)
    _targets(Phi, Y)
    if W.shape[-1] != Phi.shape[-2] or W.shape[-2] != Y.shape[-2]:
        raise ValueError(f"W0: expected shape ({Y.shape[-2]}, {Phi.shape[-2]}), "
                         f"got {tuple(W.shape)}")
    eta = check_positive("step_size", step_size)
    n_steps = check_positive_int("n_steps", n_steps)
    PPt, YPt = Phi @ Phi.transpose(-1, -2), Y @ Phi.transpose(-1, -2)
    for _ in range(n_steps):
        W = W - eta * (W @ PPt - YPt)
    return W


def min_distance_interpolant(W0: torch.Tensor, Phi: torch.Tensor, Y: torch.Tensor
                             ) -> torch.Tensor:
    """The least-squares solution nearest to W0: W0 + (Y - W0 Phi) Phi^+ (the limit of GD)."""
    W0, Phi, Y = _float_tensor("W0", W0), _float_tensor("Phi", Phi), _float_tensor("Y", Y)
    _targets(Phi, Y)
    return W0 + (Y - W0 @ Phi) @ torch.linalg.pinv(Phi)


def fit_log_rate(excess: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Per-step rate r in excess_t ~ C exp(-r t), fitted to log excess on [start, stop)."""
    excess = _float_tensor("excess", excess, ndim_min=1)
    n = excess.shape[0]
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < n - 1:
        raise ValueError(f"start: expected an integer in [0, {n - 2}], got {start!r}")
    if isinstance(stop, bool) or not isinstance(stop, int) or not start + 2 <= stop <= n:
        raise ValueError(f"stop: expected an integer in [{start + 2}, {n}], got {stop!r}")
    window = excess[start:stop]
    if bool((window <= 0).any()):
        raise ValueError("excess: expected positive values in the fitted window")
    t = torch.arange(start, stop, dtype=window.dtype, device=window.device)
    t = t.reshape(-1, *([1] * (window.ndim - 1)))
    y = window.log()
    tc, yc = t - t.mean(0), y - y.mean(0)
    return -(tc * yc).sum(0) / tc.square().sum(0)


@dataclass(frozen=True)
class ConvergenceSummary:
    """How a GD run of :func:`train_gd` converged, per instance (trailing axes of the log).

    ``relative``: excess loss over its start, shape (n_steps + 1, ...). ``valid``: the number
    of leading steps with ``relative > floor`` (after that, rounding dominates).
    ``fitted_rate``: the per-step rate r of ``excess ~ C exp(-r t)`` fitted on the valid steps.
    ``min_bound``: ``min_t 2 eta lambda_min^+ sigma_min(U_t)^2`` over the run.
    ``worst_step_gap``: ``max_t [e_{t+1}/e_t - (1 - bound_t)]`` over the valid steps (<= 0 when
    every step contracts at least as fast as the theorem says). ``envelope``: the guaranteed
    curve ``prod_{s<t} (1 - bound_s)``; ``worst_envelope_ratio``: ``max_{t>=1} relative_t /
    envelope_t`` over the valid steps (<= 1 when the run stays below the envelope).
    """

    relative: torch.Tensor
    valid: torch.Tensor
    fitted_rate: torch.Tensor
    min_bound: torch.Tensor
    worst_step_gap: torch.Tensor
    envelope: torch.Tensor
    worst_envelope_ratio: torch.Tensor


def convergence_summary(log: TrainingLog, excess: torch.Tensor,
                        floor: float = 1e-10) -> ConvergenceSummary:
    """Relative excess loss, fitted rate, rate bound and envelope checks of a GD run."""
    if not isinstance(log, TrainingLog):
        raise ValueError(f"log: expected a TrainingLog, got {type(log).__name__}")
    excess = _float_tensor("excess", excess, ndim_min=1)
    if tuple(excess.shape) != tuple(log.rate_bound.shape):
        raise ValueError(f"excess: expected shape {tuple(log.rate_bound.shape)} (one entry per "
                         f"step and instance), got {tuple(excess.shape)}")
    floor = check_positive("floor", floor)
    if bool((excess[0] <= 0).any()):
        raise ValueError("excess: expected a positive excess loss at step 0")
    relative = excess / excess[0]
    valid = (relative > floor).long().cumprod(dim=0).sum(dim=0)
    if bool((valid < 3).any()):
        raise ValueError(f"floor: fewer than 3 steps above floor={floor} for some instance")
    bound = log.rate_bound
    ones = torch.ones_like(bound[:1])
    envelope = torch.cat([ones, torch.cumprod(1 - bound[:-1], dim=0)])
    flat_rel, flat_env = relative.reshape(len(relative), -1), envelope.reshape(len(envelope), -1)
    flat_bound = bound.reshape(len(bound), -1)
    rates, gaps, ratios = [], [], []
    for k, stop in enumerate(valid.reshape(-1).tolist()):
        rel = flat_rel[:stop, k]
        rates.append(fit_log_rate(rel, 0, stop))
        gaps.append((rel[1:] / rel[:-1] - (1 - flat_bound[:stop - 1, k])).max())
        ratios.append((rel[1:] / flat_env[1:stop, k]).max())
    shape = valid.shape
    return ConvergenceSummary(
        relative=relative, valid=valid, fitted_rate=torch.stack(rates).reshape(shape),
        min_bound=bound.amin(dim=0), worst_step_gap=torch.stack(gaps).reshape(shape),
        envelope=envelope, worst_envelope_ratio=torch.stack(ratios).reshape(shape))


# ----------------------------------------------------------------------------- classifier
class DEQClassifier(torch.nn.Module):
    """x -> logits = C z*(x) + c with z* = gamma sigma(A) z* + (V x + v): a small DEQ classifier."""

    def __init__(self, n_inputs: int, width: int, n_classes: int, gamma: float,
                 n_iter: int, backward: str = "implicit", solver: str = "fixed_point",
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        for name, value in (("n_inputs", n_inputs), ("width", width), ("n_classes", n_classes),
                            ("n_iter", n_iter)):
            check_positive_int(name, value)
        self.gamma = float(_gamma(gamma, torch.zeros(1, dtype=dtype)))
        self.backward_mode = _choice("backward", backward, BACKWARDS)
        self.solver = _choice("solver", solver, SOLVERS)
        self.n_iter = n_iter
        gen = generator if generator is not None else torch.Generator().manual_seed(0)

        def init(*shape: int, scale: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(scale * torch.randn(*shape, generator=gen, dtype=dtype))

        self.V = init(width, n_inputs, scale=1 / math.sqrt(n_inputs))
        self.v = init(width, 1, scale=0.0)
        self.A = init(width, width, scale=1.0)
        self.C = init(n_classes, width, scale=1 / math.sqrt(width))
        self.c = init(n_classes, 1, scale=0.0)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits (n, n_classes) for inputs X (n, n_inputs)."""
        if X.ndim != 2 or X.shape[1] != self.V.shape[1]:
            raise ValueError(f"X: expected shape (n, {self.V.shape[1]}), got {tuple(X.shape)}")
        Phi = self.V @ X.transpose(0, 1) + self.v
        Z = deq_layer(self.A, Phi, self.gamma, solver=self.solver, backward=self.backward_mode,
                      max_iter=self.n_iter, tol=0.0)
        return (self.C @ Z + self.c).transpose(0, 1)


def train_classifier(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor,
                     n_steps: int, lr: float = 0.02) -> torch.Tensor:
    """Full-batch Adam on the cross-entropy; returns the loss before each step."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    n_steps = check_positive_int("n_steps", n_steps)
    lr = check_positive("lr", lr)
    X = _float_tensor("X", X)
    check_ndim("X", X, 2)
    with torch.no_grad():
        n_classes = model(X[:1]).shape[-1]
    y = check_class_labels("y", y, X.shape[:1], n_classes, device=X.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


# ----------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class BackwardMemory:
    """Memory of one forward + backward pass.

    ``saved_bytes``: bytes of the distinct tensors autograd saved for the backward pass (any
    device; deterministic). ``peak_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` during
    forward and backward above the memory in use before; ``None`` on other devices.
    """

    saved_bytes: int
    peak_bytes: int | None


def measure_backward_memory(closure: Callable[[], torch.Tensor],
                            device: torch.device | None = None) -> BackwardMemory:
    """Run ``closure()`` (a scalar loss) and its backward pass; measure the memory they hold."""
    if not callable(closure):
        raise ValueError("closure: expected a callable returning a scalar loss")
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = closure()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("closure: expected a scalar tensor loss")
    loss.backward()
    peak = None
    if cuda:
        synchronize(device)
        peak = int(torch.cuda.max_memory_allocated(device) - before)
    return BackwardMemory(saved_bytes=int(sum(storages.values())), peak_bytes=peak)
