"""Where training runs and in which memory format (every family's training shares these)."""

from __future__ import annotations

import os

import torch

from inference.devices import choose_device


def training_device(requested: str, rank: int = 0) -> torch.device:
    """``auto`` (CUDA where there is one), ``cuda`` (this process's local rank) or ``cpu``; resolved as the
    analysis resolves it (``inference.devices.choose_device``): ``cuda`` without a usable GPU runs on the CPU
    (the command says so with ``choose_device``'s notice) instead of failing deep in torch."""
    device, _notices = choose_device(requested)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def training_memory_format(device: torch.device, requested: str = "auto") -> torch.memory_format:
    """The memory format of the model and inputs during training.

    On the CPU, oneDNN's AVX-512 backward kernels for channels-last convolutions corrupt memory (seen with
    torch 2.13 on Sapphire-Rapids-class CPUs: ``brgconv_strided:avx512_core backward_data`` of a 1x1
    stride-2 shortcut, then ``free(): invalid next size`` or a segmentation fault). Channels-last is used
    only where it was measured to help and to be safe: on CUDA, and on CPUs where oneDNN runs AVX2
    kernels (no AVX-512, or ``ONEDNN_MAX_CPU_ISA`` capped at AVX2), where a training step takes 0.58 s
    instead of 0.87 s (``bench/bench_train.py``). Everywhere else training is contiguous.
    """
    if requested not in ("auto", "contiguous", "channels_last"):
        raise ValueError(f"memory_format must be auto, contiguous or channels_last, not {requested!r}")
    if requested != "auto":
        return torch.channels_last if requested == "channels_last" else torch.contiguous_format
    if device.type == "cuda" or not onednn_may_use_avx512():
        return torch.channels_last
    return torch.contiguous_format


def onednn_may_use_avx512() -> bool:
    """Whether oneDNN may pick AVX-512 (or AMX) kernels here: the CPU has them and ``ONEDNN_MAX_CPU_ISA``
    (which can only lower the ISA) does not cap it at AVX2 or below."""
    from inference.cpu import has_avx512  # noqa: PLC0415

    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if cap in ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"):
        return False
    return has_avx512()
