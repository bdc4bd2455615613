r"""Image data for the training-dynamics chapters, as tensors on a device.

* :func:`load_digits` -- scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes,
  no network), split into train and test with a stratified, seeded split and standardised with
  the training set's pixel mean and standard deviation;
* :func:`load_cifar100` -- CIFAR-100 (50000 + 10000 RGB 32x32 images, 100 classes) read from a
  local copy with ``torchvision.datasets.CIFAR100(root, download=False)``; torchvision is only
  needed by this function and is imported inside it;
* :func:`cifar_augment` -- the standard CIFAR augmentation (4-pixel zero padding with a random
  32x32 crop, random horizontal flip), on a batch of tensors, on the batch's device;
* :func:`normalize_images` and :func:`batches` -- per-channel standardisation and seeded
  mini-batch index streams.

Images are ``float`` tensors of shape ``(N, C, H, W)``; labels are ``int64`` of shape ``(N,)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gradynamics.validation import as_tensor, check_finite, check_ndim, check_positive_int

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "ImageData",
    "batches",
    "cifar_augment",
    "load_cifar100",
    "load_digits",
    "normalize_images",
]

#: Per-channel mean and std of the CIFAR-100 training images (pixel values in [0, 1]).
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: tuple[float, float, float] = (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class ImageData:
    """A train/test split: images ``(N, C, H, W)`` and int64 labels ``(N,)``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def normalize_images(images: torch.Tensor, mean: float | Sequence[float] | torch.Tensor,
                     std: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Standardise each channel: ``(images - mean[c]) / std[c]`` for images ``(N, C, H, W)``."""
    images = as_tensor("images", images)
    check_ndim("images", images, 4)
    if not images.is_floating_point():
        raise ValueError(f"images: expected a floating-point tensor, got {images.dtype}")
    mean_t = as_tensor("mean", mean, dtype=images.dtype, device=images.device).reshape(-1)
    std_t = as_tensor("std", std, dtype=images.dtype, device=images.device).reshape(-1)
    channels = images.shape[1]
    for name, value in (("mean", mean_t), ("std", std_t)):
        if value.numel() not in (1, channels):
            raise ValueError(f"{name}: expected 1 or {channels} values, got {value.numel()}")
    if bool((std_t <= 0).any()):
        raise ValueError("std: expected positive standard deviations")
    return (images - mean_t.reshape(1, -1, 1, 1)) / std_t.reshape(1, -1, 1, 1)


def load_digits(test_fraction: float = 1 / 3, seed: int = 0,
                device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> ImageData:
    """scikit-learn's 8x8 digits as ``(N, 1, 8, 8)`` images, stratified seeded train/test split."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    check_positive_int("seed", seed, minimum=0)
    digits = sklearn_digits()
    x = digits.images.astype(np.float64) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)
    mean, std = float(x_train.mean()), float(x_train.std())

    def to_tensor(images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((images - mean) / std, dtype=dtype, device=device).unsqueeze(1)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.int64, device=device)

    return ImageData(to_tensor(x_train), labels(y_train), to_tensor(x_test), labels(y_test), 10)


def _cifar_split(dataset, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.asarray(dataset.data)
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3):
        raise ValueError(f"root: the CIFAR-100 images have shape {data.shape}, "
                         f"expected (N, 32, 32, 3)")
    images = torch.as_tensor(data, device=device).permute(0, 3, 1, 2).to(dtype) / 255.0
    images = normalize_images(images, CIFAR100_MEAN, CIFAR100_STD)
    targets = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64, device=device)
    return images, targets


def load_cifar100(root: str, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> ImageData:
    """CIFAR-100 from a local copy under ``root`` (torchvision's layout), normalised per channel.

    Needs the ``torchvision`` package (imported here, not at module import) and a copy of the
    data that ``torchvision.datasets.CIFAR100(root, download=True)`` made earlier; this
    function never downloads.
    """
    if not isinstance(root, str) or not root:
        raise ValueError(f"root: expected a directory path string, got {root!r}")
    try:
        from torchvision.datasets import CIFAR100
    except ImportError as err:
        raise ImportError(
            "torchvision: load_cifar100 needs the torchvision package to read CIFAR-100; "
            "install it (pip install torchvision) or use load_digits") from err
    try:
        train = CIFAR100(root, train=True, download=False)
        test = CIFAR100(root, train=False, download=False)
    except RuntimeError as err:
        raise ValueError(f"root: no CIFAR-100 copy found under {root!r} ({err})") from err
    x_train, y_train = _cifar_split(train, device, dtype)
    x_test, y_test = _cifar_split(test, device, dtype)
    return ImageData(x_train, y_train, x_test, y_test, 100)


def cifar_augment(images: torch.Tensor, generator: torch.Generator | None = None,
                  padding: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``padding`` pixels, then random horizontal flip.

    Works on a batch ``(N, C, H, W)`` on its own device; the random offsets are drawn on the CPU
    from ``generator`` (so a seed gives the same augmentation on every device).
    """
    images = as_tensor("images", images)
    check_ndim("images", images, 4)
    check_finite("images", images)
    check_positive_int("padding", padding, minimum=0)
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    rows = (offsets[0].to(images.device)[:, None] + torch.arange(height, device=images.device))
    cols = (offsets[1].to(images.device)[:, None] + torch.arange(width, device=images.device))
    cols = torch.where(flips.to(images.device)[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def batches(num_samples: int, batch_size: int, generator: torch.Generator,
            drop_last: bool = True) -> Iterator[torch.Tensor]:
    """Indices of one shuffled epoch in mini-batches (CPU int64 tensors), from ``generator``."""
    check_positive_int("num_samples", num_samples)
    check_positive_int("batch_size", batch_size)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    order = torch.randperm(num_samples, generator=generator)
    stop = num_samples - num_samples % batch_size if drop_last else num_samples
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
