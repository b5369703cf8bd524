"""ResNet building blocks shared by GMIC and GLAM: the pre-activation global network ("ResNet-22", the same
in both) and the v1 local network (GMIC's ResNet-18 with strides 1, 2, 2, 2 and a spatial mean; GLAM's
ResNet-34 with every stage at stride 1, returning the feature map)."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., "Identity Mappings in Deep Residual Networks").

    The projection shortcut, when present, is applied to the block input *after* the first BN + ReLU,
    as in the GMIC global network.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, project: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = conv1x1(in_channels, out_channels, stride) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in-place activations and sums on freshly made tensors: the same arithmetic, without allocating
        # (and page-faulting) a new image-sized tensor each time; autograd needs none of the overwritten values
        activated = torch.relu_(self.bn1(x))
        residual = self.shortcut(activated) if self.shortcut is not None else x
        out = self.conv1(activated)
        out = self.conv2(torch.relu_(self.bn2(out)))
        return out.add_(residual)


class GlobalNetwork(nn.Module):
    """GMIC's global network: a pre-activation ResNet-22 on the full 1-channel image.

    A 7x7 stride-2 stem and an unpadded 3x3 stride-2 max-pool, then ``len(strides)`` stages of
    ``blocks_per_stage`` blocks whose width doubles from ``base_width``; the first block of every stage has
    a 1x1 projection shortcut. A final BN + ReLU closes it.

    Input (N, 1, H, W) float32; output h_g (N, base_width * 2**(stages-1), H/64, W/64) (46 x 30 for the
    2944 x 1920 window).
    """

    def __init__(
        self,
        base_width: int = 16,
        blocks_per_stage: int = 2,
        strides: tuple[int, ...] = (1, 2, 2, 2, 2),
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        stages = []
        in_channels = base_width
        for index, stride in enumerate(strides):
            width = base_width * 2**index
            blocks = [PreActBlock(in_channels, width, stride, project=True)]
            blocks += [PreActBlock(width, width, 1, project=False) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.final_bn = nn.BatchNorm2d(in_channels)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return torch.relu_(self.final_bn(x))

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(every stage's raw output — the residual sum, before any BN or ReLU —, the final BN + ReLU map).
        GLAM reads its class maps from the stage outputs at 1/16 and 1/32 of the input."""
        x = self.pool(self.stem(x))
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs, torch.relu_(self.final_bn(x))


class BasicBlock(nn.Module):
    """The ResNet v1 basic block (He et al., 2016): conv-BN-ReLU-conv-BN plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut(x) if self.shortcut is not None else x
        out = torch.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu_(out.add_(residual))


class LocalNetwork(nn.Module):
    """The local network: a ResNet v1 on 3-channel patches after a 7x7 stride-2 stem and a padded 3x3
    stride-2 max-pool.

    GMIC: ResNet-18 (blocks 2, 2, 2, 2; stage strides 1, 2, 2, 2), then a spatial mean: (M, 8 * base_width).
    GLAM: ResNet-34 (blocks 3, 4, 6, 3; every stage at stride 1, ``pooled=False``): the (M, 512, h/4, w/4)
    feature map.
    """

    def __init__(self, base_width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 strides: tuple[int, ...] = (1, 2, 2, 2), pooled: bool = True) -> None:
        super().__init__()
        self.pooled = pooled
        self.stem_conv = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.stem_bn = nn.BatchNorm2d(base_width)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages = []
        in_channels = base_width
        for index, count in enumerate(blocks):
            width = base_width * 2**index
            stride = strides[index]
            layer = [BasicBlock(in_channels, width, stride)]
            layer += [BasicBlock(width, width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layer))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.out_features = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu_(self.stem_bn(self.stem_conv(x))))
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3)) if self.pooled else x
