"""GlimpseNet's two networks (Liu & Hang, Stanford CS231n poster).

* FCGN, the fully convolutional glimpse network: (N, 1, 512, 512) breast (facing right, cropped, scaled to
  [0, 1]) -> (N, 1, 512, 512) sigmoid saliency. Six encoder stages, each a stride-2 3x3 convolution and a
  3x3 convolution (batch norm, ReLU), channels w, 2w, 4w, 8w, 16w, 16w down to the 8 x 8 x 16w bottleneck
  (8 x 8 x 256 at the default w = 16, as the poster); a global context layer, an 8 x 8 convolution to
  1 x 1 x ``context`` (4096 on the poster) and back by a 1 x 1 convolution, added to every bottleneck cell;
  six decoder stages, each a nearest x2 upsampling, the encoder's map of that size concatenated (the poster
  draws no skips; they keep the map sharp enough to draw glimpse boxes from) and a 3x3 convolution; a 1x1
  convolution to the saliency logit.
* The glimpse classifier: Inception-v3 (:mod:`inference.families.nets.inception`), three classes.

Between the two, glimpse extraction is not differentiable (threshold, connected regions, suppression), so
the networks are trained one after the other (``inference.families.glimpsenet.training``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inference.families.nets.inception import InceptionV3


@dataclass(frozen=True)
class GlimpseNetConfig:
    """Attributes: fcgn_width (w), context (the 1 x 1 layer's channels), input_size (the FCGN's square input;
    a multiple of 64), classifier_width (Inception-v3's channel scale; 1.0 is the published network),
    num_classes."""

    fcgn_width: int = 16
    context: int = 4096
    input_size: int = 512
    classifier_width: float = 1.0
    num_classes: int = 3

    def __post_init__(self) -> None:
        if self.fcgn_width < 1 or self.context < 1:
            raise ValueError("the FCGN width and context must be positive")
        if self.input_size % 64 or self.input_size < 64:
            raise ValueError(f"the FCGN input must be a multiple of 64 (six stride-2 stages), not {self.input_size}")
        if not 0 < self.classifier_width <= 1.0 or self.num_classes < 2:
            raise ValueError("the classifier width must be in (0, 1] and there must be at least two classes")

    @property
    def stages(self) -> tuple[int, ...]:
        w = self.fcgn_width
        return (w, 2 * w, 4 * w, 8 * w, 16 * w, 16 * w)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class FCGN(nn.Module):
    def __init__(self, config: GlimpseNetConfig) -> None:
        super().__init__()
        stages = config.stages
        self.encoder = nn.ModuleList()
        cin = 1
        for cout in stages:
            self.encoder.append(nn.Sequential(_conv(cin, cout, stride=2), _conv(cout, cout)))
            cin = cout
        bottleneck = config.input_size // 64
        self.context = nn.Sequential(nn.Conv2d(cin, config.context, bottleneck), nn.ReLU(inplace=True),
                                     nn.Conv2d(config.context, cin, 1))
        skips = (1, *stages[:-1])  # the input, then each encoder stage but the last
        self.decoder = nn.ModuleList()
        for skip, cout in zip(reversed(skips), reversed((stages[0], *stages[:-1])), strict=True):
            self.decoder.append(_conv(cin + skip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3] or x.shape[2] % 64:
            raise ValueError(f"expected (N, 1, s, s) breasts with s a multiple of 64, got {tuple(x.shape)}")
        skips = [x]
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        x = x + self.context(x)  # (N, C, 1, 1) broadcast over the 8 x 8 cells
        for stage in self.decoder:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = stage(torch.cat([x, skips.pop()], dim=1))
        return torch.sigmoid(self.head(x))


class GlimpseNet(nn.Module):
    """The FCGN and the glimpse classifier; the family runs them with glimpse extraction in between."""

    def __init__(self, config: GlimpseNetConfig = GlimpseNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.fcgn = FCGN(config)
        self.classifier = InceptionV3(config.num_classes, config.classifier_width)
