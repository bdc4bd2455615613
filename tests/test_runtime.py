import numpy as np
import pytest
import torch

import gradynamics as gd
from gradynamics import runtime
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
    with pytest.raises(ValueError, match=rf"^{DEVICE_ENV_VAR}: 'not-a-device' is not a torch"):
        gd.get_device()
    with pytest.raises(ValueError, match=r"^prefer: 'quantum' is not a torch device name"):
        gd.get_device("quantum")


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without CUDA")
def test_get_device_rejects_cuda_without_cuda():
    with pytest.raises(ValueError, match=r"^prefer: 'cuda' requested but CUDA is not available"):
        gd.get_device("cuda")


def test_seed_everything_is_deterministic():
    gen = gd.seed_everything(123)
    a = (torch.randn(5), np.random.rand(3), torch.randn(2, generator=gen))
    gen = gd.seed_everything(123)
    b = (torch.randn(5), np.random.rand(3), torch.randn(2, generator=gen))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match=r"^seed: expected a non-negative integer"):
        gd.seed_everything(bad)


def test_describe_runtime_names_device_and_dtype():
    text = gd.describe_runtime(torch.device("cpu"))
    assert "device=cpu" in text and "float64" in text


def test_get_device_rejects_mps_with_float64(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV_VAR, "mps")
    with pytest.raises(ValueError, match=rf"^{DEVICE_ENV_VAR}: 'mps' does not support float64"):
        gd.get_device()
    with pytest.raises(ValueError, match=r"^prefer: 'mps' does not support float64"):
        gd.get_device("mps", dtype=torch.float64)


def test_get_device_mps_float32_needs_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^prefer: 'mps' requested but MPS is not available"):
        gd.get_device("mps", dtype=torch.float32)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert gd.get_device("mps", dtype=torch.float32).type == "mps"


def test_get_device_rejects_bad_dtype():
    with pytest.raises(ValueError, match=r"^dtype: expected a torch.dtype"):
        gd.get_device("cpu", dtype="float64")


def test_stopwatch_synchronises_cuda_before_each_reading(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    with runtime.stopwatch(torch.device("cuda:0")) as timing:
        assert len(calls) == 1, "the clock must start after pending kernels finished"
    assert len(calls) == 2 and calls[0] == torch.device("cuda:0")
    assert timing.seconds >= 0
    calls.clear()
    with runtime.stopwatch("cpu"):
        pass
    assert calls == [], "no CUDA synchronisation on the CPU"


def test_time_call_returns_result_and_best_time(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    result, seconds = runtime.time_call(torch.add, torch.ones(2), 1, device="cuda", repeats=3,
                                        warmup=1)
    assert torch.equal(result, torch.full((2,), 2.0)) and 0 <= seconds < 5
    assert len(calls) == 6, "two synchronisations per timed repeat"


@pytest.mark.parametrize("kwargs, pattern", [
    ({"fn": None}, r"^fn: expected a callable"),
    ({"repeats": 0}, r"^repeats: expected an integer >= 1"),
    ({"warmup": -1}, r"^warmup: expected an integer >= 0"),
    ({"repeats": True}, r"^repeats: expected an integer >= 1"),
])
def test_time_call_rejects_bad_input(kwargs, pattern):
    args = {"fn": torch.zeros, "repeats": 1, "warmup": 0}
    args.update(kwargs)
    fn = args.pop("fn")
    with pytest.raises(ValueError, match=pattern):
        runtime.time_call(fn, 2, device="cpu", **args)
