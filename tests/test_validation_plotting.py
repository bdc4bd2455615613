import matplotlib
import numpy as np
import pytest
import torch

from gradynamics import plotting, validation

matplotlib.use("agg")


def test_check_positive():
    assert validation.check_positive("lr", 0.1) == 0.1
    assert validation.check_positive("lr", 0, allow_zero=True) == 0.0
    for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match=r"^lr: expected "):
            validation.check_positive("lr", bad)


def test_check_positive_int():
    assert validation.check_positive_int("steps", np.int64(3)) == 3
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(ValueError, match="steps"):
            validation.check_positive_int("steps", bad)


def test_probability_vector_checks():
    validation.check_probability_vector("q", torch.tensor([[0.2, 0.8], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="strictly positive"):
        validation.check_probability_vector("q", torch.tensor([1.0, 0.0]), strictly_positive=True)
    with pytest.raises(ValueError, match="non-negative"):
        validation.check_probability_vector("q", torch.tensor([1.2, -0.2]))
    with pytest.raises(ValueError, match="sum to 1"):
        validation.check_probability_vector("q", torch.tensor([0.2, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        validation.check_probability_vector("q", torch.tensor([float("nan"), 1.0]))


def test_shape_checks():
    validation.check_ndim("x", torch.zeros(2, 3), (2, 3))
    with pytest.raises(ValueError, match=r"^x: expected 1 dimensions"):
        validation.check_ndim("x", torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="a and b"):
        validation.check_same_shape("a", torch.zeros(2), "b", torch.zeros(3))


def test_plot_style_and_subplots():
    plotting.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    fig, axes = plotting.subplots(1, 2, width=2.0, height=1.5)
    assert len(axes) == 2 and tuple(fig.get_size_inches()) == (4.0, 1.5)
    for kwargs in ({"nrows": 0}, {"ncols": 1.5}, {"width": -1}, {"height": 0}):
        with pytest.raises(ValueError):
            plotting.subplots(**kwargs)


def test_check_same_device_names_the_differing_argument() -> None:
    from gradynamics.validation import check_same_device

    cpu, meta = torch.zeros(2), torch.empty(2, device="meta")
    check_same_device(A=cpu, B=cpu, C=None)
    check_same_device()
    with pytest.raises(ValueError, match=r"^B: device meta differs from A's cpu; "):
        check_same_device(A=cpu, B=meta)
    with pytest.raises(ValueError, match=r"^C: device cpu differs from A's meta; "):
        check_same_device(A=meta, B=None, C=cpu)


def test_library_entries_reject_mixed_devices() -> None:
    # a meta tensor stands in for a second device (deq checks finiteness first, which a
    # meta tensor cannot answer, so only relu1d's entry is exercised here)
    from gradynamics import relu1d

    a, b, c = torch.ones(4), torch.zeros(4), torch.ones(4)
    with pytest.raises(ValueError, match=r"^c: device meta differs from a's cpu; "):
        relu1d.conserved_quantity(a, b, c.to("meta"))
