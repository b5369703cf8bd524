"""Non-finite values caught where they become probabilities.

A logit of +inf or -inf is a finite probability after a sigmoid or a softmax (1 or 0): a model whose arithmetic
overflowed (a corrupted weight: one bit of a float's exponent turns 0.01 into 3e36) would give a confident answer
where it computed none, and a NaN is caught later only when it survives to the probability. Every family's
``run`` goes through :func:`run_guarded`, which watches the inputs of torch's sigmoid and softmax while the
family runs (a ``TorchFunctionMode``: no code in the families, and those inputs are the small logit and map
tensors) and makes a view whose values were not finite there no result, said so.

On a GPU the watch keeps a flag on the device and reads it once at the end of the call: no synchronisation per
operation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch.overrides import TorchFunctionMode

from inference.results.types import ModelViewOutput

WATCHED = frozenset({torch.sigmoid, torch.Tensor.sigmoid, torch.special.expit, torch.softmax, torch.Tensor.softmax,
                     F.softmax, torch.log_softmax, torch.Tensor.log_softmax, F.log_softmax})
WHERE = "the input of a sigmoid or softmax (logits or maps)"


class _Watch(TorchFunctionMode):
    """Records whether any watched function was given a value that is not a finite number."""

    def __init__(self) -> None:
        super().__init__()
        self.flag: torch.Tensor | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        if func in WATCHED and args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
            bad = ~torch.isfinite(args[0]).all()
            self.flag = bad if self.flag is None else self.flag | bad
        return func(*args, **(kwargs or {}))

    def seen(self) -> bool:
        return self.flag is not None and bool(self.flag)


def _no_result(output: ModelViewOutput) -> ModelViewOutput:
    """The output made no result: its probabilities NaN (the pipeline's "not a finite number"), the place named
    in the frame's record (``not_finite``), which the reason quotes."""
    record = output.frame.record
    said = ", ".join(filter(None, (record.get("not_finite"), WHERE)))
    return dataclasses.replace(output, probabilities=dict.fromkeys(output.probabilities, float("nan")),
                               layers=(), regions=(), extras={},
                               frame=dataclasses.replace(output.frame, record={**record, "not_finite": said}))


def run_guarded(family, model: torch.nn.Module, batch: Sequence, device: torch.device, mode: str,  # noqa: ANN001
                identity) -> list[ModelViewOutput]:  # noqa: ANN001 - a family and its identity (protocol types)
    """``family.run`` with non-finite sigmoid and softmax inputs made no result, view by view (a batch where
    one was seen runs again a view at a time, to tell which)."""
    watch = _Watch()
    with watch:
        outputs = family.run(model, batch, device, mode, identity)
    if not watch.seen():
        return outputs
    if len(batch) == 1:
        return [out if out.refused else _no_result(out) for out in outputs]
    return [out for one in batch for out in run_guarded(family, model, [one], device, mode, identity)]
