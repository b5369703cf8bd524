"""The CUDA path, proven in one run (issue 30): every family on the GPU against its oracle or its CPU exact run,
the timings, the four-view ensemble, the batch unit, one training step per family, peak GPU memory.

On the GPU machine (nvidia-h200), from the repository root, with ``carry`` [".whl", ".gpu_shared"] (both made
here first by ``bash bench/gpu_check_prepare.sh``), one line:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --shared .gpu_shared --out $OUT

Dry run on the CPU (the test suite runs it: tests/bench/test_gpu_check.py):

    python bench/gpu_check.py --device cpu --quick --out /tmp/gpu_check

Every part runs in its own try block with its own time budget, prints its progress, and is written to
``gpu_check.json`` and ``gpu_check.md`` under ``--out`` as soon as it ends (a run cut short keeps what it had).
A part that cannot run on this machine (no Ray, no pydicom, a family not in this checkout) says "not available"
and the run goes on. Deviations are printed against the tolerances of the CPU tests
(``tests/inference/oracle_tolerances.py``). Timings: CUDA events after warm-up on a GPU, ``time.perf_counter``
on the CPU; medians in milliseconds. Figures are reported, never asserted.

Exact mode on CUDA: float32 with TF32 off (``inference.families.common.numerics``); fast mode: the project's
fast mode (each family's ``FastMode.fold``: batch norms folded, GMIC's and GLAM's global networks in float32; bf16
autocast on CUDA), run eagerly as it ships (never compiled); the ``compile`` part times a torch.compile'd GMIC
path beside it, for comparison.

``--prepare DEST`` (used by bench/gpu_check_prepare.sh ``--set gmic|glam|maskrcnn``) copies one family's oracle
from the shared reference into DEST, small enough to travel: its seeded weights as byte planes in a compressed
npz (lossless: the loader rebuilds them bit for bit; GMIC's 56.6 MB of float32 take about 47 MB) and the goldens
of the views named (GMIC and GLAM: the GMIC golden's prepared input too; Mask R-CNN: the exam-0 PNG it reads).
Every family's together is over the 64 MiB a device call carries: one family a call.

Mask R-CNN's training row is one SGD step on its five losses (``inference.families.maskrcnn.training.losses``:
RPN objectness and box, box classification and regression, mask) over phantom images with one mass each.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# in this order; the two whose failure could leave the GPU in a bad state (compiling, graph capture) come last
PARTS = ("env", "oracles", "families", "ensemble", "training", "batch", "ray", "compile", "graphs")
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
PLANES_NAME = "seeded_state_dict.planes.npz"
# the published GMIC checkpoints' pooling thresholds: the ensemble's five members
ENSEMBLE_PERCENT_T = (0.02, 0.03, 0.03, 0.05, 0.1)
# seconds each part may take on the GPU machine (the whole run must end within 6 minutes)
BUDGETS = {"env": 20, "oracles": 45, "families": 80, "ensemble": 45, "training": 40, "batch": 60, "ray": 40,
           "compile": 70, "graphs": 30}
# the dry run's inputs are tiny: its budgets only stop a hung part, never a slow machine's honest one
QUICK_BUDGETS = {name: 240 for name in PARTS}


class NotAvailable(Exception):
    """What a part needs is not on this machine (a package, a GPU, a family): said, not an error."""


class Skipped(Exception):
    """A part left out on purpose (the time budget, ``--quick``)."""


_STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", flush=True)


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    device: torch.device
    quick: bool
    shared: Path | None
    work: Path
    deadline: float
    cache: dict = dataclasses.field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def pool(self):
        """(a pool of spawned processes, one per CPU core but two, its size): writes and decodes the exams."""
        if "pool" not in self.cache:
            import multiprocessing  # noqa: PLC0415
            from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

            workers = max(1, (os.cpu_count() or 2) - 2)
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_decode_worker_init)
            pool.submit(_decode_worker_init).result()  # the workers are up before any clock starts
            self.cache["pool"] = (pool, workers)
        return self.cache["pool"]

    def budget(self, part: str) -> float:
        table = QUICK_BUDGETS if self.quick else BUDGETS
        return max(1.0, min(table[part], self.remaining() - 5))


# ------------------------------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device, *, warmup: int, runs: int, budget_s: float) -> dict:
    """Median and minimum of ``fn`` in ms after ``warmup`` calls (CUDA events on a GPU, perf_counter on the
    CPU); timed calls stop when ``budget_s`` is spent, after at least one."""
    started = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    for _ in range(runs):
        if times and time.perf_counter() - started > budget_s:
            break
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end))
        else:
            begin_s = time.perf_counter()
            fn()
            times.append((time.perf_counter() - begin_s) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": len(times)}


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def counts(ctx: Context, warmup: int = 2, runs: int = 10) -> dict:
    """Warm-up and timed calls: the dry run times one call, warmed up by the call before it where there is one."""
    return {"warmup": 0, "runs": 1} if ctx.quick else {"warmup": warmup, "runs": runs}


def run_item(rows: list[dict], label: dict, fn: Callable[[], dict]) -> None:
    """One measurement of a part: its row, or its error (printed), or why it is not available here."""
    try:
        rows.append({**label, **fn()})
    except NotAvailable as reason:
        rows.append({**label, "not_available": str(reason)})
        say(f"  {label}: not available: {reason}")
    except Skipped as reason:
        rows.append({**label, "skipped": str(reason)})
        say(f"  {label}: skipped: {reason}")
    except ModuleNotFoundError as error:
        rows.append({**label, "not_available": f"the package {error.name} is not installed here"})
        say(f"  {label}: not available: {error}")
    except Exception as error:  # noqa: BLE001 - one measurement's failure is reported; the rest still run
        rows.append({**label, "error": f"{type(error).__name__}: {error}"})
        say(f"  {label}: ERROR {type(error).__name__}: {error}")
        traceback.print_exc()
        sys.stdout.flush()
    else:
        shown = {k: v for k, v in rows[-1].items() if k not in label}
        say(f"  {label}: {short(shown)}")


def raising(reason: Exception) -> Callable[[], dict]:
    """An item that only says why it does not run."""
    def item() -> dict:
        raise reason
    return item


def short(values: dict) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.2e}"
    return str(value)


# ------------------------------------------------------------------------------------------------- shared oracles


def resolve_shared(given: str | None) -> Path | None:
    """The folder laid out as shared/reference (gmic/, glam/ …): ``--shared``, $MAMMO_SHARED/reference,
    ../shared/reference beside the checkout, or .gpu_shared in it."""
    candidates = [Path(given)] if given else []
    if os.environ.get("MAMMO_SHARED"):
        candidates.append(Path(os.environ["MAMMO_SHARED"]))
    candidates += [ROOT.parent / "shared", ROOT / ".gpu_shared"]
    for path in candidates:
        if (path / "reference").is_dir():
            path = path / "reference"
        if path.is_dir():
            return path
    return None


def write_planes(state: dict[str, torch.Tensor], dest: Path) -> None:
    """A state dict as a compressed npz whose float tensors are split into byte planes (exponent bytes
    compress, mantissa bytes do not): lossless, some 16 % smaller than the torch file for float32 weights."""
    arrays: dict[str, np.ndarray] = {}
    index = []
    for number, (key, tensor) in enumerate(state.items()):
        array = tensor.detach().cpu().contiguous().numpy()
        index.append([key, str(array.dtype), list(array.shape)])
        flat = array.reshape(-1)
        arrays[f"t{number}"] = flat.view(np.uint8).reshape(-1, array.itemsize).T.copy() if flat.size else flat
    np.savez_compressed(dest, index=np.array(json.dumps(index)), **arrays)


def read_planes(path: Path) -> dict[str, torch.Tensor]:
    with np.load(path) as data:
        index = json.loads(str(data["index"]))
        state = {}
        for number, (key, dtype, shape) in enumerate(index):
            stored = data[f"t{number}"]
            flat = np.ascontiguousarray(stored.T).reshape(-1).view(np.dtype(dtype)) if stored.size else \
                np.zeros(0, np.dtype(dtype))
            state[key] = torch.from_numpy(flat.reshape(shape).copy())
    return state


def seeded_weights(ctx: Context, family: str) -> Path | None:
    """The seeded state dict of ``family`` in the shared reference, as a torch file (rebuilt from its byte
    planes where only those travelled), or None."""
    if ctx.shared is None:
        return None
    folder = ctx.shared / family
    if (folder / "seeded_state_dict.pt").is_file():
        return folder / "seeded_state_dict.pt"
    if (folder / PLANES_NAME).is_file():
        target = ctx.work / family / "seeded_state_dict.pt"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(read_planes(folder / PLANES_NAME), target)
        return target
    return None


def exam0_png(reference: Path, view: str) -> Path:
    """The stored exam-0 image of ``view`` Mask R-CNN's goldens were made from: beside its goldens where it
    travelled (.gpu_shared/maskrcnn), else in the shared data (``reference``/../data/gmic-exam0)."""
    travelled = reference / "maskrcnn" / f"0_{view}.png"
    return travelled if travelled.is_file() else reference.parent / "data" / "gmic-exam0" / f"0_{view}.png"


def golden_views(ctx: Context, family: str) -> list[str]:
    if ctx.shared is None:
        return []
    inputs = (lambda v: exam0_png(ctx.shared, v)) if family == "maskrcnn" else (
        lambda v: ctx.shared / "gmic" / f"golden_exam0_{v}.npz")
    return [v for v in VIEWS if (ctx.shared / family / f"golden_exam0_{v}.npz").is_file() and inputs(v).is_file()]


def prepare_shared(source: Path, dest: Path, families: Sequence[str], views: Sequence[str]) -> None:
    """Copy what the check needs from the shared reference ``source`` into ``dest`` (see the module doc)."""
    dest.mkdir(parents=True, exist_ok=True)
    for family in families:
        folder = source / family
        if not (folder / "seeded_state_dict.pt").is_file():
            print(f"{family}: no seeded weights in {folder}; left out")
            continue
        (dest / family).mkdir(exist_ok=True)
        state = torch.load(folder / "seeded_state_dict.pt", weights_only=True)
        write_planes(state, dest / family / PLANES_NAME)
        back = read_planes(dest / family / PLANES_NAME)
        same = list(back) == list(state) and all(torch.equal(back[k], state[k]) and back[k].dtype == state[k].dtype
                                                 for k in state)
        if not same:
            raise SystemExit(f"{family}: the byte planes do not give the weights back bit for bit")
        for view in views:
            if family == "maskrcnn":  # its input is the stored exam-0 image, as the reference read it
                shutil.copy2(source / family / f"golden_exam0_{view}.npz", dest / family)
                shutil.copy2(exam0_png(source, view), dest / family / f"0_{view}.png")
                continue
            for needed in {family, "gmic"}:  # GMIC's and GLAM's golden input is GMIC's prepared view
                (dest / needed).mkdir(exist_ok=True)
                shutil.copy2(source / needed / f"golden_exam0_{view}.npz", dest / needed)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {total / 2**20:.1f} MiB")


# ------------------------------------------------------------------------------------------------- models


# the quick run's small GMIC-like inputs (the prepared views of the families part stay 2944 x 1920)
QUICK_INPUT = (384, 256)


def gmic_config(quick: bool, tiny_input: bool = False):
    from inference.families.gmic.model import GMICConfig  # noqa: PLC0415

    if not quick:
        return GMICConfig()
    extra = {"cam_size": (QUICK_INPUT[0] // 64, QUICK_INPUT[1] // 64), "crop_shape": (64, 64)} if tiny_input else {}
    return GMICConfig(local_width=8, global_width=4, post_processing_dim=64, **extra)


def scalar_loss(out: object) -> torch.Tensor:
    """A stand-in loss over every floating output that carries a gradient (the step's cost is what is timed)."""
    tensors = [out] if isinstance(out, torch.Tensor) else [getattr(out, f.name) for f in dataclasses.fields(out)]
    terms = [t.float().mean() for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return torch.stack(terms).sum()


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """How the check makes a model of a family with seeded random weights, and a training batch for it.

    ``model(quick)`` takes the family's prepared views; ``train_model(quick)`` (default ``model``) takes
    ``train_batch``; ``calibration_batch`` (default ``train_batch``) is what ``model`` sees to set its batch
    norms. ``seeded_first``: the families part uses the shared reference's seeded weights where they are (full runs)."""

    model: Callable[[bool], torch.nn.Module]
    meta: Callable[[torch.nn.Module], dict]
    options: dict
    train_batch: Callable[[bool, torch.device], tuple]
    train_loss: Callable[[torch.nn.Module, tuple], torch.Tensor]
    skip_quick: str = ""
    train_model: Callable[[bool], torch.nn.Module] | None = None
    calibration_batch: Callable[[bool, torch.device], tuple] | None = None
    seeded_first: bool = False


def _config_meta(model: torch.nn.Module) -> dict:
    return {"config": dataclasses.asdict(model.config)} if hasattr(model, "config") else {}


def _gmic_model(quick: bool) -> torch.nn.Module:
    from inference.families.gmic.model import GMIC  # noqa: PLC0415

    return GMIC(gmic_config(quick))


def _gmic_train_model(quick: bool) -> torch.nn.Module:
    from inference.families.gmic.model import GMIC  # noqa: PLC0415

    return GMIC(gmic_config(quick, tiny_input=quick))


def _gmic_like_batch(quick: bool, device: torch.device) -> tuple:
    return (torch.randn((1, 1, *QUICK_INPUT) if quick else (2, 1, 2944, 1920), device=device),)


def _window_shaped(quick: bool, device: torch.device) -> tuple:
    return (torch.randn(1, 1, 2944, 1920, device=device),)


def _glam_model(quick: bool) -> torch.nn.Module:
    from inference.families.glam.model import GLAM, GLAMConfig  # noqa: PLC0415

    return GLAM(GLAMConfig())


def _glam_train_model(quick: bool) -> torch.nn.Module:
    from inference.families.glam.model import GLAM, GLAMConfig  # noqa: PLC0415

    if not quick:
        return GLAM(GLAMConfig())
    return GLAM(GLAMConfig(cam_size=(QUICK_INPUT[0] // 16, QUICK_INPUT[1] // 16), crop_shape=(64, 64)))


def _window_model(quick: bool) -> torch.nn.Module:
    from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig  # noqa: PLC0415

    return PatchClassifier(PatchClassifierConfig(window=64, width=4, stages=2) if quick else PatchClassifierConfig())


def _window_batch(quick: bool, device: torch.device) -> tuple:
    return (torch.randn((8, 1, 64, 64) if quick else (64, 1, 256, 256), device=device),)


def _attention_model(quick: bool) -> torch.nn.Module:
    from inference.families.attention_cnn.model import AttentionCNN, AttentionCNNConfig  # noqa: PLC0415

    return AttentionCNN(AttentionCNNConfig(width=8) if quick else AttentionCNNConfig())


def _attention_meta(model: torch.nn.Module) -> dict:
    from inference.families.attention_cnn.family import metadata  # noqa: PLC0415

    return metadata(model.config)


def _attention_batch(quick: bool, device: torch.device) -> tuple:
    return (torch.randn((4 if quick else 32, 3, 224, 224), device=device),)


def _glimpse_model(quick: bool) -> torch.nn.Module:
    from inference.families.glimpsenet.model import GlimpseNet, GlimpseNetConfig  # noqa: PLC0415

    config = GlimpseNetConfig(fcgn_width=4, context=8, classifier_width=0.125) if quick else GlimpseNetConfig()
    return GlimpseNet(config)


def _glimpse_meta(model: torch.nn.Module) -> dict:
    from inference.families.glimpsenet.family import metadata  # noqa: PLC0415
    from inference.families.glimpsenet.glimpses import GlimpseSettings  # noqa: PLC0415

    return metadata(model.config, GlimpseSettings())


def _glimpse_batch(quick: bool, device: torch.device) -> tuple:
    images, glimpses, size = (2, 6, 107) if quick else (8, 24, 299)
    return torch.randn(images, 1, 512, 512, device=device), torch.randn(glimpses, 3, size, size, device=device)


def _glimpse_loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    return model.fcgn(batch[0]).float().mean() + model.classifier(batch[1]).float().mean()


def _forward_loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    return scalar_loss(model(*batch))


# Mask R-CNN: the quick run's detector is a small ResNet-18-like FPN on 256-pixel inputs
_MASKRCNN_QUICK = {"block": "basic", "layers": (1, 1, 1, 1), "stem_width": 16, "fpn_channels": 32,
                   "representation": 64, "mask_layers": (32,), "mask_dim": 32, "min_size": 256, "max_size": 384}


def _maskrcnn_model(quick: bool) -> torch.nn.Module:
    from inference.families.maskrcnn import MaskRCNN, MaskRCNNConfig  # noqa: PLC0415

    return MaskRCNN(MaskRCNNConfig(**_MASKRCNN_QUICK) if quick else MaskRCNNConfig())


def _maskrcnn_meta(model: torch.nn.Module) -> dict:
    from inference.families.maskrcnn.family import metadata  # noqa: PLC0415

    return metadata(min_size=model.config.min_size, max_size=model.config.max_size)


def _maskrcnn_train_batch(quick: bool, device: torch.device) -> tuple:
    """Two phantom images with one malignant mass each (a bright disc, its mask and box), as training reads them."""
    from inference.families.maskrcnn.training import Target  # noqa: PLC0415

    rows, cols = QUICK_INPUT if quick else (2944, 1920)
    generator = torch.Generator().manual_seed(0)
    images, targets = [], []
    y, x = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    for index in range(2):
        radius = max(rows, cols) // 12
        cy, cx = rows // 3 + index * rows // 3, cols // 2
        mask = (((y - cy) ** 2 + (x - cx) ** 2) <= radius ** 2).float()
        image = 0.3 * torch.rand((rows, cols), generator=generator) + 0.6 * mask
        box = torch.tensor([[cx - radius, cy - radius, cx + radius + 1, cy + radius + 1]], dtype=torch.float32)
        images.append(image[None].expand(3, -1, -1).contiguous().to(device))
        targets.append(Target(box.to(device), torch.tensor([2], device=device), mask[None].to(device)))
    return torch.stack(images), targets


def _maskrcnn_loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, losses  # noqa: PLC0415

    images, targets = batch
    parts = losses(model, list(images), targets, MaskRCNNTrainConfig(), torch.Generator().manual_seed(0))
    return torch.stack([part.float() for part in parts.values()]).sum()


SPECS: dict[str, FamilySpec] = {
    "gmic": FamilySpec(_gmic_model, _config_meta, {"percent_t": 0.02}, _gmic_like_batch, _forward_loss,
                       train_model=_gmic_train_model, calibration_batch=_window_shaped),
    "glam": FamilySpec(_glam_model, lambda m: {}, {}, _gmic_like_batch, _forward_loss,
                       skip_quick="GLAM has one size, 14 s a view on 2 CPU cores", train_model=_glam_train_model,
                       calibration_batch=_window_shaped),
    "sliding-window": FamilySpec(_window_model, _config_meta, {}, _window_batch, _forward_loss),
    "attention-cnn": FamilySpec(_attention_model, _attention_meta, {}, _attention_batch, _forward_loss),
    "glimpsenet": FamilySpec(_glimpse_model, _glimpse_meta, {}, _glimpse_batch, _glimpse_loss),
    "maskrcnn": FamilySpec(_maskrcnn_model, _maskrcnn_meta, {}, _maskrcnn_train_batch, _maskrcnn_loss,
                           seeded_first=True),
}


def norm(name: str) -> str:
    return name.replace("-", "").replace("_", "").lower()


def wanted(ctx: Context, name: str) -> bool:
    """Whether ``--families`` (default: every family) names ``name``, in the oracles, families and training parts."""
    chosen = getattr(ctx.args, "families", None)
    return not chosen or norm(name) in {norm(f) for f in chosen.split(",")}


def calibrate_batchnorm(model: torch.nn.Module, spec: FamilySpec, device: torch.device, quick: bool) -> None:
    """Give random weights' batch norms the statistics of one training batch (as the oracles' seeded weights
    were made), so that maps are not saturated and the comparisons mean something."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for module in norms:
        module.momentum = None
        module.reset_running_stats()
    model.to(device).train()
    with torch.no_grad():
        spec.train_loss(model, (spec.calibration_batch or spec.train_batch)(quick, device))
    model.cpu().eval()


def random_model(name: str, ctx: Context, seed: int = 0):
    """A LoadedModel of family ``name`` with seeded random weights, built through the family's own loader."""
    from inference.families import registry  # noqa: PLC0415
    from inference.families.protocol import LoadedModel  # noqa: PLC0415
    from inference.results.types import ModelIdentity

    spec = SPECS[name]
    torch.manual_seed(seed)
    fresh = spec.model(ctx.quick)
    if not ctx.quick:  # the dry run exercises the code, not the numbers
        calibrate_batchnorm(fresh, spec, ctx.device, ctx.quick)
    family = registry.get(name)
    model, fields = family.build(fresh.state_dict(), spec.meta(fresh), f"<random {name}>", dict(spec.options))
    identity = ModelIdentity(path=f"<random {name}>", git_blob_sha1=f"random-{name}-{seed}", sha256="",
                             published_name=None, label=f"{name} (random weights, seed {seed})", family=name,
                             **{k: v for k, v in fields.items() if k in ("classes", "malignancy", "exclusive",
                                                                        "percent_t", "settings")})
    return LoadedModel(model=model, identity=identity)


def device_module(model: torch.nn.Module, device: torch.device, mode: str, family: str, *,
                  channels_last: bool = True) -> torch.nn.Module:
    """The copy the families' ``runnable`` makes (eval; in the fast mode the family's own fast-mode
    preparation, ``FastMode.fold``: batch norms folded, GMIC's global network kept in float32; channels-last),
    without compiling and without its cache: the check measures the fast path that ships."""
    from inference.families import registry  # noqa: PLC0415

    module = copy.deepcopy(model).eval()
    if mode == "fast":
        module = registry.get(family).fast.fold(module)
    return module.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def phantom_views(ctx: Context) -> dict:
    """The four stored views of one synthetic exam (numpy; no DICOM needed)."""
    if "views" not in ctx.cache:
        from inference.intake.phantom import generate_exam  # noqa: PLC0415

        shape = (600, 400) if ctx.quick else (1600, 1000)
        ctx.cache["views"] = {v: p.image for v, p in generate_exam(7, shape=shape).views.items()}
    return ctx.cache["views"]


def compare_outputs(a, b) -> dict:
    """Largest deviations between two ModelViewOutputs of one view (probabilities, every layer, regions)."""
    probability = max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities)
    maps = 0.0
    for la, lb in zip(a.layers, b.layers, strict=True):
        if la.values.shape != lb.values.shape:
            raise ValueError(f"layer {la.name} has shape {la.values.shape} on one device, {lb.values.shape} on the "
                             "other")
        maps = max(maps, float(np.abs(la.values.astype(np.float64) - lb.values).max()) if la.values.size else 0.0)
    same_regions = len(a.regions) == len(b.regions) and all(
        ra.box_original == rb.box_original for ra, rb in zip(a.regions, b.regions))
    scores = max((abs(ra.score - rb.score) for ra, rb in zip(a.regions, b.regions)), default=0.0)
    return {"d_probability": probability, "d_maps": maps, "same_regions": same_regions, "d_region_score": scores}


# ------------------------------------------------------------------------------------------------- parts


def installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def part_env(ctx: Context) -> dict:
    from inference.families import registry  # noqa: PLC0415
    from inference.cpu import cpu_flags_text  # noqa: PLC0415

    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": cpu_flags_text(), "cpu_count": os.cpu_count(), "device": str(ctx.device),
        "families": list(registry.families()), "shared": str(ctx.shared) if ctx.shared else None,
        "quick": ctx.quick,
    }
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count)
    if shutil.which("nvidia-smi"):
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = done.stdout.strip()
    info["packages"] = {name: installed(name) for name in (
        "pydicom", "pylibjpeg", "rle", "openjpeg", "gdcm", "ray", "reportlab", "highdicom", "pyarrow", "cv2", "scipy",
        "sklearn", "PySide6")}
    info["PySide6_imported"] = "PySide6" in sys.modules
    return {"info": info}


def oracle_rows(out, golden, family: str, mode: str) -> list[dict]:
    """Each output against its golden with the CPU tests' tolerances (the fast mode: bf16's where they say)."""
    from tests.inference import oracle_tolerances as tol  # noqa: PLC0415

    if family == "gmic":
        checks = {attr: (key, limit) for attr, (key, limit) in tol.GMIC_TOLERANCES.items()}
        checks.update({attr: (key, "loose") for attr, key in tol.GMIC_LOOSE.items()})
    else:
        checks = {key: (key, tol.GLAM_TOLERANCE) for key in tol.GLAM_KEYS}
        checks["crop"] = ("crop", tol.GLAM_CROP_TOLERANCE)
    rows = []
    for attr, (key, limit) in checks.items():
        ours = getattr(out, attr).float().cpu().numpy()
        theirs = golden[key]
        deviation = float(np.abs(ours - theirs).max())
        row = {"key": attr, "deviation": deviation}
        if limit == "loose":
            outside = np.abs(ours - theirs) > np.maximum(tol.LOOSE_ABSOLUTE, tol.LOOSE_RELATIVE * np.abs(theirs))
            row.update(tolerance=f"max({tol.LOOSE_ABSOLUTE}, {tol.LOOSE_RELATIVE}|x|)",
                       within=bool(not outside.any()) if mode == "exact" else None)
        elif mode == "exact":
            row.update(tolerance=limit, within=deviation <= limit)
        elif attr.startswith("y_") or attr == "patch_attention":
            row.update(tolerance=tol.FAST_BF16_PROBABILITY, within=deviation <= tol.FAST_BF16_PROBABILITY)
        elif any(word in attr for word in ("cam", "saliency", "selection")):
            row.update(tolerance=tol.FAST_BF16_MAP, within=deviation <= tol.FAST_BF16_MAP)
        else:
            row.update(tolerance=None, within=None)
        rows.append(row)
    same = bool(np.array_equal(out.patch_locations.cpu().numpy(), golden["patch_locations"].astype(np.int64)))
    rows.append({"key": "patch_locations", "deviation": 0.0 if same else 1.0, "tolerance": "equal",
                 "within": same if mode == "exact" else None})
    return rows


def maskrcnn_oracle_rows(found, golden, mode: str) -> list[dict]:
    """Detections against the reference's with its README's recommended tolerances (what
    tests/inference/families/maskrcnn/test_maskrcnn.py holds the CPU to, or looser): count and labels exact, boxes 0.02 px x
    max(1, 1/scale), scores 1e-3, mask_probs 5e-3, FPN level mean and std 1e-5 relative, the transform's sizes
    exact, class_logits and box_regression 1e-2 where the proposals match (ties may order them otherwise on
    another device). The fast mode (folded frozen batch norms, float32 too): scores 0.01, mask_probs 0.1, the
    FPN statistics reported only."""
    from tests.inference import oracle_tolerances as tol  # noqa: PLC0415

    exact = mode == "exact"
    trace = found.trace
    rows: list[dict] = []

    def add(key: str, deviation: float, tolerance: object, within: bool | None) -> None:
        rows.append({"key": key, "deviation": deviation, "tolerance": tolerance, "within": within})

    same_sizes = (tuple(trace["transformed_size"]) == tuple(int(v) for v in golden["transformed_size"])
                  and tuple(trace["padded_size"]) == tuple(int(v) for v in golden["padded_size"]))
    add("transformed_size, padded_size", 0.0 if same_sizes else 1.0, "equal", same_sizes)
    for i, name in enumerate(golden["fpn_names"]):
        level = trace["fpn"][str(name)].double()
        for stat, value in (("mean", level.mean().item()), ("std", level.std().item())):
            expected = float(golden[f"fpn_{stat}"][i])
            relative = abs(value - expected) / max(abs(expected), 1e-12)
            add(f"fpn {name} {stat} (relative)", relative, 1e-5, relative <= 1e-5 if exact else None)
    proposals = trace["proposals"].float().cpu().numpy()
    same_proposals = proposals.shape == golden["proposals"].shape and \
        float(np.abs(proposals - golden["proposals"]).max()) <= 1e-3
    # in order where the ties broke as the reference's CPU kernels broke them; else as a set (README: ties
    # among bit-identical objectness may order them otherwise on another device or memory format): reported
    add("proposals (in order)", float(np.abs(proposals - golden["proposals"]).max()) if proposals.shape ==
        golden["proposals"].shape else math.inf, 1e-3, None)
    if not same_proposals and proposals.shape == golden["proposals"].shape:
        nearest = np.abs(proposals[:, None, :] - golden["proposals"][None, :, :]).max(axis=2).min(axis=1)
        add("proposals (as a set: farthest from its nearest reference box, px)", float(nearest.max()), 1e-3, None)
    for key in ("class_logits", "box_regression"):
        ours = trace[key].float().cpu().numpy()
        deviation = float(np.abs(ours - golden[key]).max()) if ours.shape == golden[key].shape else math.inf
        add(key, deviation, 1e-2, deviation <= 1e-2 if same_proposals else None)
    labels = found.labels.cpu().numpy()
    same_labels = bool(np.array_equal(labels, golden["labels"]))
    add(f"labels ({len(labels)} found, {len(golden['labels'])} expected)", 0.0 if same_labels else 1.0, "equal",
        same_labels)
    box_tolerance = 0.02 * max(1.0, 1.0 / float(golden["scale_factor"]))
    limits = {"boxes": box_tolerance, "scores": 1e-3 if exact else tol.FAST_BF16_PROBABILITY,
              "mask_probs": 5e-3 if exact else tol.FAST_BF16_MAP}
    for key, limit in limits.items():
        ours = getattr(found, key).float().cpu().numpy()
        if not same_labels or ours.shape != golden[key].shape:
            add(key, math.inf, limit, False)
            continue
        deviation = float(np.abs(ours - golden[key]).max()) if ours.size else 0.0
        add(key, deviation, limit, deviation <= limit)
    return rows


def run_maskrcnn_oracle(ctx: Context, module: torch.nn.Module, view: str):
    """One exam-0 view through the detector as the reference read it: float32(png) / 4095, grey to 3 channels;
    float32 in both modes (the seeded model declares no fast_autocast), TF32 off."""
    import cv2  # noqa: PLC0415

    from inference.families.common import numerics  # noqa: PLC0415

    path = exam0_png(ctx.shared, view)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise NotAvailable(f"{path} could not be read")
    x = torch.from_numpy(image.astype(np.float32) / np.float32(4095))[None].expand(3, -1, -1).contiguous()
    with numerics(ctx.device, "exact"):
        found = module.detect([x.to(ctx.device)], trace=True)[0]
    sync(ctx.device)
    return found


def part_oracles(ctx: Context) -> dict:
    from inference.families import registry  # noqa: PLC0415
    from inference.families.common import numerics  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415

    rows: list[dict] = []
    budget = ctx.budget("oracles")
    started = time.perf_counter()
    known = {norm(n): n for n in registry.families()}
    for folder in [f for f in ("gmic", "glam", "maskrcnn") if wanted(ctx, f)]:
        if folder not in known:
            run_item(rows, {"family": folder}, raising(NotAvailable(f"the {folder} family is not in this checkout")))
            continue
        if ctx.quick and folder == "glam":
            run_item(rows, {"family": folder}, raising(Skipped("--quick (14 s a view here)")))
            continue
        weights = seeded_weights(ctx, folder)
        views = golden_views(ctx, folder)
        if ctx.quick:  # one view; Mask R-CNN's R-CC has the fewest detections (8): the dry run is short
            views = ([v for v in views if v == "R-CC"] or views)[:1] if folder == "maskrcnn" else views[:1]
        if weights is None or not views:
            where = ctx.shared / folder if ctx.shared else "no shared reference"
            run_item(rows, {"family": folder}, raising(NotAvailable(
                f"no seeded weights and goldens in {where} (on the GPU machine one family's oracle travels a "
                f"call: bash bench/gpu_check_prepare.sh --set {folder}); the families part checks it against "
                "its CPU exact run")))
            continue
        loaded = load_model(weights, percent_t=0.02 if folder == "gmic" else None)
        for mode in ("exact",) if ctx.quick else ("exact", "fast"):  # the families part runs the fast mode
            module = None
            for view in views:
                label = {"family": folder, "mode": mode, "view": view}
                if time.perf_counter() - started > budget:
                    run_item(rows, label, raising(Skipped("the part's time budget is spent")))
                    continue
                try:
                    module = module or device_module(loaded.model, ctx.device, mode, known[folder])
                    golden = np.load(ctx.shared / folder / f"golden_exam0_{view}.npz")
                    if folder == "maskrcnn":
                        checked = maskrcnn_oracle_rows(run_maskrcnn_oracle(ctx, module, view), golden, mode)
                    else:
                        inputs = np.load(ctx.shared / "gmic" / f"golden_exam0_{view}.npz")["input"]
                        x = torch.from_numpy(inputs)[None, None].to(ctx.device).contiguous(
                            memory_format=torch.channels_last)
                        with numerics(ctx.device, mode):
                            out = module(x)
                        sync(ctx.device)
                        checked = oracle_rows(out, golden, folder, mode)
                except Exception as error:  # noqa: BLE001 - reported; the other views and modes still run
                    run_item(rows, label, raising(error))
                    continue
                rows += [{**label, **row} for row in checked]
                worst = [r for r in checked if r.get("within") is False]
                say(f"  {folder} {mode} {view}: " + ("all within tolerance" if not worst else
                    "OUTSIDE: " + ", ".join(f"{r['key']} {fmt(r['deviation'])} > {r['tolerance']}" for r in worst)))
            del module
    return {"rows": rows, "numerics": {"exact": "fp32, TF32 off", "fast": "folded batch norms + "
                                       + ("bf16 autocast" if ctx.device.type == "cuda" else "the CPU's fast numerics"),
                                       "maskrcnn": "float32 in both modes (the seeded model declares no "
                                                   "fast_autocast; the families part runs one that does), TF32 off"}}


def part_families(ctx: Context) -> dict:
    """Every registered family on the device against its CPU exact run on the same prepared views, and its
    one-view and four-view times in each mode (the families' own ``run``: what the pipeline calls)."""
    from inference.families import registry  # noqa: PLC0415
    from inference.families.common import mode_numerics, model_fast_mode  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415
    from tests.inference import oracle_tolerances as tol  # noqa: PLC0415

    rows: list[dict] = []
    started = time.perf_counter()
    budget = ctx.budget("families")
    registry = registry.families()
    names = list(registry)
    if not any(norm(n) == "maskrcnn" for n in names):
        run_item(rows, {"family": "maskrcnn"}, raising(NotAvailable("the maskrcnn family is not in this checkout")))
    cpu = torch.device("cpu")
    views = phantom_views(ctx)
    for name in [n for n in names if wanted(ctx, n)]:
        family = registry[name]
        label = {"family": name}
        if time.perf_counter() - started > budget:
            run_item(rows, label, raising(Skipped("the part's time budget is spent")))
            continue
        spec = SPECS.get(name)
        if spec is not None and ctx.quick and spec.skip_quick:
            run_item(rows, label, raising(Skipped(f"--quick: {spec.skip_quick}")))
            continue

        def one_family(name=name, family=family, spec=spec) -> dict:
            seeded = seeded_weights(ctx, norm(name)) if spec is not None and spec.seeded_first and \
                not ctx.quick else None
            if seeded is not None:
                loaded = load_model(seeded)
                weights = f"seeded ({norm(name)}/{seeded.name})"
            elif spec is not None:
                loaded = random_model(name, ctx)
                weights = "random (seed 0)" if ctx.quick else "random (seed 0, batch norms calibrated)"
            else:
                path = seeded_weights(ctx, norm(name)) or seeded_weights(ctx, name)
                if path is None:
                    raise NotAvailable("the check has no builder for this family and the shared reference "
                                       "holds no seeded weights for it")
                loaded = load_model(path)
                weights = f"seeded ({path.name})"
            prepared = [family.prepare(views[v], v, False) for v in View]
            reference = family.run(loaded.model, prepared[:1], cpu, "exact", loaded.identity)[0]
            result: dict[str, Any] = {"weights": weights}
            runs = [("exact", "exact", loaded.identity), ("fast", "fast", loaded.identity)]
            fast = getattr(family, "fast", None)
            if fast is not None and not fast.autocast:  # float32 unless a model declares fast_autocast: both
                declared = dataclasses.replace(loaded.identity, settings={**loaded.identity.settings,
                                                                          "fast_autocast": True})
                runs.append(("fast_autocast", "fast", declared))
            for name, mode, identity in runs:
                out = family.run(loaded.model, prepared[:1], ctx.device, mode, identity)[0]
                deviation = compare_outputs(reference, out)
                numbers = mode_numerics(ctx.device, mode, model_fast_mode(family, identity.settings))
                if numbers == "bf16":
                    limits = (tol.FAST_BF16_PROBABILITY, tol.FAST_BF16_MAP)
                else:
                    limits = (1e-4, 1e-4)
                result[f"{name}_numerics"] = numbers
                result[f"{name}_d_probability"] = deviation["d_probability"]
                result[f"{name}_d_maps"] = deviation["d_maps"]
                result[f"{name}_same_regions"] = deviation["same_regions"]
                result[f"{name}_within"] = (deviation["d_probability"] <= limits[0]
                                            and deviation["d_maps"] <= limits[1])
                result[f"{name}_tolerance"] = f"p {limits[0]:g}, maps {limits[1]:g}"
                for count in (1,) if ctx.quick else (1, 4):
                    timing = measure(lambda n=count, m=mode, i=identity: family.run(loaded.model, prepared[:n],
                                                                                   ctx.device, m, i),
                                     ctx.device, budget_s=6, **counts(ctx, 2, 5))
                    result[f"{name}_{count}view_ms"] = timing["median_ms"]
            result["peak_mib"] = peak_mib(ctx.device)
            return result

        reset_peak(ctx.device)
        run_item(rows, label, one_family)
    return {"rows": rows, "tolerances": "exact: the oracle tolerance 1e-4 on probabilities and maps; fast (bf16): "
            f"{tol.FAST_BF16_PROBABILITY} on probabilities, {tol.FAST_BF16_MAP} on maps (the CPU tests' bf16 bounds)"}


def ensemble_models(ctx: Context) -> tuple[list, str]:
    """Five GMIC-sized models: the seeded weights with the five published pooling thresholds, else random."""
    from inference.families.gmic.model import GMIC  # noqa: PLC0415

    if "ensemble" in ctx.cache:
        return ctx.cache["ensemble"]
    count = 2 if ctx.quick else 5
    path = None if ctx.quick else seeded_weights(ctx, "gmic")
    models = []
    if path is not None:
        from inference.weights import load_model  # noqa: PLC0415

        for percent_t in ENSEMBLE_PERCENT_T[:count]:
            models.append(load_model(path, percent_t=percent_t).model)
        what = "GMIC seeded weights x5 (percent_t 0.02, 0.03, 0.03, 0.05, 0.1)"
    else:
        for seed in range(count):
            torch.manual_seed(seed)
            models.append(GMIC(gmic_config(ctx.quick, tiny_input=ctx.quick)).eval())
        what = f"{count} GMIC{' (tiny)' if ctx.quick else ''} with random weights"
    ctx.cache["ensemble"] = (models, what)
    return models, what


def ensemble_inputs(ctx: Context) -> np.ndarray:
    """(4, H, W) float32 prepared GMIC inputs of the four views (the quick run: two small random views)."""
    if ctx.quick:
        return np.random.default_rng(0).standard_normal((2, *QUICK_INPUT)).astype(np.float32)
    from inference.families import registry  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    views = phantom_views(ctx)
    family = registry.get("gmic")
    return np.stack([family.prepare(views[v], v, False).input for v in View])


def ensemble_runner(modules: list, host: torch.Tensor, device: torch.device, mode: str, batched: bool,
                    channels_last: bool) -> Callable[[], list]:
    """End to end from prepared inputs: copy in, every model on every view, the class scores, maps and patch
    locations back to the host."""
    from inference.families.common import numerics  # noqa: PLC0415

    def run() -> list:
        x = host.to(device, non_blocking=True)[:, None]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        chunks = [x] if batched else [x[i: i + 1] for i in range(x.shape[0])]
        gathered = []
        with numerics(device, mode):
            for module in modules:
                outs = [module(chunk) for chunk in chunks]
                gathered.append([(o.y_fusion.float(), o.saliency_map.float(), o.patch_locations) for o in outs])
        return [[tuple(t.cpu() for t in triple) for triple in per_model] for per_model in gathered]

    return run


def y_fusion_of(result: list) -> torch.Tensor:
    return torch.stack([torch.cat([triple[0] for triple in per_model]) for per_model in result])


def part_ensemble(ctx: Context) -> dict:
    models, what = ensemble_models(ctx)
    inputs = ensemble_inputs(ctx)
    host = torch.from_numpy(inputs)
    if ctx.device.type == "cuda":
        host = host.pin_memory()
    rows: list[dict] = []
    started = time.perf_counter()
    budget = ctx.budget("ensemble")
    baseline: dict[str, torch.Tensor] = {}

    variants = [
        ("exact, views one at a time", "exact", False, False),
        ("exact, views batched", "exact", True, False),
        ("exact, views batched, channels-last", "exact", True, True),
        ("fast, views one at a time, channels-last", "fast", False, True),
        ("fast, views batched", "fast", True, False),
        ("fast, views batched, channels-last", "fast", True, True),
    ]
    for name, mode, batched, channels_last in variants:
        def one(mode=mode, batched=batched, channels_last=channels_last) -> dict:
            if time.perf_counter() - started > budget:
                raise Skipped("the part's time budget is spent")
            reset_peak(ctx.device)
            modules = [device_module(m, ctx.device, mode, "gmic", channels_last=channels_last) for m in models]
            run = ensemble_runner(modules, host, ctx.device, mode, batched, channels_last)
            result = run()
            timing = measure(run, ctx.device, budget_s=8, **counts(ctx, 2, 10))
            y = y_fusion_of(result)
            baseline.setdefault("exact", y)
            row = {"ms": timing["median_ms"], "min_ms": timing["min_ms"], "runs": timing["runs"],
                   "d_y_fusion_vs_exact": float((y - baseline["exact"]).abs().max()), "peak_mib": peak_mib(ctx.device)}
            del modules
            return row

        run_item(rows, {"variant": name}, one)

    ctx.cache["ensemble_baseline"] = baseline
    return {"models": what, "views": int(host.shape[0]), "input": list(host.shape[1:]), "target_ms": 150,
            "rows": rows, "note": "end to end from prepared inputs: host-to-device copy, every model on every "
            "view, y_fusion, saliency maps and patch locations back to the host"}


def part_graphs(ctx: Context) -> dict:
    """The ensemble's batched fast path captured once as a CUDA graph and replayed (last: a failed capture
    can leave the GPU unusable for what would follow)."""
    models, what = ensemble_models(ctx)
    host = torch.from_numpy(ensemble_inputs(ctx))
    if ctx.device.type == "cuda":
        host = host.pin_memory()
    baseline = ctx.cache.get("ensemble_baseline", {})
    rows: list[dict] = []

    def graphed() -> dict:
        if ctx.device.type != "cuda":
            raise NotAvailable("CUDA graphs need a GPU")
        from inference.families.common import numerics  # noqa: PLC0415

        reset_peak(ctx.device)
        modules = [device_module(m, ctx.device, "fast", "gmic") for m in models]
        static = torch.empty((host.shape[0], 1, *host.shape[1:]), device=ctx.device).contiguous(
            memory_format=torch.channels_last)
        static.copy_(host[:, None])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), numerics(ctx.device, "fast"):
            for _ in range(2):
                [m(static) for m in modules]
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with numerics(ctx.device, "fast"), torch.cuda.graph(graph):
            outs = [m(static) for m in modules]

        def run() -> list:
            static.copy_(host[:, None], non_blocking=True)
            graph.replay()
            return [[(o.y_fusion.float().cpu(), o.saliency_map.float().cpu(), o.patch_locations.cpu())] for o in outs]

        result = run()
        timing = measure(run, ctx.device, budget_s=8, **counts(ctx, 2, 10))
        return {"ms": timing["median_ms"], "min_ms": timing["min_ms"], "runs": timing["runs"],
                "d_y_fusion_vs_exact": float((y_fusion_of(result) - baseline["exact"]).abs().max())
                if "exact" in baseline else None, "peak_mib": peak_mib(ctx.device)}

    run_item(rows, {"variant": f"ensemble ({what}), fast, views batched, channels-last, CUDA graph"}, graphed)
    return {"rows": rows}


def part_compile(ctx: Context) -> dict:
    """torch.compile: the ensemble's batched fast path compiled as the families compile it (global and local
    networks), and GMIC's own fast mode (compiled) through the family's run, with the compile time."""
    if ctx.quick:
        raise Skipped("--quick: compiling takes minutes on the CPU")
    if ctx.remaining() < 60:
        raise Skipped(f"only {ctx.remaining():.0f} s left of the run's budget")
    from inference.families import registry  # noqa: PLC0415
    from inference.families.protocol import LoadedModel  # noqa: PLC0415
    from inference.intake.views import View  # noqa: PLC0415

    models, what = ensemble_models(ctx)
    host = torch.from_numpy(ensemble_inputs(ctx))
    if ctx.device.type == "cuda":
        host = host.pin_memory()
    rows: list[dict] = []
    baseline = ctx.cache.get("ensemble_baseline", {})

    def compiled_ensemble() -> dict:
        reset_peak(ctx.device)
        modules = [device_module(m, ctx.device, "fast", "gmic") for m in models]
        for module in modules:
            module.global_net = torch.compile(module.global_net, dynamic=False)
            module.local_net = torch.compile(module.local_net, dynamic=False)
        run = ensemble_runner(modules, host, ctx.device, "fast", True, True)
        begin = time.perf_counter()
        result = run()
        sync(ctx.device)
        compile_s = time.perf_counter() - begin
        timing = measure(run, ctx.device, budget_s=8, warmup=1, runs=10)
        return {"compile_s": compile_s, "ms": timing["median_ms"], "min_ms": timing["min_ms"],
                "d_y_fusion_vs_exact": float((y_fusion_of(result) - baseline["exact"]).abs().max())
                if "exact" in baseline else None, "peak_mib": peak_mib(ctx.device)}

    run_item(rows, {"variant": f"ensemble ({what}), fast, batched, channels-last, torch.compile"},
             compiled_ensemble)

    family = registry.get("gmic")
    views = phantom_views(ctx)
    prepared = [family.prepare(views[v], v, False) for v in View]
    template = random_model("gmic", ctx) if seeded_weights(ctx, "gmic") is None else None
    for count in (4, 1):
        def shipped(count=count) -> dict:
            if ctx.remaining() < 40:
                raise Skipped(f"only {ctx.remaining():.0f} s left of the run's budget")
            reset_peak(ctx.device)
            if template is None:
                from inference.weights import load_model  # noqa: PLC0415

                loaded = load_model(seeded_weights(ctx, "gmic"), percent_t=0.02)
            else:
                loaded = LoadedModel(copy.deepcopy(template.model), template.identity)
            begin = time.perf_counter()
            family.run(loaded.model, prepared[:count], ctx.device, "fast", loaded.identity)
            sync(ctx.device)
            compile_s = time.perf_counter() - begin
            timing = measure(lambda: family.run(loaded.model, prepared[:count], ctx.device, "fast", loaded.identity),
                             ctx.device, budget_s=6, warmup=1, runs=5)
            return {"compile_s": compile_s, "ms": timing["median_ms"], "peak_mib": peak_mib(ctx.device)}

        run_item(rows, {"variant": f"GMIC fast mode as shipped (eager), {count} view(s), family run"}, shipped)
    return {"rows": rows}


def part_training(ctx: Context) -> dict:
    from inference.families import registry  # noqa: PLC0415

    rows: list[dict] = []
    started = time.perf_counter()
    budget = ctx.budget("training")
    autocast_dtype = torch.bfloat16 if ctx.device.type == "cuda" else None
    registry = registry.families()
    if not any(norm(n) == "maskrcnn" for n in registry):
        run_item(rows, {"family": "maskrcnn"}, raising(NotAvailable("the maskrcnn family is not in this checkout")))
    for name in [n for n in registry if wanted(ctx, n)]:
        def step_family(name=name) -> dict:
            spec = SPECS.get(name)
            if spec is None:
                raise NotAvailable("the check has no training batch for this family")
            if time.perf_counter() - started > budget:
                raise Skipped("the part's time budget is spent")
            reset_peak(ctx.device)
            torch.manual_seed(0)
            model = (spec.train_model or spec.model)(ctx.quick).to(ctx.device).train()
            optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)
            batch = spec.train_batch(ctx.quick, ctx.device)

            def step() -> float:
                optimiser.zero_grad(set_to_none=True)
                autocast = torch.autocast(ctx.device.type, dtype=autocast_dtype) if autocast_dtype else \
                    contextlib.nullcontext()
                with autocast:
                    loss = spec.train_loss(model, batch)
                loss.backward()
                optimiser.step()
                return loss

            loss = step()
            timing = measure(step, ctx.device, budget_s=8, **counts(ctx, 1, 3))
            finite = bool(torch.isfinite(loss.detach()).item())
            return {"batch": list(batch[0].shape), "ms_per_step": timing["median_ms"], "runs": timing["runs"],
                    "loss_finite": finite, "numerics": "bf16 autocast" if autocast_dtype else "fp32 (CPU)",
                    "peak_mib": peak_mib(ctx.device)}

        run_item(rows, {"family": name}, step_family)
    return {"rows": rows, "note": "one optimiser step (AdamW) after one warm-up step: on random inputs with a "
            "stand-in loss (the mean of every output); Mask R-CNN on phantom masses with its five training losses"}


