"""What the families share at run time and at load time: strict state-dict checks, the device copy of a
module (the caller's module is never moved or changed), the fast mode's folded copy, and the numerics of
each mode."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.errors import CheckpointError
from inference.families.registry import spoken_name

logger = logging.getLogger(__name__)


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, family: str,
                named: Callable[[str], str] = str) -> None:
    """Refuse a state dict that lacks a weight, has an unknown one, or has one of the wrong shape, naming it as
    the file names it (``named``: a key of the model's tree -> the file's layout, for a state dict remapped)."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        raise CheckpointError(f"the checkpoint lacks the weight '{named(missing[0])}' ({len(missing)} missing)", path)
    if unexpected:
        raise CheckpointError(
            f"the checkpoint holds an unknown weight '{named(unexpected[0])}' ({len(unexpected)} unknown); "
            f"it is not a {spoken_name(family)} checkpoint", path)
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"the weight '{named(key)}' has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}", path)


def layout_namer(rules: Sequence[tuple[re.Pattern[str], str]], original: Iterable[str]) -> Callable[[str], str]:
    """A key of the model's tree -> its name in the file's layout, for a family whose published files are
    remapped by ``rules`` (pattern of the file's key -> replacement; ``<\\N>`` a torchvision stage, counted from
    1, made a stage counted from 0). A file in the model's own layout (none of its keys matched a rule) keeps the
    tree's names; a key no rule makes is named as it is. Messages named 'fusion.weight' of a file holding
    'fusion_dnn.weight'."""
    if not any(pattern.match(key) for key in original for pattern, _ in rules):
        return str
    inverse = []
    for pattern, replacement in rules:
        parts = re.split(r"(<\\\d>|\\\d)", replacement)
        regex = "".join(re.escape(part) if i % 2 == 0 else (rf"(?P<g{part[-2]}>\d+)" if part.startswith("<")
                                                           else rf"(?P<g{part[-1]}>.+?)")
                        for i, part in enumerate(parts))
        stages = {part[-2] for part in parts[1::2] if part.startswith("<")}
        inverse.append((re.compile(f"^{regex}$"), pattern.pattern, stages))

    def named(key: str) -> str:
        for regex, source, stages in inverse:
            match = regex.match(key)
            if match is None:
                continue
            values = {name[1:]: (str(int(v) + 1) if name[1:] in stages else v) for name, v in match.groupdict().items()}
            return _fill(source, values)
        return key

    return named


def _fill(pattern: str, values: Mapping[str, str]) -> str:
    """A rule's pattern (``^ds_net\\.layer_list\\.(\\d+)\\.(.+)$``) written out with its groups' values."""
    out, depth, group, number = [], 0, "", 0
    body = pattern.removeprefix("^").removesuffix("$")
    i = 0
    while i < len(body):
        char = body[i]
        if depth == 0 and char == "\\":
            out.append(body[i + 1])
            i += 2
            continue
        if char == "(":
            if depth == 0 and not body.startswith("(?:", i):
                number += 1
                group = str(number)
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and group:
                out.append(values.get(group, ""))
                group = ""
        elif depth == 0:
            out.append(char)
        i += 1
    return "".join(out)


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, family: str,
                named: Callable[[str], str] = str) -> nn.Module:
    """Check, cast floating tensors to float32 (published files carry float16), load strictly, eval mode."""
    check_state(model, state, path, family, named)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()},
                          strict=True)
    return model.eval()


