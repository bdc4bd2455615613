import numpy as np
import pytest
import torch

import gradynamics as gd
from gradynamics.runtime import DEVICE_ENV_VAR


def test_default_dtype_is_float64():
    assert gd.DEFAULT_DTYPE is torch.float64


def test_get_device_defaults_to_available_hardware(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert gd.get_device().type == expected


def test_get_device_env_override(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert gd.get_device() == torch.device("cpu")


def test_get_device_rejects_bad_names(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "not-a-device")
    with pytest.raises(ValueError, match=DEVICE_ENV_VAR):
        gd.get_device()
    with pytest.raises(ValueError, match="prefer"):
        gd.get_device("quantum")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_get_device_rejects_cuda_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        gd.get_device("cuda")


def test_seed_everything_is_deterministic():
    gen = gd.seed_everything(123)
    a = (torch.randn(5), np.random.rand(3), torch.randn(2, generator=gen))
    gen = gd.seed_everything(123)
    b = (torch.randn(5), np.random.rand(3), torch.randn(2, generator=gen))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        gd.seed_everything(bad)


def test_describe_runtime_names_device_and_dtype():
    text = gd.describe_runtime(torch.device("cpu"))
    assert "device=cpu" in text and "float64" in text
