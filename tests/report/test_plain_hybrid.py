"""`report` / `batch --plain-hybrid`: the GMIC reader study's plain mean in the written reports."""

from __future__ import annotations

import json

from app.archive.unit import BatchOptions
from app.cli.parser import parse_args
from tests.helpers import synthetic_view, write_png


def test_the_option_reaches_the_batch_and_only_a_plain_run_marks_it():
    for command in (["report", "x", "--out", "o"], ["batch", "x", "--out", "o"]):
        assert parse_args(command + ["--plain-hybrid"]).plain_hybrid
        assert not parse_args(command).plain_hybrid
    assert "plain_hybrid" not in BatchOptions().record([])  # markers of earlier runs stay valid
    assert BatchOptions(plain_hybrid=True).record([])["plain_hybrid"] is True


def test_a_plain_report_says_its_hybrid_is_the_plain_mean(tmp_path, capsys):
    from main import main

    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    bases = {}
    for plain in (False, True):
        out = tmp_path / f"out{int(plain)}"
        args = ["report", str(folder), "--out", str(out), "--format", "json"] + (["--plain-hybrid"] if plain else [])
        assert main(args) == 0, capsys.readouterr().err
        data = json.loads(next(out.glob("*.json")).read_text())
        bases[plain] = json.dumps(data)
    assert "plain mean" in bases[True] and "plain mean" not in bases[False]


def test_report_reads_the_batch_s_case_list_without_truth_columns(tmp_path, capsys):
    """`report --cases` took a reader study's case list (truth_left, truth_right required); a report needs only
    case_id and exam, as batch reads the same file."""
    from main import main

    folder = tmp_path / "exam"
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("R-CC", (700, 500)))
    cases = tmp_path / "cases.csv"
    cases.write_text("\ufeffcase_id,exam\nA,exam\n", encoding="utf-8")  # a spreadsheet's BOM too
    out = tmp_path / "out"
    assert main(["report", "--cases", str(cases), "--out", str(out), "--format", "json"]) == 0, capsys.readouterr().err
    assert len(list(out.glob("*.json"))) == 1
