"""Non-finite values caught where they become probabilities.

A logit of +inf or -inf is a finite probability after a sigmoid or a softmax (1 or 0): a model whose arithmetic
overflowed (a corrupted weight: one bit of a float's exponent turns 0.01 into 3e36) would give a confident answer
where it computed none, and a NaN is caught later only when it survives to the probability. Every family's
``run`` goes through :func:`run_guarded`, which watches the inputs of torch's sigmoid and softmax functions while
the family runs (a ``TorchFunctionMode``: no code in the families, and those inputs are the small logit and map
tensors) and makes a view whose values were not finite there no result, said so. The mode sees what runs on the
calling thread (the families run their networks there); a family that computes a softmax outside torch checks
its logits itself (the sliding window's numpy softmax).

On a GPU the watch keeps a flag on the device and reads it once at the end of the call: no synchronisation per
operation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch.overrides import TorchFunctionMode

from inference.families.protocol import ModelFamily, Prepared
from inference.results.exam_result import non_finite
from inference.results.types import InputFrame, ModelIdentity, ModelViewOutput

WATCHED = frozenset({
    torch.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_, torch.special.expit, F.logsigmoid,
    torch.softmax, torch.Tensor.softmax, F.softmax, torch.special.softmax, F.softmin,
    torch.log_softmax, torch.Tensor.log_softmax, F.log_softmax, torch.special.log_softmax,
})
WHERE = "the input of a sigmoid or softmax (logits or maps)"


class _Watch(TorchFunctionMode):
    """Records whether any watched function was given a value that is not a finite number."""

    def __init__(self) -> None:
        super().__init__()
        self.flag: torch.Tensor | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        if func in WATCHED:
            x = args[0] if args else kwargs.get("input", kwargs.get("self"))
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                bad = ~torch.isfinite(x).all()
                self.flag = bad if self.flag is None else self.flag | bad
        return func(*args, **kwargs)

    def seen(self) -> bool:
        return self.flag is not None and bool(self.flag)


def not_finite_output(frame: InputFrame, classes: Sequence[str], where: str) -> ModelViewOutput:
    """A view's output that is no result because the network's values were not finite at ``where``: NaN
    probabilities (the pipeline's "not a finite number") and the place in the frame's record (``not_finite``),
    which :func:`not_finite_reason` quotes."""
    said = ", ".join(filter(None, (frame.record.get("not_finite"), where)))
    return ModelViewOutput(probabilities=dict.fromkeys(classes, float("nan")), layers=(), regions=(), extras={},
                           frame=dataclasses.replace(frame, record={**frame.record, "not_finite": said}))


def not_finite_reason(output: ModelViewOutput) -> str:
    """What of a view's output is not a finite number, with where in the network it began when the family said
    so ("" when all is finite): the one wording of the pipeline's no-result reason and of evaluate's refusal."""
    problem = non_finite(output)
    if not problem:
        return ""
    inside = output.frame.record.get("not_finite")
    return problem + (f"; not finite inside the network: {inside}" if inside else "")


def run_guarded(family: ModelFamily, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device,
                mode: str, identity: ModelIdentity) -> list[ModelViewOutput]:
    """``family.run`` with non-finite sigmoid and softmax inputs made no result, view by view (a batch where
    one was seen runs again a view at a time, to tell which)."""
    watch = _Watch()
    with watch:
        outputs = family.run(model, batch, device, mode, identity)
    if not watch.seen():
        return outputs
    if len(batch) == 1:
        return [out if out.refused else not_finite_output(out.frame, list(out.probabilities), WHERE)
                for out in outputs]
    return [out for one in batch for out in run_guarded(family, model, [one], device, mode, identity)]