# ------------------------------------------------------------------------------------------------- batch


class UtilisationSampler:
    """GPU utilisation read from nvidia-smi a few times a second in a thread."""

    def __init__(self, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self.values: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = shutil.which("nvidia-smi") is not None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                      capture_output=True, text=True, timeout=5)
                self.values.append(int(done.stdout.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period_s)

    def __enter__(self) -> UtilisationSampler:
        if self.available:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="nvidia-smi")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self) -> dict:
        if not self.values:
            return {"gpu_util_mean": None, "gpu_util_max": None,
                    "gpu_util": "not available: no nvidia-smi" if not self.available else "no samples"}
        return {"gpu_util_mean": statistics.mean(self.values), "gpu_util_max": max(self.values),
                "gpu_util_samples": len(self.values)}


def _write_exam(job: tuple[int, tuple[int, int], str]) -> str:
    from inference.intake.phantom import generate_exam, write_dicom_exam  # noqa: PLC0415

    seed, shape, folder = job
    write_dicom_exam(generate_exam(seed, shape=shape), folder)
    return folder


def _decode_worker_init() -> None:
    torch.set_num_threads(1)
    with contextlib.suppress(ImportError):
        import cv2  # noqa: PLC0415

        cv2.setNumThreads(1)


def _decode_job(item, families, options):
    from app.archive.unit import decode  # noqa: PLC0415

    return decode(item, families, options)


