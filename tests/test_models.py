"""Tests of gradynamics.models: shapes on any image size, ResNet parameter counts, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradynamics import models

SIZES = (1, 5, 8, 13, 32)


@pytest.mark.parametrize("size", SIZES)
def test_every_model_accepts_any_image_size(size):
    x = torch.randn(2, 3, size, size)
    nets = (models.MLP(3 * size * size, 7, width=8), models.SmallCNN(3, 7, (4, 8)),
            models.VGGStyle(3, 7, ((4, 4), (8,), (8,))), models.cifar_resnet(20, 7, width=4))
    for net in nets:
        assert net(x).shape == (2, 7)


def test_resnet_parameter_counts_match_he_et_al():
    """He et al. (2016), Table 6: ResNet-20 has 0.27M and ResNet-56 0.85M parameters."""
    assert round(models.count_parameters(models.cifar_resnet(20, 10)) / 1e6, 2) == 0.27
    assert round(models.count_parameters(models.cifar_resnet(56, 10)) / 1e6, 2) == 0.85
    convs = [m for m in models.cifar_resnet(20, 10).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 19 conv layers + 1 linear = 20 weighted layers


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = models.BasicBlock(4, 8, stride=2)
    x = torch.randn(2, 4, 6, 6)
    short = block.shortcut(x)
    assert short.shape == (2, 8, 3, 3)
    torch.testing.assert_close(short[:, 2:6], x[:, :, ::2, ::2])
    assert torch.equal(short[:, :2], torch.zeros_like(short[:, :2]))
    assert torch.equal(short[:, 6:], torch.zeros_like(short[:, 6:]))
    assert block(x).shape == (2, 8, 3, 3)


def test_vgg_has_batchnorm_and_no_skip():
    net = models.VGGStyle(1, 10, ((4, 4), (8, 8)))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 4
    assert not any(isinstance(m, models.BasicBlock) for m in net.modules())
    assert isinstance(net.features, nn.Sequential)  # a plain chain: output of one is input of next
    plain = models.SmallCNN(1, 10, (4,), batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_model_errors():
    with pytest.raises(ValueError, match=r"^depth: expected 6n \+ 2"):
        models.cifar_resnet(21)
    with pytest.raises(ValueError, match=r"^depth: expected an integer >= 8"):
        models.cifar_resnet(2)
    with pytest.raises(ValueError, match=r"^widths: expected a non-empty sequence"):
        models.SmallCNN(1, 10, ())
    with pytest.raises(ValueError, match=r"^stages: expected a non-empty sequence"):
        models.VGGStyle(1, 10, "wide")
    with pytest.raises(ValueError, match=r"^stages: expected an integer >= 1"):
        models.VGGStyle(1, 10, ((4, 0),))
    with pytest.raises(ValueError, match=r"^num_classes: expected an integer >= 1"):
        models.MLP(4, 0)
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module"):
        models.count_parameters("net")
    with pytest.raises(ValueError, match=r"^c_out: the option-A shortcut only pads channels"):
        models.BasicBlock(8, 4)
    with pytest.raises(ValueError, match=r"^stride: expected an integer >= 1"):
        models.BasicBlock(4, 8, stride=0)
    with pytest.raises(ValueError, match=r"^c_in: expected an integer >= 1"):
        models.BasicBlock(0, 8)
