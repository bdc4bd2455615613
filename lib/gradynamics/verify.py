"""Verification helpers used by every chapter.

Three levels of checking, in the order a chapter uses them:

1. :func:`assert_sympy_zero` -- a symbolic identity ``lhs - rhs == 0``, proved by sympy;
2. :func:`compare` -- a closed form against autograd (or any reference), max abs / rel error;
3. :func:`finite_difference_gradient`, :func:`finite_difference_jacobian` -- central
   differences, the reference that does not trust autograd either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
import torch

from gradynamics.validation import as_tensor, check_finite, check_positive

__all__ = [
    "ErrorReport",
    "assert_sympy_zero",
    "cancel_exponentials",
    "compare",
    "finite_difference_gradient",
    "finite_difference_jacobian",
]


def _simplify(expr: sp.Basic, simplifier: Callable[[sp.Basic], sp.Basic]) -> sp.Basic:
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(simplifier)
    return simplifier(expr)


def _is_zero(expr: sp.Basic) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(entry == 0 for entry in expr)
    return expr == 0


def assert_sympy_zero(expr: sp.Basic, label: str = "expression",
                      simplifier: Callable[[sp.Basic], sp.Basic] = sp.simplify) -> sp.Basic:
    """Assert that ``expr`` (a sympy expression or matrix) simplifies to exactly zero.

    Returns the simplified expression. On failure raises ``AssertionError`` showing the
    residual, so a reader sees what is left over instead of a bare ``False``.
    """
    if isinstance(expr, (list, tuple)):
        expr = sp.Matrix(expr)
    if not isinstance(expr, (sp.Basic, sp.MatrixBase)):
        raise ValueError(f"expr: expected a sympy expression or matrix, got {type(expr).__name__}")
    if not callable(simplifier):
        raise ValueError("simplifier: expected a callable such as sympy.simplify")
    residual = _simplify(expr, simplifier)
    if not _is_zero(residual):
        raise AssertionError(f"{label}: symbolic difference does not simplify to 0; "
                             f"residual = {sp.sstr(residual)}")
    return residual


@dataclass(frozen=True)
class ErrorReport:
    """Max absolute and max relative error between two arrays of ``size`` entries."""

    max_abs: float
    max_rel: float
    size: int

    def assert_below(self, abs_tol: float | None = None, rel_tol: float | None = None,
                     label: str = "comparison") -> ErrorReport:
        """Raise ``AssertionError`` if an error exceeds its tolerance; return self for chaining."""
        if abs_tol is None and rel_tol is None:
            raise ValueError("abs_tol/rel_tol: give at least one tolerance")
        if abs_tol is not None:
            check_positive("abs_tol", abs_tol)
            if not self.max_abs < abs_tol:
                raise AssertionError(f"{label}: max abs error {self.max_abs:.3e} >= {abs_tol:.1e}")
        if rel_tol is not None:
            check_positive("rel_tol", rel_tol)
            if not self.max_rel < rel_tol:
                raise AssertionError(f"{label}: max rel error {self.max_rel:.3e} >= {rel_tol:.1e}")
        return self


def compare(actual: torch.Tensor, expected: torch.Tensor, floor: float = 1e-300) -> ErrorReport:
    """Compare ``actual`` with the reference ``expected`` entrywise.

    The relative error is ``max|a - e| / max(max|e|, floor)`` -- normwise, so that entries
    that are zero in exact arithmetic do not blow it up.
    """
    actual_t = as_tensor("actual", actual)
    expected_t = as_tensor("expected", expected)
    if tuple(actual_t.shape) != tuple(expected_t.shape):
        raise ValueError(f"actual and expected: shapes differ, {tuple(actual_t.shape)} "
                         f"vs {tuple(expected_t.shape)}")
    check_finite("actual", actual_t)
    check_finite("expected", expected_t)
    check_positive("floor", floor)
    a = actual_t.detach().to(torch.float64).cpu()
    e = expected_t.detach().to(torch.float64).cpu()
    if a.numel() == 0:
        raise ValueError("actual: is empty; nothing to compare")
    diff = (a - e).abs()
    max_abs = float(diff.max())
    scale = max(float(e.abs().max()), floor)
    return ErrorReport(max_abs=max_abs, max_rel=max_abs / scale, size=a.numel())


def _central_differences(func: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         eps: float) -> tuple[torch.Size, list[torch.Tensor]]:
    """Validate the arguments; return ``x.shape`` and one central difference per entry of x."""
    if not callable(func):
        raise ValueError("func: expected a callable returning a tensor")
    x = as_tensor("x", x)
    if not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor, got {x.dtype}")
    check_finite("x", x)
    check_positive("eps", eps)
    flat = x.detach().reshape(-1)
    columns = []
    with torch.no_grad():
        for k in range(flat.numel()):
            step = torch.zeros_like(flat)
            step[k] = eps
            up = func((flat + step).reshape(x.shape))
            down = func((flat - step).reshape(x.shape))
            columns.append((up - down) / (2 * eps))
    return x.shape, columns


def finite_difference_gradient(func: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                               eps: float = 1e-6) -> torch.Tensor:
    """Central-difference gradient of a scalar function ``func`` at ``x`` (same shape as ``x``)."""
    shape, columns = _central_differences(func, x, eps)
    if columns and columns[0].numel() != 1:
        raise ValueError(f"func: expected a scalar output, got shape {tuple(columns[0].shape)}")
    return torch.stack([c.reshape(()) for c in columns]).reshape(shape)


def finite_difference_jacobian(func: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                               eps: float = 1e-6) -> torch.Tensor:
    """Central-difference Jacobian, shape ``func(x).shape + x.shape``."""
    shape, columns = _central_differences(func, x, eps)
    out_shape = columns[0].shape if columns else torch.Size()
    jac = torch.stack([c.reshape(-1) for c in columns], dim=-1)
    return jac.reshape(tuple(out_shape) + tuple(shape))

def cancel_exponentials(expr: sp.Basic) -> sp.Basic:
    """Simplifier for expressions rational in exponentials ``exp(z_k)`` of real symbols.

    Every ``exp(z_k)`` is replaced by a positive symbol ``x_k`` and the result is brought to a
    canonical rational form with :func:`sympy.cancel`. For softmax-type expressions this decides
    ``expr == 0`` exactly and is much faster than :func:`sympy.simplify`. Use it as
    ``assert_sympy_zero(expr, simplifier=cancel_exponentials)``.
    """
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(cancel_exponentials)
    if not isinstance(expr, sp.Basic):
        raise ValueError(f"expr: expected a sympy expression, got {type(expr).__name__}")
    expr = sp.expand_log(sp.powsimp(expr, combine="base"), force=True)
    expr = expr.replace(lambda e: isinstance(e, sp.exp), lambda e: sp.expand_power_exp(e))
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    positives = {s: sp.Dummy(f"exp_{s.name}", positive=True) for s in symbols}
    expr = expr.subs({sp.exp(s): x for s, x in positives.items()})
    return sp.cancel(sp.together(expr))
