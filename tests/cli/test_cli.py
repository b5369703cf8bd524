"""python main.py analyze: output, JSON, and the messages for bad input."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, REFERENCE, require_shared
from tests.helpers import run_main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return run_main(list(args))


def test_analyze_prints_views_breasts_and_writes_json(tmp_path):
    require_shared()
    out = tmp_path / "result.json"
    done = run("analyze", str(DATA / "gmic-exam0"), "--models", str(REFERENCE / "seeded_state_dict.pt"),
               "--percent-t", "0.02", "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "L-CC   benign 0.0998   malignant 0.0202" in done.stdout
    assert "left " in done.stdout and "right" in done.stdout and "P(malignant)" in done.stdout
    assert "4/4" in done.stderr  # the progress bar
    assert "(gmic) [sha256 " in done.stdout  # the weights as the screen and every report name them
    data = json.loads(out.read_text())
    assert data["schema_version"] == "2.1"
    assert data["models"] == [{"id": "seeded_state_dict", "family": "gmic", "classes": ["benign", "malignant"],
                               "label": "seeded_state_dict.pt", "malignancy": ["malignant"], "exclusive": False,
                               "members": data["models"][0]["members"]}]
    view = data["views"]["L-CC"]["models"]["seeded_state_dict"]
    assert abs(view["probabilities"]["malignant"] - 0.020225868) < 1e-4
    region = view["regions"][0]
    assert set(region) >= {"rank", "box_original", "score", "kind"} and region["kind"] == "attention"
    assert len(region["box_original"]) == 4
    assert set(data["breasts"]["L"]["models"]["seeded_state_dict"]["probabilities"]) == {"benign", "malignant"}
    maps = out.parent / data["maps_file"]
    assert maps.is_file() and np.load(maps)[view["layers"][0]["map"].replace("/", "|")].shape == (46, 30)


def test_two_models_side_by_side(tmp_path):
    require_shared()
    other = tmp_path / "copy.pt"
    shutil.copy(REFERENCE / "seeded_state_dict.pt", other)
    out = tmp_path / "two.json"
    done = run("analyze", str(DATA / "gmic-exam0" / "0_L-CC.png"), str(DATA / "gmic-exam0" / "0_R-CC.png"),
               "--models", str(REFERENCE / "seeded_state_dict.pt"), str(other), "--percent-t", "0.02",
               "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert [m["id"] for m in data["models"]] == ["seeded_state_dict", "copy"]
    assert set(data["views"]) == {"L-CC", "R-CC"}
    assert set(data["views"]["R-CC"]["models"]) == {"seeded_state_dict", "copy"}
    assert "model [copy]" in done.stdout


def test_bad_checkpoint_message(tmp_path):
    require_shared()
    bad = tmp_path / "bad.p"
    bad.write_bytes(b"\x00garbage")
    done = run("analyze", str(DATA / "gmic-exam0"), "--models", str(bad))
    assert done.returncode == 2
    assert "bad.p" in done.stderr and "error:" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_file_is_named_and_the_rest_is_analysed(tmp_path):
    require_shared()
    exam = tmp_path / "exam"
    exam.mkdir()
    shutil.copy(DATA / "gmic-exam0" / "0_L-CC.png", exam / "0_L-CC.png")
    (exam / "0_R-CC.png").write_bytes(b"\x89PNG broken")
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02",
               "--json", str(tmp_path / "result.json"))
    # the intake's notes go with the results they qualify (stdout, the JSON), not with the progress: "analyze EXAM >
    # out.txt" kept the scores and lost them (a deployer's audit)
    assert done.returncode == 0 and "0_R-CC.png could not be loaded" in done.stdout and "Traceback" not in done.stderr
    assert "note: missing views: R-CC, L-MLO, R-MLO" in done.stdout
    notes = json.loads((tmp_path / "result.json").read_text())["exam_notes"]
    assert any("0_R-CC.png could not be loaded" in note for note in notes)
    assert "missing views: R-CC, L-MLO, R-MLO" in notes
    (exam / "0_L-CC.png").unlink()
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02")
    assert done.returncode == 2 and "0_R-CC.png" in done.stderr and "Traceback" not in done.stderr


def test_json_is_written_atomically_and_a_full_disk_is_a_message(tmp_path):
    """The JSON goes through a temporary file: when the write fails, no truncated file is left."""
    require_shared()
    from inference.files import write_text_atomic

    target = tmp_path / "out.json"
    target.write_text("previous")

    class Full(str):
        def encode(self, *args):
            raise OSError(28, "No space left on device", str(target))

    with pytest.raises(OSError):
        write_text_atomic(target, Full("x"))
    assert target.read_text() == "previous" and list(tmp_path.iterdir()) == [target]
    done = run("analyze", str(DATA / "gmic-exam0" / "0_L-CC.png"), "--models", str(REFERENCE / "seeded_state_dict.pt"),
               "--percent-t", "0.02", "--json", "/proc/version/x.json")
    # said before the analysis ran, naming what is in the way
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: /proc/version: the JSON result cannot be written there" in done.stderr



def test_a_full_disk_without_a_file_name_names_the_output_folder(tmp_path, monkeypatch, capsys):
    """A deployer's test: a batch on a 1 MB disk said only "error: the disk is full" (a write into an open file
    names no file)."""
    from main import main  # noqa: PLC0415

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("app.cli.batch.run", full)
    assert main(["batch", str(tmp_path / "archive"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == f"error: the disk is full (writing to {tmp_path / 'out'})"

def test_train_never_writes_over_a_model_it_did_not_start(tmp_path, capsys):
    """A folder holding a model.pt (with its calibration) and no training checkpoint is refused, unchanged."""
    from main import main  # noqa: PLC0415

    demo = Path(__file__).resolve().parents[2] / "resources" / "demo" / "model.pt"
    shutil.copy(demo, tmp_path / "model.pt")
    before = (tmp_path / "model.pt").read_bytes()
    assert main(["train", "--family", "gmic", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "already holds a model (model.pt) that no training run here started" in capsys.readouterr().err
    assert (tmp_path / "model.pt").read_bytes() == before and not (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal: "--epochs: 0 must be at least 1"
        main(["train", "--family", "gmic", "--epochs", "0", "--out", str(tmp_path / "new")])
    assert refused.value.code == 2 and "0 must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("family, options, says", [
    ("sliding-window", {"windows_per_epoch": "many"}, "windows_per_epoch must be a whole number of at least 1, not \"many\""),
    ("sliding-window", {"batch_size": 0}, "batch_size must be a whole number of at least 1, not 0"),
    ("sliding-window", {"windows_per_epoch": -5}, "windows_per_epoch must be a whole number of at least 1"),
    ("gmic", {"lr": "fast"}, "lr must be a finite number"),
    ("gmic", {"demo": "yes"}, "demo must be true or false"),
    ("maskrcnn", {"layers": 3}, "layers must be a list"),
    ("gmic", {"n_val": 0}, "n_val must be a whole number of at least 1"),
], ids=["text count", "zero batch", "negative count", "text rate", "text flag", "number for list", "no validation"])
def test_training_options_of_the_wrong_kind_are_refused_before_training(tmp_path, capsys, family, options, says):
    """Seen hands-on: a TypeError and a ZeroDivisionError half-way through, and -5 windows an epoch trained
    and printed an AUC of nan."""
    from main import main  # noqa: PLC0415

    config = tmp_path / "config.json"
    config.write_text(json.dumps(options))
    assert main(["train", "--family", family, "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "config.json" in error and says in error, error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("expected, says", [
    ({"L-CC": ["a", "b"]}, "L-CC: the expected values must be a list of probabilities in [0, 1]"),
    ({"L-CC": [float("nan"), 0.1]}, "L-CC: the expected values must be a list of probabilities"),
    ([0.1, 0.2], "must be a JSON object of views"),
], ids=["text", "nan", "list"])
def test_verify_says_expected_values_it_cannot_compare(tmp_path, capsys, expected, says):
    """A TypeError deep in the comparison, and NaN printed as "published nan", before."""
    from main import main  # noqa: PLC0415

    path = tmp_path / "expected.json"
    path.write_text(json.dumps(expected))
    demo = Path(__file__).resolve().parents[2] / "resources" / "demo" / "model.pt"
    assert main(["verify", str(DATA / "gmic-exam0"), "--models", str(demo), "--expected", str(path)]) == 2
    error = capsys.readouterr().err
    assert "expected.json" in error and says in error, error


def test_shares_and_thresholds_out_of_range_are_refused_by_argparse(capsys):
    from app.cli.parser import parse_args  # noqa: PLC0415
    from inference.families.glimpsenet.training import GlimpseTrainConfig  # noqa: PLC0415
    from inference.training.common import checked_options  # noqa: PLC0415

    assert parse_args(["evaluate", "--model", "m", "--data", "d", "--out", "o", "--min-iou", "1"]).min_iou == 1.0
    assert checked_options(GlimpseTrainConfig, {"fcgn_epochs": 0, "seed": 0}, "c.json")["fcgn_epochs"] == 0

    for argv, says in ((["evaluate", "--model", "m", "--data", "d", "--out", "o", "--min-iou", "5"], "--min-iou"),
                       (["batch", "x", "--out", "o", "--gpus-per-worker", "-1"], "--gpus-per-worker")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert says in capsys.readouterr().err


def test_an_atomic_write_over_a_folder_names_the_file_asked_for(tmp_path):
    """The message named the temporary file (".x.json.3t4ijbvi.part: Is a directory")."""
    from inference.files import write_bytes_atomic  # noqa: PLC0415

    (tmp_path / "x.json").mkdir()
    with pytest.raises(OSError) as caught:
        write_bytes_atomic(tmp_path / "x.json", b"{}")
    assert caught.value.filename == str(tmp_path / "x.json") and ".part" not in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="a file is in the way of the folder") as caught:  # "File exists"
        write_bytes_atomic(tmp_path / "afile" / "x.json", b"{}")
    assert caught.value.filename == str(tmp_path / "afile")


def test_an_atomic_write_into_a_read_only_or_full_folder_names_the_file_asked_for(tmp_path, monkeypatch):
    """A read-only folder said "… /.a.maps.npz.d52mbjjl.part: Read-only file system"; root ignores the mode
    bits, so the folder's refusal is made by the temporary file's creation, and the full disk by the write."""
    import tempfile

    from inference.files import atomic_path, write_bytes_atomic  # noqa: PLC0415

    def read_only(prefix, suffix, dir):  # noqa: A002  (tempfile's own keyword)
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}abc{suffix}")

    with monkeypatch.context() as patched:
        patched.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(OSError, match="Read-only file system") as caught:
            write_bytes_atomic(tmp_path / "a.json", b"{}")
    assert caught.value.filename == str(tmp_path / "a.json") and ".part" not in str(caught.value)
    with pytest.raises(OSError, match="No space left") as caught:
        with atomic_path(tmp_path / "b.npz") as temporary:
            raise OSError(errno.ENOSPC, "No space left on device", str(temporary))
    assert caught.value.filename == str(tmp_path / "b.npz") and list(tmp_path.iterdir()) == []


def test_a_write_that_fails_for_real_is_said_of_the_file_asked_for(tmp_path):
    """A real failed write names no file ("error: the disk is full", which file?): a file-size limit makes the
    write fail as a full disk does, in a child process."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "from inference.files import write_bytes_atomic\n"
        "try:\n"
        "    write_bytes_atomic(sys.argv[1], b'x' * 100000)\n"
        "except OSError as error:\n"
        "    print(error.errno, error.filename)\n")
    target = tmp_path / "big.json"
    done = subprocess.run([sys.executable, "-c", script, str(target)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["27", str(target)], done.stdout + done.stderr  # EFBIG, of the target
    assert list(tmp_path.iterdir()) == []


def test_probabilities_that_round_to_certainty_are_not_printed_as_one():
    from app.cli.analyze import probability_text

    assert [probability_text(v) for v in (0.0, 1e-6, 0.00005, 0.5, 0.99994, 0.99995, 1.0)] == \
        ["<0.0001", "<0.0001", "0.0001", "0.5000", "0.9999", ">0.9999", ">0.9999"]
    assert probability_text(0.0, 0.05) == "<0.05" and probability_text(0.12, 0.05) == "0.1200"  # a detector's


def test_the_demo_model_is_said_to_be_one_on_the_command_line():
    require_shared()
    done = run("analyze", str(DATA / "gmic-exam0" / "0_L-CC.png"), "--device", "cpu")  # the built-in demo model
    assert done.returncode == 0, done.stderr
    assert "WARNING: DEMO MODEL — trained on synthetic phantoms only — NOT FOR CLINICAL USE." in done.stdout
    assert "1.0000" not in done.stdout
def test_json_naming_one_of_the_exam_s_own_files_is_refused(tmp_path):
    """A reviewer's `analyze EXAM --json EXAM/L-CC.dcm` replaced the image with the result; the exam is left as
    it was, before any analysis."""
    require_shared()
    exam = tmp_path / "exam"
    shutil.copytree(DATA / "gmic-exam0", exam)
    image = exam / "0_L-CC.png"
    before = image.read_bytes()
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02",
               "--json", str(image))
    assert done.returncode == 2 and f"{image}: this is one of the exam's own files" in done.stderr
    assert "4/4" not in done.stderr  # said before the analysis
    notes = tmp_path / "notes.txt"
    notes.write_text("the reader's own notes")
    done = run("analyze", str(exam), "--models", str(REFERENCE / "seeded_state_dict.pt"), "--percent-t", "0.02",
               "--json", str(notes))
    assert done.returncode == 2 and "no result JSON of Mammo Reader's: it is not written over" in done.stderr
    assert notes.read_text() == "the reader's own notes"
    assert image.read_bytes() == before and sorted(p.name for p in exam.iterdir()) == sorted(
        p.name for p in (DATA / "gmic-exam0").iterdir())
