"""The one resume helper every family's training uses."""

from __future__ import annotations

import pytest
import torch

from inference.training.resume import resume, save_checkpoint


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    """Training into a folder that holds another family's run (or other widths) printed torch's screens of
    missing and unexpected keys; the model is left as it was."""
    path = tmp_path / "checkpoint.pt"
    small = torch.nn.Linear(2, 2)
    save_checkpoint(path, small, {"adam": torch.optim.Adam(small.parameters())}, {"epoch": 1}, [])
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    wider = torch.nn.Linear(2, 3)
    for model in (other, wider):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match="checkpoint.pt: the checkpoint is of another model .* differs"):
            resume(path, model, {"adam": torch.optim.Adam(model.parameters())}, torch.device("cpu"))
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    same = torch.nn.Linear(2, 2)
    progress, history = resume(path, same, {"adam": torch.optim.Adam(same.parameters())}, torch.device("cpu"))
    assert progress == {"epoch": 1} and history == [] and torch.equal(same.weight, small.weight)


def _options(**values):
    """A run's options as a family declares them: a frozen dataclass with the data, the seed and a rate."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Options:
        out: str = "run"
        data: str = "phantom"
        seed: int = 0
        lr: float = 0.01
        epochs: int = 2
        device: str = "cpu"
        label: str = ""
        continue_with_changes: bool = False

    return Options(**values)


def _first_run(path, options):
    from inference.training.resume import run_record

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    save_checkpoint(path, model, {"sgd": torch.optim.SGD(model.parameters(), lr=0.1)}, {"epoch": 1},
                    [{"epoch": 1, "loss": 0.5}], run=run_record("toy", options))
    return model


def _resume(path, options, log=None):
    from inference.training.resume import run_record

    model = torch.nn.Linear(2, 2)
    resumed = resume(path, model, {"sgd": torch.optim.SGD(model.parameters(), lr=0.1)}, torch.device("cpu"),
                     run=run_record("toy", options), continue_with_changes=options.continue_with_changes, log=log)
    return model, resumed


def test_a_resume_with_another_seed_data_or_option_is_refused_naming_what_differs(tmp_path, monkeypatch):
    """Seen hands-on: a resume with another --data, --seed or lr went on silently, and model.pt.json recorded the new
    values for weights that came from the old ones."""
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("path,view,label,mask\na.png,L-CC,normal,\n")
    path = tmp_path / "checkpoint.pt"
    first = _first_run(path, _options(data=str(csv_file)))
    other = tmp_path / "other.csv"
    other.write_text("path,view,label,mask\nb.png,L-CC,normal,\n")
    for changed, says in (({"seed": 3}, "seed 0 there, 3 now"),
                          ({"lr": 0.02}, "lr 0.01 there, 0.02 now"),
                          ({"data": str(other)}, f"data {other} has other content than the run's (the run's was "
                                                 f"{csv_file})")):
        with pytest.raises(ValueError) as refused:
            _resume(path, _options(**{"data": str(csv_file), **changed}))
        message = str(refused.value)
        assert message.startswith(f"{path}: the checkpoint is of a run with other settings ({says})"), message
        assert "another --out" in message and "move the checkpoint away" in message and "\n" not in message
    # the same values (the data as a relative path, more epochs, another label): resumed as before
    monkeypatch.chdir(tmp_path)
    model, (progress, history) = _resume(path, _options(data="train.csv", epochs=5, label="mine", device="cuda"))
    assert progress == {"epoch": 1} and torch.equal(model.weight, first.weight)
    # the same CSV moved (the project copied to another machine): the same run, decided by its content
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "train.csv").write_text(csv_file.read_text())
    model, (progress, _) = _resume(path, _options(data=str(moved / "train.csv")))
    assert progress == {"epoch": 1} and torch.equal(model.weight, first.weight)
    # the same path with another content is another run
    csv_file.write_text("path,view,label,mask\nb.png,L-CC,normal,\n")
    with pytest.raises(ValueError, match=r"data .*train\.csv has other content than the run's\)"):
        _resume(path, _options(data=str(csv_file)))


def test_a_data_folder_holding_the_runs_own_output_is_fingerprinted_without_it(tmp_path):
    """A MIAS folder with --out inside it changed its fingerprint every epoch: every resume was refused."""
    from inference.training.resume import data_fingerprint

    (tmp_path / "mdb001.pgm").write_bytes(b"x" * 10)
    before = data_fingerprint(str(tmp_path), tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"y" * 99)
    assert data_fingerprint(str(tmp_path), tmp_path / "run") == before
    assert data_fingerprint(str(tmp_path))["sha256"] != before["sha256"]


def test_a_second_stage_on_purpose_resumes_and_the_history_says_what_changed(tmp_path):
    path = tmp_path / "checkpoint.pt"
    _first_run(path, _options())
    said = []
    _, (progress, history) = _resume(path, _options(lr=0.5, continue_with_changes=True), said.append)
    assert progress == {"epoch": 1}
    assert history == [{"epoch": 1, "loss": 0.5, "settings_changed_after": ["lr 0.01 there, 0.5 now"]}]
    assert said == ["continuing with changed settings: lr 0.01 there, 0.5 now"]


def test_a_checkpoint_written_before_runs_were_recorded_resumes_with_a_warning(tmp_path):
    path = tmp_path / "checkpoint.pt"
    model = torch.nn.Linear(2, 2)
    save_checkpoint(path, model, {"sgd": torch.optim.SGD(model.parameters(), lr=0.1)}, {"epoch": 2}, [])  # no record
    said = []
    resumed_model, (progress, _) = _resume(path, _options(seed=9), said.append)
    assert progress == {"epoch": 2} and torch.equal(resumed_model.weight, model.weight)
    assert len(said) == 1 and said[0].startswith(f"warning: {path} was written before") and "could not be" in said[0]


def test_train_refuses_a_checkpoint_of_another_run_before_reading_the_data(tmp_path, capsys):
    """The refusal comes from ``train`` at once, before the data (minutes of phantoms) is made or read."""
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig
    from inference.training.resume import run_record
    from main import main

    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    save_checkpoint(out / "checkpoint.pt", model, {"sgd": torch.optim.SGD(model.parameters(), lr=0.1)},
                    {"epoch": 1}, [], run=run_record("maskrcnn", MaskRCNNTrainConfig(out=str(out))))
    missing = tmp_path / "none.csv"  # read first, it would have said that it does not exist
    assert main(["train", "--family", "maskrcnn", "--data", str(missing), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"checkpoint.pt: the checkpoint is of a run with other settings (data phantom there, {missing} now)" in error
    assert "does not exist" not in error


def test_train_refuses_fewer_epochs_than_the_checkpoint_has_done(tmp_path, capsys):
    """--epochs 1 on a run that had done 2 wrote model.pt again with "epochs": 1 in its record beside a history of
    two (a researcher's hands-on test): refused before anything is read or written."""
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig
    from inference.training.resume import run_record
    from main import main

    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    save_checkpoint(out / "checkpoint.pt", model, {"sgd": torch.optim.SGD(model.parameters(), lr=0.1)},
                    {"epoch": 2}, [], run=run_record("maskrcnn", MaskRCNNTrainConfig(out=str(out))))
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--family", "maskrcnn", "--out", str(out), "--epochs", "1"]) == 2
    assert "checkpoint.pt: this run has done 2 epochs already, more than --epochs 1: give --epochs 2 or more" in \
        capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before and not (out / "model.pt").exists()


def test_another_family_is_said_once():
    """A researcher's test: "(family maskrcnn there, sliding-window now; batch_size 2 there, 32 now; family
    maskrcnn there, sliding-window now; …)"."""
    from inference.training.resume import run_differences

    stored = {"family": "maskrcnn", "options": {"family": "maskrcnn", "batch_size": 2}}
    now = {"family": "sliding-window", "options": {"family": "sliding-window", "batch_size": 32}}
    assert run_differences(stored, now) == ["family maskrcnn there, sliding-window now", "batch_size 2 there, 32 now"]