def synthetic_archive(ctx: Context) -> tuple[list, Path]:
    """Synthetic four-view MG DICOM exams (the phantom, RLE Lossless), written on every CPU core."""
    if "archive" in ctx.cache:
        return ctx.cache["archive"]
    if not installed("pydicom"):
        raise NotAvailable("pydicom is not installed here (it travels in .whl/)")
    from app.archive.sources import read_batch_source  # noqa: PLC0415

    count, shape = (2, (600, 400)) if ctx.quick else (48, (1600, 1000))
    folder = ctx.work / "archive"
    jobs = [(900 + n, shape, str(folder / f"exam{n:03d}")) for n in range(count)]
    pool, _ = ctx.pool()
    list(pool.map(_write_exam, jobs))
    ctx.cache["archive"] = (read_batch_source(folder), folder)
    return ctx.cache["archive"]


def batch_model(ctx: Context):
    """The batch's model: GMIC with the seeded weights where they travelled, else random weights (the quick
    run: a tiny attention CNN, whose preprocessing is cheap)."""
    if ctx.quick:
        return random_model("attention-cnn", ctx), "attention CNN (tiny, random weights)"
    path = seeded_weights(ctx, "gmic")
    if path is not None:
        from inference.weights import load_model  # noqa: PLC0415

        return load_model(path, percent_t=0.02), "GMIC (seeded weights)"
    return random_model("gmic", ctx), "GMIC (random weights)"


