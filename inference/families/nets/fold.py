"""Inference-only rewrite of a model: batch norms that follow a convolution folded into it (GMIC, GLAM,
the window classifier).

Used by the fast mode. The folded model computes the same function up to float rounding (measured against
the oracles by ``bench/bench_inference.py`` and ``tests/inference/test_fast_mode.py``).
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from inference.families.nets.resnet import BasicBlock, LocalNetwork, PreActBlock


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return a new eval-mode model whose conv -> BN pairs are single convolutions; ``model`` is untouched.

    In the pre-activation global network only ``conv1 -> bn2`` can fold (the other BN follows an addition or
    the max-pool); in the local ResNet-18 every BN follows a convolution.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, PreActBlock):
            module.conv1 = fuse_conv_bn_eval(module.conv1, module.bn2)
            module.bn2 = nn.Identity()
        elif isinstance(module, BasicBlock):
            module.conv1 = fuse_conv_bn_eval(module.conv1, module.bn1)
            module.bn1 = nn.Identity()
            module.conv2 = fuse_conv_bn_eval(module.conv2, module.bn2)
            module.bn2 = nn.Identity()
            if module.shortcut is not None:
                module.shortcut = nn.Sequential(fuse_conv_bn_eval(module.shortcut[0], module.shortcut[1]))
    for module in folded.modules():  # conv -> BN -> ... stems written as a Sequential
        if isinstance(module, nn.Sequential) and len(module) >= 2 and isinstance(module[0], nn.Conv2d) and \
                isinstance(module[1], nn.BatchNorm2d):
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
    for module in folded.modules():  # conv + bn pairs held as attributes (Inception-v3's BasicConv2d)
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(conv, bn)
            module.bn = nn.Identity()
    for local in (m for m in folded.modules() if isinstance(m, LocalNetwork)):
        local.stem_conv = fuse_conv_bn_eval(local.stem_conv, local.stem_bn)
        local.stem_bn = nn.Identity()
    return folded
