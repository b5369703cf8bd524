"""This CPU's arithmetic peaks, for reading the model figures against: a 4096² matmul and 3 × 3 convolutions of
the shapes GMIC and GLAM run (channels-last), in float32 and bf16, on torch's threads.

    python bench/bench_peaks.py [--runs 7]

bf16 is fast only where the CPU has it natively (AMX, AVX-512-BF16); elsewhere it is emulated and slow.
Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_time  # noqa: E402
from inference.cpu import cpu_flags_text  # noqa: E402

# (channels, rows, cols): GMIC's 16-channel first stage, GLAM's local stages at stride 1 on the 512-px patch
CONVOLUTIONS = ((16, 735, 479), (64, 368, 240), (256, 128, 128), (512, 128, 128))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU: {cpu_flags_text()}")
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(4096, 4096).to(dtype), torch.randn(4096, 4096).to(dtype)
            seconds = median_time(lambda: a @ b, args.runs)
            print(f"{str(dtype):<15} matmul 4096²: {2 * 4096**3 / seconds / 1e9:7.0f} GFLOP/s")
            for channels, rows, cols in CONVOLUTIONS:
                conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                conv = conv.to(dtype).to(memory_format=torch.channels_last)
                x = torch.randn(1, channels, rows, cols).to(dtype).contiguous(memory_format=torch.channels_last)
                seconds = median_time(lambda: conv(x), args.runs)
                flop = 2 * channels * channels * 9 * rows * cols
                print(f"{'':<15} conv 3x3 {channels:>3} ch at {rows} x {cols}: {seconds * 1e3:7.1f} ms, "
                      f"{flop / seconds / 1e9:5.0f} GFLOP/s")


if __name__ == "__main__":
    main()
