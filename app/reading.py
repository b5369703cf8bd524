"""The human-machine hybrid (no Qt): one definition for the workstation, reports and studies."""

from __future__ import annotations


def hybrid(reader: float | None, model: float | None) -> float | None:
    """The mean of the reader's and the model's probability of malignancy (the GMIC reader study's hybrid);
    None unless both exist."""
    if reader is None or model is None:
        return None
    return (reader + model) / 2.0


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"