def part_batch(ctx: Context) -> dict:
    """The batch unit (app/archive/unit.py: decode and prepare, run the models) with decoding in a process
    per CPU core and the models on the device."""
    from concurrent.futures import as_completed  # noqa: PLC0415

    items, _ = synthetic_archive(ctx)
    from app.archive.unit import BatchOptions, analyse  # noqa: PLC0415
    from inference.pipeline import model_families  # noqa: PLC0415

    model, what = batch_model(ctx)
    families = model_families(model)
    pool, workers = ctx.pool()
    rows: list[dict] = []
    started = time.perf_counter()
    budget = ctx.budget("batch")
    for mode in ("exact", "fast"):
        def one(mode=mode) -> dict:
            if time.perf_counter() - started > budget:
                raise Skipped("the part's time budget is spent")
            options = BatchOptions(device=ctx.device.type, mode=mode)
            # warm the device copy of the model on the first exam, outside the clock
            first = _decode_job(items[0], families, options)
            warm = analyse(first, [model], options)
            if warm.failure:
                raise RuntimeError(f"the first exam failed: {warm.failure}")
            done = failed = 0
            gpu_seconds = 0.0
            with UtilisationSampler() as sampler:
                begin = time.perf_counter()
                futures = [pool.submit(_decode_job, item, families, options) for item in items]
                first_ready = None
                for future in as_completed(futures):
                    decoded = future.result()
                    first_ready = first_ready or time.perf_counter()
                    analysed = analyse(decoded, [model], options)
                    if analysed.failure:
                        failed += 1
                        say(f"    exam failed: {analysed.failure}")
                    else:
                        done += 1
                        gpu_seconds += analysed.seconds
                wall = time.perf_counter() - begin
                steady = time.perf_counter() - first_ready
            if failed:
                raise RuntimeError(f"{failed} of {len(items)} exams failed")
            return {"exams": done, "wall_s": wall, "exams_per_min": 60 * done / wall,
                    "exams_per_min_after_first": 60 * max(done - 1, 1) / max(steady, 1e-9),
                    "model_s_per_exam": gpu_seconds / max(done, 1), **sampler.summary(),
                    "peak_mib": peak_mib(ctx.device)}

        reset_peak(ctx.device)
        run_item(rows, {"mode": mode, "decode_processes": workers}, one)
    return {"model": what, "exams": len(items), "rows": rows,
            "note": "decode + prepare in a pool of processes (spawned), run_prepared on the device in the main "
            "process; report files are not written (CPU work outside the models)"}


