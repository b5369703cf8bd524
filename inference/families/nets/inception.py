"""Inception-v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016) as a
glimpse classifier, with the module names of torchvision's ``inception_v3`` (``Conv2d_1a_3x3.conv``,
``Mixed_5b.branch1x1.bn`` …) so that an ImageNet state dict maps by a rename.

``width`` scales every layer's channels (1.0 is Inception-v3; smaller widths keep the layout for phantom
training on a CPU). Every convolution is bias-free and followed by a batch norm (eps 0.001) and a ReLU. The
auxiliary classifier of the paper is left out (it only adds a training loss); its keys are dropped when a
torchvision state dict is mapped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scaled(channels: int, width: float) -> int:
    """``channels`` x ``width``, rounded to a multiple of 8 (at least 8)."""
    return channels if width == 1.0 else max(8, int(round(channels * width / 8)) * 8)


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    """1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1 (35 x 35 grid)."""

    def __init__(self, cin: int, pool: int, w: float) -> None:
        super().__init__()
        c64, c48, c96 = scaled(64, w), scaled(48, w), scaled(96, w)
        self.branch1x1 = BasicConv2d(cin, c64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, c48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(c48, c64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, kernel_size=1)
        self.out_channels = 2 * c64 + c96 + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)),
        ], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | max-pool."""

    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c384, c64, c96 = scaled(384, w), scaled(64, w), scaled(96, w)
        self.branch3x3 = BasicConv2d(cin, c384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c64, c96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c96, c96, kernel_size=3, stride=2)
        self.out_channels = c384 + c96 + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], dim=1)


class InceptionC(nn.Module):
    """Factorised 7x7 (17 x 17 grid): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> (7x1 -> 1x7) x 2 | avg-pool -> 1x1."""

    def __init__(self, cin: int, c7: int, w: float) -> None:
        super().__init__()
        c192 = scaled(192, w)
        self.branch1x1 = BasicConv2d(cin, c192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, c192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, c192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, c192, kernel_size=1)
        self.out_channels = 4 * c192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)),
        ], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1 -> 3x3 stride 2 | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 | max-pool."""

    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c192, c320 = scaled(192, w), scaled(320, w)
        self.branch3x3_1 = BasicConv2d(cin, c192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(c192, c320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, c192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(c192, c192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c192, c192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c192, c192, kernel_size=3, stride=2)
        self.out_channels = c320 + c192 + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, kernel_size=3, stride=2)],
                         dim=1)


class InceptionE(nn.Module):
    """Expanded filter bank (8 x 8 grid): 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | avg-pool -> 1x1."""

    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c320, c384, c448, c192 = scaled(320, w), scaled(384, w), scaled(448, w), scaled(192, w)
        self.branch1x1 = BasicConv2d(cin, c320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, c384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(c384, c384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(c384, c384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, c448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c448, c384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(c384, c384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(c384, c384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, c192, kernel_size=1)
        self.out_channels = c320 + 4 * c384 + c192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(single), self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)),
        ], dim=1)


class InceptionV3(nn.Module):
    """(N, 3, s, s) glimpses (s >= 75; 299 as published) -> (N, num_classes) logits."""

    def __init__(self, num_classes: int = 3, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        w = width
        self.Conv2d_1a_3x3 = BasicConv2d(3, scaled(32, w), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(scaled(32, w), scaled(32, w), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(scaled(32, w), scaled(64, w), kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(scaled(64, w), scaled(80, w), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(scaled(80, w), scaled(192, w), kernel_size=3)
        self.Mixed_5b = InceptionA(scaled(192, w), scaled(32, w), w)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, scaled(64, w), w)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, scaled(64, w), w)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, w)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, scaled(128, w), w)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, scaled(160, w), w)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, scaled(160, w), w)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, scaled(192, w), w)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, w)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, w)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, w)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.Mixed_7c.out_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < 75:
            raise ValueError(f"expected glimpses of shape (N, 3, s, s) with s >= 75, got {tuple(x.shape)}")
        return self.fc(self.dropout(self.features(x)))


def remap_torchvision_inception_v3(state: dict[str, torch.Tensor], grey: str = "replicate") -> dict[str, torch.Tensor]:
    """A torchvision ``inception_v3`` state dict as this classifier's, without the auxiliary classifier
    (``AuxLogits.*``) and the ImageNet ``fc`` (1000 classes; the glimpse classes are trained). Pure.

    ``grey``: "replicate" keeps the three-channel first convolution (grey glimpses are replicated to three
    channels); "sum" sums it over the input channels into one (``Conv2d_1a_3x3.conv.weight`` (32, 1, 3, 3)),
    for a classifier built to read one channel.
    """
    if grey not in ("replicate", "sum"):
        raise ValueError(f"grey must be 'replicate' or 'sum', not {grey!r}")
    out = {}
    for key, value in state.items():
        if key.startswith(("AuxLogits.", "fc.")):
            continue
        if key == "Conv2d_1a_3x3.conv.weight" and grey == "sum":
            value = value.sum(dim=1, keepdim=True)
        out[key] = value
    return out
