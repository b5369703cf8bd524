"""Which device runs the models: one answer for every command (analysis, batch, reports, training,
evaluation), kept apart from the pipeline so that training can ask it without importing the families."""

from __future__ import annotations

import torch


def choose_device(requested: str | torch.device | None = None) -> tuple[torch.device, tuple[str, ...]]:
    """Resolve ``auto``/None/``cpu``/``cuda``: CUDA when present, else the CPU with a notice."""
    if requested is None or str(requested) == "auto":
        return (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")), ()
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu"), ("CUDA was requested but no usable GPU was found; running on the CPU",)
    return device, ()