def part_ray(ctx: Context) -> dict:
    if not installed("ray"):
        raise NotAvailable("ray is not installed on this machine")
    if ctx.quick:
        raise Skipped("--quick: Ray's start-up alone is longer than the dry run")
    if ctx.device.type != "cuda":
        raise NotAvailable("the Ray engine's GPU actor needs a GPU")
    from app.archive.run import run_batch  # noqa: PLC0415
    from app.archive.unit import BatchOptions  # noqa: PLC0415

    items, _ = synthetic_archive(ctx)
    path = seeded_weights(ctx, "gmic")
    if path is None:
        raise NotAvailable("no GMIC weights file for the Ray actors to load")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with UtilisationSampler() as sampler:
        begin = time.perf_counter()
        summary = run_batch(items, [str(path)], ctx.work / "ray", BatchOptions(formats=("json",), device="cuda"),
                            engine="ray", percent_t=0.02, ray_options={"workers": 1, "gpus_per_worker": 1})
        wall = time.perf_counter() - begin
    return {"exams": len(summary.done), "failed": len(summary.failed), "wall_s": wall,
            "exams_per_min": 60 * len(summary.done) / wall, **sampler.summary()}


# ------------------------------------------------------------------------------------------------- report


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [f"# GPU check — {meta.get('gpu') or meta['device']}", "",
             f"{meta['started']}; torch {meta['torch']}; {meta['cpu']}; "
             f"{'quick dry run' if meta['quick'] else 'full run'}",
             "", "| part | status | seconds | peak GPU MiB | note |", "| --- | --- | --- | --- | --- |"]
    for name, entry in report["parts"].items():
        note = entry.get("reason") or entry.get("error") or ""
        seconds = entry.get("seconds")
        lines.append(f"| {name} | {entry['status']} | {'' if seconds is None else f'{seconds:.1f}'} | "
                     f"{fmt(entry.get('peak_mib'))} | "
                     f"{cell(note)[:300]} |")
    for name, entry in report["parts"].items():
        result = entry.get("result") or {}
        rows = result.get("rows")
        extras = {k: v for k, v in result.items() if k != "rows"}
        if not rows and not extras:
            continue
        lines += ["", f"## {name}", ""]
        for key, value in extras.items():
            lines.append(f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
        if rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            lines += ["", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
            for row in rows:
                lines.append("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def cell(value: object) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def save(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    (out / "gpu_check.md").write_text(markdown(report), encoding="utf-8")


PART_FUNCTIONS = {"env": part_env, "oracles": part_oracles, "families": part_families, "ensemble": part_ensemble,
                  "training": part_training, "batch": part_batch, "ray": part_ray, "compile": part_compile,
                  "graphs": part_graphs}


def start_watchdog(report: dict, out: Path, after_s: float) -> threading.Timer:
    """End the process ``after_s`` seconds from now whatever runs (a compilation cannot be interrupted), with
    the part in progress marked as cut short and everything else already written."""
    def stop() -> None:
        try:
            current = report["meta"].get("current_part")
            if current and current not in report["parts"]:
                began = report["meta"].get("current_started") or time.perf_counter()
                report["parts"][current] = {"status": "error", "error": f"cut short: the run's limit of {after_s:.0f} "
                                            "s was reached during this part", "seconds": time.perf_counter() - began,
                                            "peak_mib": None}
            report["meta"]["cut_short"] = current
            save(report, out)
            say(f"cut short during {current}: the run's limit of {after_s:.0f} s; written to {out}")
        finally:
            os._exit(3)

    timer = threading.Timer(after_s, stop)
    timer.daemon = True
    timer.start()
    return timer


def run_part(name: str, ctx: Context, report: dict, out: Path) -> None:
    say(f"== {name}")
    report["meta"]["current_part"] = name
    report["meta"]["current_started"] = time.perf_counter()
    entry: dict[str, Any] = {}
    begin = time.perf_counter()
    try:
        reset_peak(ctx.device)
        if ctx.remaining() < 5:
            raise Skipped("the run's time budget is spent")
        entry["result"] = PART_FUNCTIONS[name](ctx)
        rows = entry["result"].get("rows", [])
        errors = [row for row in rows if "error" in row]
        entry["status"] = "error" if errors else "ok"
        if errors:
            entry["error"] = f"{len(errors)} of {len(rows)} items failed; first: {errors[0]['error']}"
        elif rows and all("not_available" in row for row in rows):
            entry.update(status="not available", reason=rows[0]["not_available"])
    except NotAvailable as reason:
        entry.update(status="not available", reason=str(reason))
    except Skipped as reason:
        entry.update(status="skipped", reason=str(reason))
    except ModuleNotFoundError as error:
        entry.update(status="not available", reason=f"the package {error.name} is not installed here")
    except Exception as error:  # noqa: BLE001 - a part's failure is reported, the other parts still run
        entry.update(status="error", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        traceback.print_exc()
    entry["seconds"] = time.perf_counter() - begin
    entry["peak_mib"] = peak_mib(ctx.device)
    report["parts"][name] = entry
    report["meta"]["current_part"] = None
    say(f"== {name}: {entry['status']} in {entry['seconds']:.1f} s"
        + (f" ({entry.get('reason') or entry.get('error')})" if entry['status'] != "ok" or entry.get("error") else ""))
    save(report, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="folder for the JSON and "
                        "the Markdown table (default $OUT)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one or two runs: the test suite's dry run")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--shared", help="the shared reference (a folder with gmic/, glam/ …; default "
                        "../shared/reference, else .gpu_shared)")
    parser.add_argument("--budget-s", type=float, default=300, help="the parts' time budget (default 300 s); the "
                        "run is ended 25 s after it whatever runs")
    parser.add_argument("--families", default="", help="comma-separated families for the oracles, families and "
                        "training parts (default every one), e.g. maskrcnn for a call that carries its oracle")
    parser.add_argument("--prepare", metavar="DEST", help="copy what the check needs from --shared into DEST and exit")
    parser.add_argument("--prepare-families", default="gmic", help="families whose seeded weights travel "
                        "(default gmic: GMIC's and GLAM's together are over the 64 MiB a device call carries)")
    parser.add_argument("--prepare-views", default="L-CC", help="views whose goldens travel (default L-CC)")
    args = parser.parse_args(argv)

    if args.prepare:
        source = resolve_shared(args.shared)
        if source is None:
            raise SystemExit("no shared reference found: give --shared")
        prepare_shared(source, Path(args.prepare), args.prepare_families.split(","), args.prepare_views.split(","))
        return 0

    from inference.memory import reuse_freed_memory  # noqa: PLC0415

    reuse_freed_memory()  # the allocator settings the app runs with
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    device = torch.device(args.device)
    out = Path(args.out)
    report: dict[str, Any] = {"meta": {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "torch": torch.__version__, "quick": args.quick, "parts": parts,
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores"}, "parts": {}}
    if device.type == "cuda" and not torch.cuda.is_available():
        report["meta"]["error"] = "CUDA was asked for but torch sees no GPU"
        say(report["meta"]["error"])
        save(report, out)
        return 2
    if device.type == "cuda":
        report["meta"]["gpu"] = torch.cuda.get_device_name(device)
    shared = resolve_shared(args.shared)
    say(f"device {device}{' (' + report['meta'].get('gpu', '') + ')' if device.type == 'cuda' else ''}; "
        f"shared reference: {shared}; parts: {', '.join(parts)}; out: {out}")
    watchdog = start_watchdog(report, out, args.budget_s + 25)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        ctx = Context(args, device, args.quick, shared, Path(work), time.perf_counter() + args.budget_s)
        try:
            for name in parts:
                run_part(name, ctx, report, out)
        finally:
            if "pool" in ctx.cache:
                ctx.cache["pool"][0].shutdown(cancel_futures=True)
    watchdog.cancel()
    report["meta"]["seconds"] = time.perf_counter() - _STARTED
    save(report, out)
    statuses = {name: entry["status"] for name, entry in report["parts"].items()}
    say(f"done in {report['meta']['seconds']:.0f} s: {statuses}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
