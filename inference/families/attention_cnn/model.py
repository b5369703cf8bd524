"""A CNN encoder with an attention stage that classifies a whole (resized) mammogram into the seven MIAS
abnormality classes (Krishnakumar et al., "Mammogram Classification for Malignancy Localization Using
Attention Learning", 2021).

* Encoder: VGG16's thirteen 3x3 convolutions with ReLUs and five 2x2 max-pools, laid out exactly as
  torchvision's ``vgg16().features`` (``features.0`` … ``features.30``), so that a torchvision state dict
  maps by a rename; ``width`` scales every layer's channels (64 = VGG16 itself). 224 x 224 x 3 in,
  7 x 7 x 8·width out, then a batch norm.
* Attention, ``attention="conv"`` (the default): 1x1 convolutions C -> C/8 (ReLU) -> C/32 (ReLU) -> 1
  (sigmoid) give the map A; the features are pooled as GAP(A ⊙ F) / GAP(A).
* Attention, ``attention="gru"`` (the paper's encoder–decoder, literally): a GRU cell attends softly over the
  49 positions for ``gru_steps`` steps (additive attention on the features and the hidden state); the map is
  the mean of the steps' attention weights and the pooled feature the features weighted by it.
* Head: dropout 0.5 -> dense 128 (ELU) -> dropout 0.25 -> dense ``num_classes`` (logits; softmax outside).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
ATTENTIONS = ("conv", "gru")


@dataclass(frozen=True)
class AttentionCNNConfig:
    """Attributes: width (VGG16's first-layer channels; 64 is VGG16), input_size, num_classes, attention
    ("conv" or "gru"), gru_steps, gru_hidden, head_hidden, dropout (head, then hidden)."""

    width: int = 64
    input_size: int = 224
    num_classes: int = 7
    attention: str = "conv"
    gru_steps: int = 3
    gru_hidden: int = 128
    head_hidden: int = 128
    dropout: tuple[float, float] = (0.5, 0.25)

    def __post_init__(self) -> None:
        if self.width < 8 or self.width % 8:
            raise ValueError(f"the encoder width must be a positive multiple of 8, not {self.width}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, not {self.attention!r}")
        if self.input_size % 32:
            raise ValueError(f"the input size must be a multiple of 32 (five max-pools), not {self.input_size}")
        if self.num_classes < 2 or self.gru_steps < 1:
            raise ValueError("at least two classes and one attention step")

    @property
    def channels(self) -> int:
        return 8 * self.width

    @property
    def map_size(self) -> int:
        return self.input_size // 32


@dataclass(frozen=True)
class AttentionOutput:
    logits: torch.Tensor  # (N, K)
    attention: torch.Tensor  # (N, 1, 7, 7) in [0, 1] (conv) or summing to 1 over the positions (gru)
    pooled: torch.Tensor  # (N, C)


def vgg16_features(width: int = 64) -> nn.Sequential:
    """VGG16's convolutional part, with torchvision's module indices."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out = int(item) * width // 64
            layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = out
    return nn.Sequential(*layers)


def attention_pool(features: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """GAP(A ⊙ F) / GAP(A): (N, C, h, w) features, (N, 1, h, w) map -> (N, C)."""
    return (features * attention).mean(dim=(2, 3)) / attention.mean(dim=(2, 3)).clamp_min(1e-6)


class ConvAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, channels // 8, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(channels // 8, channels // 32, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(channels // 32, 1, 1), nn.Sigmoid())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = self.layers(features)
        return attention, attention_pool(features, attention)


class GRUAttention(nn.Module):
    """Soft attention over the positions, driven by a GRU cell for a fixed number of steps."""

    def __init__(self, channels: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.initial = nn.Linear(channels, hidden)
        self.key = nn.Linear(channels, hidden)
        self.query = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1)
        self.cell = nn.GRUCell(channels, hidden)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = features.shape
        positions = features.flatten(2).transpose(1, 2)  # (N, hw, C)
        keys = self.key(positions)
        state = torch.tanh(self.initial(positions.mean(dim=1)))
        weights = []
        for _ in range(self.steps):
            alpha = torch.softmax(self.score(torch.tanh(keys + self.query(state)[:, None])).squeeze(-1), dim=1)
            context = torch.bmm(alpha[:, None], positions).squeeze(1)
            state = self.cell(context, state)
            weights.append(alpha)
        mean = torch.stack(weights).mean(dim=0)  # (N, hw), sums to 1
        pooled = torch.bmm(mean[:, None], positions).squeeze(1)
        return mean.view(n, 1, h, w), pooled


class AttentionCNN(nn.Module):
    """(N, 3, 224, 224) ImageNet-normalised images -> :class:`AttentionOutput`. Stores nothing on ``self``."""

    def __init__(self, config: AttentionCNNConfig = AttentionCNNConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = vgg16_features(config.width)
        self.feature_bn = nn.BatchNorm2d(config.channels)
        if config.attention == "conv":
            self.attention = ConvAttention(config.channels)
        else:
            self.attention = GRUAttention(config.channels, config.gru_hidden, config.gru_steps)
        first, second = config.dropout
        self.head = nn.Sequential(nn.Dropout(first), nn.Linear(config.channels, config.head_hidden), nn.ELU(),
                                  nn.Dropout(second), nn.Linear(config.head_hidden, config.num_classes))

    def forward(self, x: torch.Tensor) -> AttentionOutput:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, h, w), got {tuple(x.shape)}")
        features = self.feature_bn(self.encoder(x))
        attention, pooled = self.attention(features)
        return AttentionOutput(self.head(pooled), attention, pooled)


def remap_torchvision_vgg16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ``vgg16`` state dict (``features.N.weight`` … ``classifier.*``) as this encoder's
    (``encoder.N.weight``); the classifier (ImageNet's 1000 classes) is dropped. Pure."""
    out = {}
    for key, value in state.items():
        if key.startswith("features."):
            out["encoder." + key[len("features."):]] = value
    return out
