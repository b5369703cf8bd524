"""Run by tests/inference/families/gmic/test_training.py in a child process: a tiny CPU training run that reports the memory
format its inputs and weights had during the training steps (one JSON line on stdout)."""

from __future__ import annotations

import json
import sys

import torch

import inference.cpu
from inference.families.gmic.model import GMIC
from inference.families.gmic.training import TrainConfig, train


def strictly_channels_last(tensor: torch.Tensor) -> bool:
    """Channels-last and not also plain contiguous (a tensor with one channel is both)."""
    return tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


def main() -> None:
    out, pretend = sys.argv[1], sys.argv[2]
    if pretend == "avx512":  # as a Sapphire-Rapids-class CPU reports itself (safe to pretend: it only
        inference.cpu.cpu_flags.cache_clear()  # moves training to the contiguous format)
        real = inference.cpu.cpu_flags()
        inference.cpu.cpu_flags = lambda: real | {"avx512f", "amx_bf16"}
    seen = []
    original = GMIC.forward

    def recording_forward(self, x):
        if not self.training:
            return original(self, x)
        block = self.global_net.stages[0][0]
        step = {"weight_channels_last": strictly_channels_last(block.conv1.weight)}

        def record_activation(_module, inputs):  # the first stage's input: the stem's feature map
            step["input_channels_last"] = strictly_channels_last(inputs[0])

        handle = self.global_net.stages[0].register_forward_pre_hook(record_activation)
        try:
            return original(self, x)
        finally:
            handle.remove()
            seen.append(step)

    GMIC.forward = recording_forward
    config = TrainConfig(out=out, n_train=2, n_val=2, epochs=1, seed=1, device="cpu", global_width=4, local_width=8)
    train(config, progress=lambda text: None)
    from inference.families.gmic.training import training_memory_format

    chosen = training_memory_format(torch.device("cpu"))
    print(json.dumps({"steps": seen, "chosen": "channels_last" if chosen == torch.channels_last else "contiguous"}))


if __name__ == "__main__":
    main()