def has_keys(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> bool:
    return all(any(key.startswith(prefix) for key in state) for prefix in prefixes)


# ------------------------------------------------------------------------------------------------- running


class FastMode:
    """How a family builds its fast-mode module: ``fold`` folds the batch norms into the convolutions (and does
    what else the family needs, e.g. the float32 parts of GMIC and GLAM); it then runs eagerly, channels-last,
    under bf16 autocast where the arithmetic is native (``fast_mode_numerics``), unless ``autocast`` is False
    (a family whose results bf16 cannot hold within the fast-mode bounds runs its folded copy in float32).

    Nothing is compiled. Measured on a 2-core AVX-512-BF16 CPU (docs/speed.md), torch.compile saved 3 % on GMIC
    and 1 % on GLAM once warm but cost 4-6 s in every new process, so a one-shot command's fast mode was slower
    than its exact mode; the eager fast path is faster than exact from the first exam on.
    """

    def __init__(self, fold: Callable[[nn.Module], nn.Module], autocast: bool = True) -> None:
        self.fold = fold
        self.autocast = autocast

    def build(self, model: nn.Module) -> nn.Module:
        return self.fold(model)


def model_fast_mode(family: object, settings: Mapping[str, object]) -> FastMode | None:
    """The fast mode one model runs with: its family's, but autocast where the family's keeps float32 and the
    model's metadata declares ``fast_autocast: true`` (its owner checked bf16 against the exact mode on their
    own data: a trained detector need not be as sensitive as the seeded oracle that made Mask R-CNN's fast
    mode float32)."""
    fast = getattr(family, "fast", None)
    if fast is not None and not fast.autocast and settings.get("fast_autocast") is True:
        return FastMode(fast.fold)
    return fast


_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, str], nn.Module]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def runnable(model: nn.Module, device: torch.device, mode: str, fast: FastMode | None) -> nn.Module:
    """The module to call for ``mode`` on ``device``: a cached copy in eval mode and channels-last memory
    format (faster on the CPU and on CUDA); in the fast mode folded. ``model`` itself is never
    moved or changed, so the workstation and a study task can share it."""
    key = (str(device), mode if fast is not None else "exact")
    with _LOCK:
        copies = _COPIES.setdefault(model, {})
        module = copies.get(key)
        if module is None:
            module = copy.deepcopy(model).eval()
            if mode == "fast" and fast is not None:
                module = fast.build(module)
            module = module.to(device=device, memory_format=torch.channels_last)
            copies[key] = module
    return module


def fast_mode_numerics(device: torch.device, fast: FastMode | None = None) -> str:
    """The arithmetic of the fast mode on ``device``: bf16 autocast on CUDA and on CPUs with native bf16
    matrix arithmetic (AMX / AVX-512-BF16), where it is faster; the folded fp32 path elsewhere, and for a
    family whose ``fast`` mode does not autocast."""
    from inference.cpu import has_bf16_arithmetic  # noqa: PLC0415

    if fast is not None and not fast.autocast:
        return "fp32"
    if device.type == "cuda":
        return "bf16"
    return "bf16" if has_bf16_arithmetic() else "fp32"


def mode_numerics(device: torch.device, mode: str, fast: FastMode | None = None) -> str:
    """The arithmetic ``mode`` runs with on ``device``: fp32 in the exact mode, else ``fast_mode_numerics``."""
    return fast_mode_numerics(device, fast) if mode == "fast" else "fp32"


@contextlib.contextmanager
def numerics(device: torch.device, mode: str, fast: FastMode | None = None) -> Iterator[None]:
    """Inference mode; exact mode turns TF32 off on CUDA; fast mode autocasts to bf16 where that is the
    faster arithmetic (``fast_mode_numerics``). A ``fast`` mode that does not autocast keeps the exact
    numerics (float32, TF32 off): its speed is the folded copy's."""
    exact = mode != "fast" or (fast is not None and not fast.autocast)
    bf16 = mode_numerics(device, mode, fast) == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if device.type != "cuda":
        with torch.inference_mode(), autocast:
            yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = not exact
    torch.backends.cudnn.allow_tf32 = not exact
    try:
        with torch.inference_mode(), autocast:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


GMIC_WINDOW = "gmic-window"  # the preprocessing GMIC and GLAM share: views prepared once for both


def prepare_gmic_window(model_image, view, horizontal_flip: bool):
    """The GMIC papers' preparation of one view (Stage-1 crop, optimal centre, the 2944 x 1920 window,
    standardisation) as a :class:`~inference.families.protocol.Prepared`; GMIC and GLAM both use it."""
    from inference.families.protocol import Prepared  # noqa: PLC0415
    from inference.results.types import InputFrame
    from inference.families.preprocess import WINDOW_SHAPE, prepare_view  # noqa: PLC0415

    prepared = prepare_view(model_image, view, horizontal_flip)
    m = prepared.mapping
    record = {"original_shape": list(m.original_shape), "crop_origin": list(m.crop_origin),
              "crop_shape": list(m.crop_shape), "flipped": m.flipped, "window_origin": list(m.window_origin)}
    frame = InputFrame(WINDOW_SHAPE, m.input_to_original_affine(), m.original_shape, record)
    return Prepared(view, prepared.input, frame, prepared.warnings)


def run_gmic_window(model: nn.Module, batch: Sequence, device: torch.device, mode: str,
                    fast: FastMode | None) -> tuple[nn.Module, object]:
    """GMIC's and GLAM's forward pass on views prepared by :func:`prepare_gmic_window`, stacked into one batch:
    the module that ran (:func:`runnable`) and what it returned."""
    module = runnable(model, device, mode, fast)
    x = torch.from_numpy(np.stack([p.input for p in batch]))[:, None]
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    with numerics(device, mode):
        return module, module(x)
