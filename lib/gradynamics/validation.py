"""Argument checks shared by the library: each raises ``ValueError`` naming the bad argument."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray | float | int


def as_tensor(name: str, value: ArrayLike, dtype: torch.dtype | None = None,
              device: torch.device | None = None) -> torch.Tensor:
    """Convert ``value`` to a tensor; reject non-numeric input with a ValueError naming ``name``."""
    try:
        if isinstance(value, torch.Tensor):
            out = value
            if dtype is not None or device is not None:
                out = out.to(dtype=dtype or out.dtype, device=device or out.device)
        else:
            out = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {type(value).__name__}") from err
    if not (out.is_floating_point() or out.is_complex() or out.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise ValueError(f"{name}: expected a numeric array, got dtype {out.dtype}")
    return out


def check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
    """Raise if ``value`` contains NaN or infinity."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if tensor.is_floating_point() or tensor.is_complex():
        if not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"{name}: contains {n_bad} NaN or infinite entries")


def check_ndim(name: str, value: torch.Tensor, ndim: int | Sequence[int]) -> None:
    """Raise if ``value`` does not have the expected number of dimensions."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if value.ndim not in allowed:
        raise ValueError(f"{name}: expected {' or '.join(map(str, allowed))} dimensions, "
                         f"got shape {tuple(value.shape)}")


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise if two tensors differ in shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} and {name_b}: shapes differ, "
                         f"{tuple(a.shape)} vs {tuple(b.shape)}")


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """Raise unless ``value`` is a finite real number > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected {bound}, got {value}")
    return value


def check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    """Raise unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_probability_vector(name: str, p: torch.Tensor, strictly_positive: bool = False,
                             atol: float | None = None) -> None:
    """Raise unless the last axis of ``p`` holds probability vectors (>= 0, or > 0, summing to 1).

    The default tolerance on the sum is ``max(1e-9, 100 n eps)`` for the dtype's ``eps``, so
    float32 probabilities are judged by float32 rounding.
    """
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"{name}: expected at least one dimension of probabilities, "
                         f"got shape {tuple(p.shape)}")
    check_finite(name, p)
    if strictly_positive and bool((p <= 0).any()):
        raise ValueError(f"{name}: expected strictly positive probabilities, "
                         f"min is {float(p.min())}")
    if bool((p < 0).any()):
        raise ValueError(f"{name}: expected non-negative probabilities, min is {float(p.min())}")
    if atol is None:
        eps = torch.finfo(p.dtype).eps if p.is_floating_point() else 0.0
        atol = max(1e-9, 100 * p.shape[-1] * eps)
    total = p.sum(dim=-1)
    worst = float((total - 1).abs().max())
    if worst > atol:
        raise ValueError(f"{name}: probabilities must sum to 1 along the last axis "
                         f"(worst deviation {worst:.3g})")


def check_class_labels(name: str, labels: ArrayLike, shape: Sequence[int], n_classes: int,
                       device: torch.device | None = None) -> torch.Tensor:
    """Integer class labels of the given shape with values in [0, n_classes), as int64.

    The one label validator of the library (softmax cross-entropy, attention targets, ...).
    """
    labels = as_tensor(name, labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer class labels, got {labels.dtype}")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes - 1}], got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.to(device=device if device is not None else labels.device, dtype=torch.long)


def _check_same(attribute: str, advice: str, tensors: dict) -> None:
    """Raise if the tensors (``None`` skipped) differ in ``attribute``; name the first that does."""
    items = [(name, value) for name, value in tensors.items() if value is not None]
    if not items:
        return
    first_name, first = items[0]
    for name, value in items[1:]:
        if getattr(value, attribute) != getattr(first, attribute):
            raise ValueError(f"{name}: {attribute} {getattr(value, attribute)} differs from "
                             f"{first_name}'s {getattr(first, attribute)}; {advice}")


def check_same_dtype(**tensors: torch.Tensor | None) -> None:
    """Raise if the tensors passed by keyword (``None`` skipped) have different dtypes.

    The message names the first argument whose dtype differs from the first one's, e.g.
    ``check_same_dtype(q=q, p=p)`` -> ``"p: dtype torch.float32 differs from q's torch.float64"``
    (instead of a RuntimeError deep inside a matmul, or silent promotion).
    """
    _check_same("dtype", "pass tensors of one dtype", tensors)


def check_same_device(**tensors: torch.Tensor | None) -> None:
    """Raise if the tensors passed by keyword (``None`` skipped) live on different devices.

    The message names the first argument whose device differs from the first one's, e.g.
    ``check_same_device(A=A, Phi=Phi)`` -> ``"Phi: device cuda:0 differs from A's cpu"``.
    """
    _check_same("device", "move the tensors to one device", tensors)
