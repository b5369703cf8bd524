"""``python main.py train``'s options file: its problems said once, with the file named once."""

from __future__ import annotations

import json


def test_an_invalid_option_names_the_options_file_once(tmp_path, capsys):
    """Said "…cfg_nan.json: the training options are invalid (…cfg_nan.json: lr must be …)"."""
    from main import main

    config = tmp_path / "cfg_nan.json"
    config.write_text('{"lr": NaN}')
    assert main(["train", "--family", "maskrcnn", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {config}: the training options are invalid (lr must be a finite number, not NaN)"
    config.write_text(json.dumps({"demo": "yes"}))  # demo's default is "by the data", still a flag when given
    assert main(["train", "--family", "maskrcnn", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "demo must be true or false" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    for bad, says in (({"lr": -0.01}, "lr must be a number above 0, not -0.01"),  # a researcher's test: refused
                      ({"weight_decay": -1.0}, "weight_decay must be a number of at least 0"),  # by torch only,
                      ({"momentum": 1.5}, "momentum must be a number between 0 and 1")):  # after the data was made
        config.write_text(json.dumps(bad))
        assert main(["train", "--family", "maskrcnn", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_detectors_classes_without_the_background_first_are_refused(tmp_path, capsys):
    """["benign mass", "malignant mass"] was accepted, its first class silently taken for the background."""
    from main import main

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"classes": ["benign mass", "malignant mass"]}))
    assert main(["train", "--family", "maskrcnn", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: the training options are invalid (classes must begin with the background class: class 0 "
        "is the background in torchvision's layout, and ['benign mass'] would be taken for it; write e.g. "
        "['background', 'benign mass', 'malignant mass'])")
    assert not (tmp_path / "run").exists()
