"""Runtime helpers: one device helper, one seeding helper, float64 by default.

Every chapter calls :func:`get_device` once and passes the device explicitly; no code in the
book calls ``.cuda()``. The environment variable ``GRADYNAMICS_DEVICE`` overrides the choice
(e.g. ``GRADYNAMICS_DEVICE=cpu`` on a GPU machine, or ``cuda:1``). Apple's ``mps`` backend has
no float64, so it is rejected with the book's float64 (a clear error instead of a TypeError
deep inside a chapter).

Timing: GPU kernels run asynchronously, so a clock read right after a call measures only the
launch. :func:`stopwatch` and :func:`time_call` synchronise the device before each reading.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

#: Verification runs in double precision: closed forms are compared to autograd at ~1e-12.
DEFAULT_DTYPE: torch.dtype = torch.float64

DEVICE_ENV_VAR = "GRADYNAMICS_DEVICE"


def get_device(prefer: str | None = None,
               dtype: torch.dtype = DEFAULT_DTYPE) -> torch.device:
    """Return the device: ``prefer``, else $GRADYNAMICS_DEVICE, else CUDA if available, else CPU.

    ``dtype`` is the precision the caller will compute in; a device that cannot hold it (``mps``
    with ``float64``) is rejected with a ``ValueError``.
    """
    name = "prefer" if prefer is not None else DEVICE_ENV_VAR
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV_VAR, "").strip()
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype: expected a torch.dtype, got {dtype!r}")
    if choice:
        try:
            device = torch.device(choice)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"{name}: {choice!r} is not a torch device name") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{name}: {choice!r} requested but CUDA is not available")
        if device.type == "mps":
            if dtype == torch.float64:
                raise ValueError(
                    f"{name}: {choice!r} does not support float64, the precision the book "
                    "verifies in; use cpu or cuda (or pass dtype=torch.float32)")
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise ValueError(f"{name}: {choice!r} requested but MPS is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for every queued kernel on ``device`` (a no-op on the CPU)."""
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@dataclass
class Timing:
    """Seconds measured by :func:`stopwatch` (set when the ``with`` block ends)."""

    seconds: float = float("nan")


@contextlib.contextmanager
def stopwatch(device: torch.device | str | None = None) -> Iterator[Timing]:
    """``with stopwatch(device) as t: ...``; ``t.seconds`` then holds the synchronised time."""
    timing = Timing()
    synchronize(device)
    start = time.perf_counter()
    try:
        yield timing
    finally:
        synchronize(device)
        timing.seconds = time.perf_counter() - start


def time_call(fn: Callable, *args, device: torch.device | str | None = None,
              repeats: int = 1, warmup: int = 0, **kwargs) -> tuple[object, float]:
    """Call ``fn(*args, **kwargs)``; return (its last result, the best synchronised time in s)."""
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {fn!r}")
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    result = None
    for _ in range(warmup):
        result = fn(*args, **kwargs)
    best = float("inf")
    for _ in range(repeats):
        with stopwatch(device) as timing:
            result = fn(*args, **kwargs)
        best = min(best, timing.seconds)
    return result, best


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a seeded CPU ``torch.Generator``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def describe_runtime(device: torch.device | None = None,
                     dtype: torch.dtype = DEFAULT_DTYPE) -> str:
    """One line naming the device, dtype and library versions (printed atop each chapter)."""
    device = device if device is not None else get_device()
    return (
        f"device={device}, dtype={dtype}, torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )
