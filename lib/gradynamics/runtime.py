"""Runtime helpers: one device helper, one seeding helper, float64 by default.

Every chapter calls :func:`get_device` once and passes the device explicitly; no code in the
book calls ``.cuda()``. The environment variable ``GRADYNAMICS_DEVICE`` overrides the choice
(e.g. ``GRADYNAMICS_DEVICE=cpu`` on a GPU machine, or ``cuda:1``).
"""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

#: Verification runs in double precision: closed forms are compared to autograd at ~1e-12.
DEFAULT_DTYPE: torch.dtype = torch.float64

DEVICE_ENV_VAR = "GRADYNAMICS_DEVICE"


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device: ``prefer``, else $GRADYNAMICS_DEVICE, else CUDA if available, else CPU."""
    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV_VAR, "").strip()
    if choice:
        try:
            device = torch.device(choice)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"prefer/{DEVICE_ENV_VAR}: {choice!r} is not a torch device name") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"prefer/{DEVICE_ENV_VAR}: {choice!r} requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
