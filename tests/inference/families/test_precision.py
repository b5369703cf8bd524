"""The fast mode's mixed precision: float32 parts and the float32 residual stream under bf16 autocast."""

from __future__ import annotations

import pytest
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


def _wiring(global_net: nn.Module) -> dict[str, str]:
    """Each convolution of a fast-mode global network: how it runs under bf16 autocast (inside a ``Float32``,
    wrapped in a ``Float32Output``, or plain autocast)."""
    modules = dict(global_net.named_modules())
    wiring = {}
    for name, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        parts = name.split(".")
        ancestors = [modules[".".join(parts[:i])] for i in range(len(parts))]
        if any(isinstance(a, Float32) for a in ancestors):
            wiring[name] = "Float32"
        else:
            wiring[name] = "Float32Output" if isinstance(ancestors[-1], Float32Output) else "autocast"
    return wiring


@pytest.mark.parametrize("family", ["gmic", "glam"])
def test_the_shipped_fast_modes_keep_the_global_stream_in_float32(family):
    """Every convolution of the global network runs wholly in float32 (stem, first stage) or hands back float32
    (the other stages): without it the fast mode's global maps moved by 0.13 (GLAM) and y_fusion by 0.012
    (GMIC), over the fast-mode bounds."""
    from inference.families import registry

    if family == "gmic":
        from inference.families.gmic.model import GMIC as Model
    else:
        from inference.families.glam.model import GLAM as Model
    torch.manual_seed(0)
    fast = registry.get(family).fast.fold(Model().eval())
    wiring = _wiring(fast.global_net)
    assert wiring, "no convolution found"
    for name, wrapper in wiring.items():
        expected = "Float32" if name.startswith(("stem", "stages.0.")) else "Float32Output"
        assert wrapper == expected, (name, wrapper)
