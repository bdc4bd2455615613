"""Tests of gradynamics.datasets: digits, the CIFAR-100 loader (on random data), augmentation."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from gradynamics import datasets


def test_digits_split_and_standardisation():
    data = datasets.load_digits(seed=0)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.image_shape == (1, 8, 8)
    assert data.x_train.shape[0] + data.x_test.shape[0] == 1797
    assert data.x_test.shape[0] == 599
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-3
    train_share = torch.bincount(data.y_train, minlength=10) / data.y_train.numel()
    test_share = torch.bincount(data.y_test, minlength=10) / data.y_test.numel()
    assert float((train_share - test_share).abs().max()) < 0.01  # stratified
    again = datasets.load_digits(seed=0, dtype=torch.float64)
    torch.testing.assert_close(again.x_test.float(), data.x_test)


class _FakeCIFAR100:
    """Stands in for torchvision.datasets.CIFAR100: random data of CIFAR's shape."""

    def __init__(self, root, train, download):
        assert download is False
        if root == "missing":
            raise RuntimeError("Dataset not found or corrupted.")
        n = 50 if train else 20
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = list(rng.integers(0, 100, size=n))


@pytest.fixture
def fake_torchvision(monkeypatch):
    package = types.ModuleType("torchvision")
    sub = types.ModuleType("torchvision.datasets")
    sub.CIFAR100 = _FakeCIFAR100
    package.datasets = sub
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", sub)


def test_cifar100_loader_on_random_data(fake_torchvision):
    data = datasets.load_cifar100("somewhere")
    assert data.x_train.shape == (50, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert data.y_train.dtype == torch.int64 and data.num_classes == 100
    raw = _FakeCIFAR100("somewhere", True, False).data[3]  # HWC uint8
    mean, std = np.array(datasets.CIFAR100_MEAN), np.array(datasets.CIFAR100_STD)
    expected = ((raw / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(data.x_train[3].numpy(), expected, rtol=0, atol=1e-5)


def test_cifar100_loader_errors(fake_torchvision, monkeypatch):
    with pytest.raises(ValueError, match=r"^root: no CIFAR-100 copy found"):
        datasets.load_cifar100("missing")
    with pytest.raises(ValueError, match=r"^root: expected a directory path"):
        datasets.load_cifar100("")
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match=r"^torchvision: load_cifar100 needs"):
        datasets.load_cifar100("somewhere")


def test_cifar_augment_crops_and_flips():
    images = torch.randn(16, 3, 32, 32)
    same = datasets.cifar_augment(images, torch.Generator().manual_seed(0), padding=0)
    # without padding the only randomness is the flip
    pairs = list(zip(same, images, strict=True))
    flipped = torch.tensor([s.equal(i.flip(-1)) and not s.equal(i) for s, i in pairs])
    kept = torch.tensor([s.equal(i) for s, i in pairs])
    assert bool((flipped | kept).all()) and 0 < int(flipped.sum()) < 16
    generator = torch.Generator().manual_seed(5)
    out = datasets.cifar_augment(images, generator, padding=4)
    generator = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 9, (2, 16), generator=generator)
    flips = torch.rand(16, generator=generator) < 0.5
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for k in range(16):
        r, c = int(offsets[0, k]), int(offsets[1, k])
        crop = padded[k, :, r:r + 32, c:c + 32]
        torch.testing.assert_close(out[k], crop.flip(-1) if flips[k] else crop)


def test_batches_cover_an_epoch():
    generator = torch.Generator().manual_seed(0)
    parts = list(datasets.batches(10, 3, generator))
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(torch.cat(parts).unique()) == 9
    parts = list(datasets.batches(10, 3, generator, drop_last=False))
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"^test_fraction: expected a number in \(0, 1\)"):
        datasets.load_digits(test_fraction=1.5)
    with pytest.raises(ValueError, match=r"^images: expected 4 dimensions"):
        datasets.cifar_augment(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"^std: expected positive"):
        datasets.normalize_images(torch.zeros(1, 3, 2, 2), 0.0, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"^mean: expected 1 or 3 values"):
        datasets.normalize_images(torch.zeros(1, 3, 2, 2), [0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"^generator: expected a torch.Generator"):
        list(datasets.batches(10, 3, 0))
