"""Training-step benchmark: forward + backward + Adam step of GMIC on phantom views, per memory format.

    python bench/bench_train.py [--steps 8] [--widths 8,16] [--formats contiguous,channels_last]

Prints the median seconds per step (one image a step, as ``inference.families.gmic.training`` runs) for each memory format,
with the CPU's flags, so that the format the training uses on the CPU is chosen from measurements.
Timing is printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.cpu import cpu_flags_text  # noqa: E402
from inference.memory import reuse_freed_memory  # noqa: E402
from inference.families.gmic.model import GMIC  # noqa: E402
from inference.families.gmic.training import TrainConfig, gmic_loss, phantom_samples, prepare_sample  # noqa: E402

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def step_times(config: TrainConfig, memory_format: torch.memory_format, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = GMIC(config.model_config()).to(memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    samples = phantom_samples(4, seed=1)
    prepared = [prepare_sample(s, config.model_config().cam_size) for s in samples]
    times = []
    for index in range(steps + 1):  # the first step warms up
        x, targets = prepared[index % len(prepared)]
        labels = torch.from_numpy(samples[index % len(samples)].labels)[None]
        started = time.perf_counter()
        x = x[None].contiguous(memory_format=memory_format)
        loss = gmic_loss(model(x), labels, config.saliency_lambda, config.saliency_beta, targets[None], 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index:
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--widths", default="8,16", help="global,local base widths (8,16 demo; 16,64 published)")
    parser.add_argument("--formats", default="contiguous,channels_last")
    args = parser.parse_args()
    reuse_freed_memory()
    global_width, local_width = (int(v) for v in args.widths.split(","))
    config = TrainConfig(global_width=global_width, local_width=local_width, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_flags_text()}")
    print(f"GMIC widths {global_width}/{local_width}, one 2944 x 1920 view per step, median of {args.steps} steps")
    for name in args.formats.split(","):
        times = step_times(config, FORMATS[name], args.steps)
        print(f"  {name:<14} {statistics.median(times):.3f} s/step  ({1 / statistics.median(times):.2f} img/s)")


if __name__ == "__main__":
    main()
