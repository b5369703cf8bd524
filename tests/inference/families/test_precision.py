"""The fast mode's mixed precision: float32 parts and the float32 residual stream under bf16 autocast."""

from __future__ import annotations

import torch
from torch import nn

from inference.families.nets.precision import Float32, Float32Output, float32_stream
from inference.families.nets.resnet import GlobalNetwork


def _stage() -> nn.Module:
    torch.manual_seed(0)
    return GlobalNetwork(base_width=4).stages[1].eval()


def test_the_stream_stays_float32_while_the_convolutions_run_bf16():
    stage = float32_stream(_stage())
    convs = [m for m in stage.modules() if isinstance(m, Float32Output)]
    assert len(convs) == 5  # two blocks: conv1, conv2 each, and the first block's projection
    seen = []
    for wrapper in convs:
        wrapper.conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    x = torch.randn(1, 4, 32, 24)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = stage(x)
    assert set(seen) == {torch.bfloat16}  # the arithmetic is bf16 ...
    assert out.dtype == torch.float32  # ... the residual sums are not rounded to it
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = _stage()(x)
    assert plain.dtype == torch.bfloat16


def test_without_autocast_both_are_the_module_bit_for_bit():
    stage, x = _stage(), torch.randn(2, 4, 32, 24)
    with torch.inference_mode():
        expected = stage(x)
        assert torch.equal(float32_stream(_stage())(x), expected)
        assert torch.equal(Float32(_stage())(x), expected)


def test_float32_turns_autocast_off_inside():
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = Float32(nn.Conv2d(3, 2, 3))(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.float32
