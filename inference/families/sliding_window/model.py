"""A residual CNN that classifies one 256 x 256 window of a mammogram (one grey channel) into four classes:
no tumour, benign without callback, benign, malignant (the window classifier of "Second Look", Thatte et al.).

The depth is configurable: ``stages`` residual stages (each halving the resolution and doubling the width)
of ``blocks_per_stage`` v1 basic blocks after a 3x3 stem, then global average pooling and a linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from inference.families.nets.resnet import BasicBlock


@dataclass(frozen=True)
class PatchClassifierConfig:
    """Attributes: window (pixels a side), width (stem channels), stages, blocks_per_stage, num_classes."""

    window: int = 256
    width: int = 16
    stages: int = 4
    blocks_per_stage: int = 1
    num_classes: int = 4

    def __post_init__(self) -> None:
        if self.window < 2 ** (self.stages + 1):
            raise ValueError(f"a {self.window}-pixel window is too small for {self.stages} stages")
        if min(self.width, self.stages, self.blocks_per_stage, self.num_classes) < 1:
            raise ValueError("width, stages, blocks_per_stage and num_classes must be positive")


class PatchClassifier(nn.Module):
    """(N, 1, window, window) standardised windows -> (N, num_classes) logits. Stores nothing on ``self``."""

    def __init__(self, config: PatchClassifierConfig = PatchClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(1, config.width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(config.width), nn.ReLU(inplace=True))
        stages, channels = [], config.width
        for index in range(config.stages):
            width = config.width * 2 ** index
            blocks = [BasicBlock(channels, width, 1 if index == 0 else 2)]
            blocks += [BasicBlock(width, width, 1) for _ in range(config.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected windows of shape (N, 1, h, w), got {tuple(x.shape)}")
        return self.classifier(self.stages(self.stem(x)).mean(dim=(2, 3)))
