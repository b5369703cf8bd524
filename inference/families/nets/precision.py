"""Mixed precision of the fast mode: which parts of a network keep float32 under the caller's bf16 autocast.

Two tools. ``Float32`` runs a whole module in float32 (autocast off): for the parts whose rounding moves an
output past the fast mode's bound. ``float32_stream`` keeps a residual network's stream in float32 while its
convolutions still run bf16 arithmetic: each convolution's output is handed back as float32, so the batch
norms, ReLUs and residual sums that follow work in float32 and the stream is not rounded to 8 bits at every
block (under plain autocast it is, and that rounding, not the convolutions' own, is what grows through a deep
network). Without autocast (exact mode, or a CPU without native bf16) both are the module itself, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn


class Float32(nn.Module):
    """Runs the module it holds in float32 with autocast off, whatever autocast the caller has on."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())


class Float32Output(nn.Module):
    """A convolution computed under the caller's autocast (bf16 arithmetic where it is on) whose output is
    float32."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).float()


def float32_stream(module: nn.Module) -> nn.Module:
    """Wrap every convolution inside ``module`` in ``Float32Output`` (in place; once, however often it is
    called); returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, (Float32, Float32Output)):
            continue
        if isinstance(child, nn.Conv2d):
            setattr(module, name, Float32Output(child))
        else:
            float32_stream(child)
    return module


def fast_global_network(net: nn.Module) -> nn.Module:
    """The fast mode's global network (GMIC's and GLAM's pre-activation ResNet-22, ``GlobalNetwork``), in place:
    its stem and 16-channel first stage wholly in float32 (bf16 gains nothing on their 16 channels, even on
    AMX, and rounding there moved GMIC's y_fusion by 0.011), its other stages with bf16 convolutions over a
    float32 residual stream. Returns ``net``."""
    net.stem = Float32(net.stem)
    net.stages[0] = Float32(net.stages[0])
    for stage in net.stages[1:]:
        float32_stream(stage)
    return net
