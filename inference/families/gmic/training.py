"""Training GMIC with the paper's objective (Shen et al. 2021, eq. 11):

    L = sum_c [BCE(y_c, y_global_c) + BCE(y_c, y_local_c) + BCE(y_c, y_fusion_c)] + lambda * sum |A|^beta

over the two classes (benign, malignant) of each view, where A are the saliency maps. Adam; checkpoints
every epoch; resumable; deterministic from the seed; CPU or CUDA; several GPUs or machines through
PyTorch's own launcher (``torchrun ... main.py train``: DistributedDataParallel, one process per GPU).

Data: the phantom generator (``inference.intake.phantom``), or a CSV of ``path, view, benign, malignant`` rows
(image file, its view, and the labels of that view's breast) so that a site can train on its own images.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from inference.evaluation.metrics import roc_auc
from inference.families.gmic.model import GMIC, GMICConfig
from inference.families.preprocess import extract_window, prepare_view
from inference.files import write_text_atomic
from inference.numbers import auc_text
from inference.training.common import JsonOptions, model_label, store_float16
from inference.intake.views import View
from inference.training.device import training_device, training_memory_format
from inference.training.resume import TRAINED_MODEL, TRAINING_CHECKPOINT, resume_epochs, run_record, save_checkpoint

logger = logging.getLogger(__name__)

DEMO_LABEL = "Mammo Reader demo GMIC (synthetic phantoms)"


@dataclass(frozen=True)
class TrainConfig(JsonOptions):
    """Everything a run depends on (saved with the checkpoints)."""

    out: str = "runs/demo"
    data: str = "phantom"  # "phantom" or a CSV path
    n_train: int = 240
    n_val: int = 60
    epochs: int = 4
    lr: float = 2e-4
    weight_decay: float = 1e-5
    saliency_lambda: float = 1e-4
    saliency_beta: float = 1.0
    # Optional: supervise the saliency maps with pixel lesion masks where the data has them (phantoms).
    # 0 keeps the paper's weakly supervised objective; the demo model uses it to learn localisation within
    # a CPU budget (documented in its model card).
    mask_weight: float = 0.0
    seed: int = 0
    device: str = "auto"
    global_width: int = 8
    local_width: int = 16
    K: int = 6
    percent_t: float = 0.02
    label: str = ""  # default: the demo's on phantoms, else "GMIC trained on <data>" (model_label)
    demo: bool | None = None  # default: true on phantoms only
    # "auto" (see ``training_memory_format``), "contiguous" or "channels_last"
    memory_format: str = "auto"
    continue_with_changes: bool = False  # resume a checkpoint of other settings on purpose (training/resume.py)

    def model_config(self) -> GMICConfig:
        return GMICConfig(K=self.K, percent_t=self.percent_t, local_width=self.local_width,
                          global_width=self.global_width, post_processing_dim=16 * self.global_width)


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # stored view (uint16)
    view: View
    horizontal_flip: bool
    labels: np.ndarray  # (benign, malignant)
    masks: np.ndarray | None = None  # (2, H, W) bool lesion masks (benign, malignant) in the stored frame


def phantom_samples(count: int, seed: int) -> list[Sample]:
    """``count`` single views, each from its own random phantom breast."""
    from inference.intake.phantom import Finding, random_findings, render_view  # noqa: PLC0415

    samples = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        view = list(View)[index % 4]
        findings = random_findings(rng)
        placed = [Finding(f.kind, (rng.uniform(0.3, 0.7), rng.uniform(0.28, 0.58)), f.size) for f in findings]
        phantom = render_view(view, placed, rng)
        labels = np.array([any(not f.malignant for f in findings), any(f.malignant for f in findings)], np.float32)
        masks = np.stack([phantom.lesion_masks["benign"], phantom.lesion_masks["malignant"]])
        samples.append(Sample(phantom.image, view, False, labels, masks))
    return samples


def csv_samples(path: str | Path) -> list[Sample]:
    """Rows ``path, view, benign, malignant`` (relative paths from the CSV's folder)."""
    from inference.training.labelled_images import csv_table, load_row_view, read_csv_text  # noqa: PLC0415

    path = Path(path)
    text = read_csv_text(path, "path, view, benign, malignant")
    samples = []
    columns, rows = csv_table(text, path)
    missing = sorted({"path", "benign", "malignant"} - set(columns))
    if missing:
        raise ValueError(f"{path}: the CSV lacks the column(s) {missing} (path, view, benign, malignant); its header "
                         f"has: {', '.join(columns) or 'nothing'}")
    for number, row in rows:
        where = f"{path}, line {number}"  # the file's line: a blank line counts
        file = Path(row["path"]) if Path(row["path"]).is_absolute() else path.parent / row["path"]
        image = load_row_view(file, row, where)
        if image.view is None:
            raise ValueError(f"{where}: {file}: not a screening view")
        samples.append(Sample(image.model_image, image.view, image.horizontal_flip,
                              np.array([_label(row, "benign", where), _label(row, "malignant", where)], np.float32)))
    if not samples:
        raise ValueError(f"{path}: the CSV holds no rows")
    return samples


def _label(row: dict, name: str, where: str) -> float:
    """A view's label: 0 (absent) or 1 (present)."""
    text = (row.get(name) or "").strip()
    if text not in ("0", "1", "0.0", "1.0"):
        raise ValueError(f"{where}: {name} must be 0 or 1, not {text!r}")
    return float(text)


def model_input(sample: Sample) -> torch.Tensor:
    return prepare_sample(sample)[0]


def prepare_sample(sample: Sample, cam_size: tuple[int, int] = (46, 30)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(input (1, H, W), saliency targets (2, h, w) or None): the lesion masks go through the same crop,
    flip and window as the image, then each saliency cell is 1 where it holds lesion pixels."""
    prepared = prepare_view(sample.image, sample.view, sample.horizontal_flip)
    x = torch.from_numpy(prepared.input)[None]
    if sample.masks is None:
        return x, None
    m = prepared.mapping
    top, left = m.crop_origin
    targets = []
    for mask in sample.masks:
        crop = mask[top : top + m.crop_shape[0], left : left + m.crop_shape[1]]
        crop = crop[:, ::-1] if m.flipped else crop
        window = extract_window(np.ascontiguousarray(crop).astype(np.float32), m.window_origin)
        cells = torch.from_numpy(window)[None, None]
        targets.append(F.adaptive_max_pool2d(cells, cam_size)[0, 0])
    return x, torch.stack(targets)


# ------------------------------------------------------------------------------------------------- loss


def gmic_loss(output, labels: torch.Tensor, saliency_lambda: float, beta: float,
              targets: torch.Tensor | None = None, mask_weight: float = 0.0) -> torch.Tensor:
    """The paper's objective, averaged over the batch; plus, when ``targets`` (N, 2, h, w) are given and
    ``mask_weight`` > 0, a lesion-mask BCE on the saliency maps (lesion cells weighted up, being rare)."""
    eps = 1e-6
    bce = sum(
        F.binary_cross_entropy(y.clamp(eps, 1 - eps), labels, reduction="sum")
        for y in (output.y_global, output.y_local, output.y_fusion)
    )
    regulariser = output.saliency_map.abs().pow(beta).sum()
    loss = bce + saliency_lambda * regulariser
    if targets is not None and mask_weight > 0:
        weights = 1.0 + 30.0 * targets
        loss = loss + mask_weight * F.binary_cross_entropy(
            output.saliency_map.clamp(eps, 1 - eps), targets, weight=weights, reduction="mean")
    return loss / labels.shape[0]


# ------------------------------------------------------------------------------------------------- loop


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def evaluate(model: GMIC, samples: list[Sample], inputs: list[torch.Tensor], device: torch.device) -> dict:
    model.eval()
    scores = []
    with torch.inference_mode():
        for x in inputs:
            scores.append(model(x[None].to(device)).y_fusion[0].float().cpu().numpy())
    model.train()
    scores = np.array(scores)
    labels = np.array([s.labels for s in samples])
    return {"auc_benign": roc_auc(scores[:, 0], labels[:, 0]), "auc_malignant": roc_auc(scores[:, 1], labels[:, 1])}


def train(config: TrainConfig, progress=None) -> Path:
    """Train (or resume) and write ``model.pt`` (fp16 state dict) with ``model.pt.json`` metadata."""
    rank, world = _distributed()
    device = training_device(config.device, rank)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    log = progress or (lambda text: print(text, file=sys.stderr, flush=True))

    if config.data == "phantom":
        log(f"making {config.n_train + config.n_val} phantom views (minutes on a few CPU cores) …")
        train_samples = phantom_samples(config.n_train, config.seed)
        val_samples = phantom_samples(config.n_val, config.seed + 10_000)
    else:
        everything = csv_samples(config.data)
        split = max(1, int(len(everything) * 0.8))
        train_samples, val_samples = everything[:split], everything[split:]
    val_inputs = [model_input(s) for s in val_samples] if rank == 0 else []

    memory_format = training_memory_format(device, config.memory_format)
    log(f"training on {device} in {'channels-last' if memory_format == torch.channels_last else 'contiguous'} "
        "memory format")
    model = GMIC(config.model_config()).to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    checkpoint = out / TRAINING_CHECKPOINT
    record = run_record("gmic", config)
    start_epoch, history = resume_epochs(checkpoint, model, {"optimizer": optimizer}, device, log=log, run=record,
                                         continue_with_changes=config.continue_with_changes)
    wrapped = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    for epoch in range(start_epoch, config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_samples))[rank::world]
        started, total = time.perf_counter(), 0.0
        for step, index in enumerate(order):
            sample = train_samples[index]
            x, targets = prepare_sample(sample, config.model_config().cam_size)
            x = x[None].to(device).contiguous(memory_format=memory_format)
            targets = targets[None].to(device) if targets is not None else None
            labels = torch.from_numpy(sample.labels)[None].to(device)
            loss = gmic_loss(wrapped(x), labels, config.saliency_lambda, config.saliency_beta, targets,
                             config.mask_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if rank == 0 and (step % 10 == 0 or step == len(order) - 1):
                rate = (step + 1) / (time.perf_counter() - started)
                log(f"epoch {epoch + 1}/{config.epochs}  step {step + 1}/{len(order)}  "
                    f"loss {total / (step + 1):.4f}  {rate:.2f} img/s")
        if rank == 0:
            metrics = evaluate(model, val_samples, val_inputs, device)
            # an AUC that no validation set of one class gives is null, never NaN: the metadata is strict JSON
            history.append({"epoch": epoch + 1, "loss": total / max(len(order), 1),
                            **{k: (v if math.isfinite(v) else None) for k, v in metrics.items()}})
            log(f"epoch {epoch + 1}: validation AUC benign {auc_text(metrics['auc_benign'])}  "
                f"malignant {auc_text(metrics['auc_malignant'])}")
            save_checkpoint(checkpoint, model, {"optimizer": optimizer}, {"epoch": epoch + 1}, history, run=record)
        if world > 1:
            dist.barrier()

    final = out / TRAINED_MODEL
    if rank == 0:
        store_float16(model, final)
        label, demo = model_label(config, "gmic", DEMO_LABEL)
        meta = {
            "family": "gmic",  # a sidecar copied beside another family's weights is then refused, as the others'
            "label": label,
            "demo": demo,
            "config": dataclasses.asdict(config.model_config()),
            "training": {**dataclasses.asdict(config), "history": history},
        }
        write_text_atomic(final.with_name(final.name + ".json"), json.dumps(meta, indent=1, allow_nan=False))
        log(f"wrote {final}")
    if world > 1:
        dist.destroy_process_group()
    return final

