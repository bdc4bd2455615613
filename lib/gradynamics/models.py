r"""Small image classifiers for the training-dynamics chapters, all working on any image size.

* :class:`MLP` -- flatten, ``depth`` hidden layers with ReLU, linear read-out;
* :class:`SmallCNN` -- conv-BatchNorm-ReLU blocks with max-pooling, global average pooling and a
  linear read-out (the small CNN with BatchNorm);
* :class:`VGGStyle` -- a plain stack of 3x3 conv-BatchNorm-ReLU layers in stages separated by
  max-pooling, *without* skip connections (VGG-16-BN in miniature);
* :func:`cifar_resnet` -- the CIFAR ResNets of He et al. (2016), depth :math:`6n+2` (ResNet-20,
  -32, -44, -56, ...): a 3x3 stem with 16 channels, three stages of :math:`n` basic blocks with
  16, 32 and 64 channels (stride 2 at the start of stages 2 and 3), global average pooling and a
  linear read-out. Shortcuts are the parameter-free "option A" of the paper (identity, with
  stride-2 subsampling and zero-padded channels when the shape changes), so ResNet-20 has
  0.27M parameters (He et al., Table 6).

Every model ends in global pooling (or flattening of whatever is left), so the input's spatial
size only has to be at least 1 pixel after the pooling stages; pooling uses ``ceil_mode`` so an
odd or small image (scikit-learn's 8x8 digits) passes through every stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gradynamics.validation import check_positive_int

__all__ = ["MLP", "BasicBlock", "SmallCNN", "VGGStyle", "cifar_resnet", "count_parameters"]


def _check_widths(name: str, widths: Sequence[int]) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"{name}: expected a non-empty sequence of positive integers, "
                         f"got {widths!r}")
    return tuple(check_positive_int(name, w) for w in widths)


def _conv_bn_relu(c_in: int, c_out: int, batchnorm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    return layers


class MLP(nn.Module):
    """Flatten an image of any size, ``depth`` hidden ReLU layers of ``width``, linear read-out."""

    def __init__(self, in_features: int, num_classes: int, width: int = 64,
                 depth: int = 2) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("num_classes", num_classes)
        check_positive_int("width", width)
        check_positive_int("depth", depth)
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for _ in range(depth):
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        layers.append(nn.Linear(previous, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Conv(3x3)-BN-ReLU blocks, a 2x2 max-pool after each, global average pool, linear head."""

    def __init__(self, in_channels: int, num_classes: int,
                 widths: Sequence[int] = (16, 32), batchnorm: bool = True) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        widths = _check_widths("widths", widths)
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += _conv_bn_relu(previous, width, batchnorm)
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            previous = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(-2, -1)))


class VGGStyle(nn.Module):
    """A VGG-BN in miniature: stages of 3x3 conv-BN-ReLU layers and max-pools, no skip connections.

    ``stages`` lists the widths of the conv layers of each stage, e.g. ``((16, 16), (32, 32))``;
    VGG-16-BN is ``((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3)``.
    """

    def __init__(self, in_channels: int, num_classes: int,
                 stages: Sequence[Sequence[int]] = ((16, 16), (32, 32), (64, 64)),
                 batchnorm: bool = True) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_classes", num_classes)
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
            raise ValueError(f"stages: expected a non-empty sequence of width sequences, "
                             f"got {stages!r}")
        layers: list[nn.Module] = []
        previous = in_channels
        for stage in stages:
            for width in _check_widths("stages", stage):
                layers += _conv_bn_relu(previous, width, batchnorm)
                previous = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(-2, -1)))


class BasicBlock(nn.Module):
    """He et al.'s basic block: two 3x3 conv-BN layers, option-A (parameter-free) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        check_positive_int("c_in", c_in)
        check_positive_int("c_out", c_out)
        check_positive_int("stride", stride)
        if c_out < c_in:
            raise ValueError(f"c_out: the option-A shortcut only pads channels, so expected "
                             f">= c_in = {c_in}, got {c_out}")
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.extra_channels = c_out - c_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity; subsample by the stride and zero-pad the new channels when shapes change."""
        if self.stride > 1:
            x = x[..., ::self.stride, ::self.stride]
        if self.extra_channels > 0:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int,
                 width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        previous = width
        for stage in range(3):
            c_out = width * 2**stage
            for k in range(blocks_per_stage):
                stride = 2 if (stage > 0 and k == 0) else 1
                blocks.append(BasicBlock(previous, c_out, stride))
                previous = c_out
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(previous, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.classifier(out.mean(dim=(-2, -1)))


def cifar_resnet(depth: int = 20, num_classes: int = 100, in_channels: int = 3,
                 width: int = 16) -> nn.Module:
    """He et al.'s CIFAR ResNet of ``depth`` = 6n + 2 layers (20, 32, 44, 56, 110, ...)."""
    check_positive_int("depth", depth, minimum=8)
    if (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n + 2 (20, 32, 44, 56, ...), got {depth}")
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    check_positive_int("width", width)
    return _CifarResNet((depth - 2) // 6, num_classes, in_channels, width)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
