"""Every CSV the app writes for people keeps a formula-like text cell as text, and numbers as numbers."""

import csv
import io

from inference.evaluation.classification_report import classification_report
from inference.spreadsheet_cells import read_text_cell, text_cell, text_dict_writer, text_writer


def test_text_that_would_start_a_formula_gets_an_apostrophe_and_numbers_written_as_text_do_not():
    assert [text_cell(v) for v in ("=1+1", "+cmd", "-x", "@SUM(A1)", "\tA", "\rA", "GE", "")] == \
        ["'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "'\tA", "'\rA", "GE", ""]
    # evaluate writes its probabilities and thresholds as formatted text: "-0.250000" must stay a number
    assert [text_cell(v) for v in ("-0.250000", "+1", "-1e-05", "-.5", -2.0, None)] == \
        ["-0.250000", "+1", "-1e-05", "-.5", -2.0, None]
    assert text_cell("-1e5x") == "'-1e5x" and text_cell("-1-1") == "'-1-1"
    assert read_text_cell(text_cell("=HYPERLINK(\"x\")")) == "=HYPERLINK(\"x\")"
    assert read_text_cell("'quoted") == "'quoted"  # an apostrophe the writer did not add stays


def test_the_writers_pass_every_cell_through_and_keep_csv_s_options():
    out = io.StringIO()
    writer = text_writer(out, lineterminator="\n")
    writer.writerow(["=cmd|' /C calc'!A0", -0.5, "-0.500000"])
    writer.writerows([["@x", 1]])
    assert out.getvalue() == "'=cmd|' /C calc'!A0,-0.5,-0.500000\n'@x,1\n"
    out = io.StringIO()
    writer = text_dict_writer(out, ["reader", "score"], lineterminator="\n")
    writer.writeheader()
    writer.writerow({"reader": "=Dr", "score": 0.5})
    writer.writerows([{"reader": "+Dr", "score": "-1"}])
    assert out.getvalue() == "reader,score\n'=Dr,0.5\n'+Dr,-1\n"


def test_evaluate_s_class_report_keeps_names_text_and_the_tidy_table_for_r_keeps_ids_as_they_are(tmp_path):
    """A class named "@cmd" in a checkpoint's card reached evaluate's report as a formula. The tidy table is R's
    input (MRMCaov, RJafroc), not a spreadsheet's: an apostrophe before "-c1" made another case than the case
    list's, the truth's and the iMRMC file's (a code review), so its IDs stay as they are."""
    from app.study.exchange import write_tidy_csv

    write_tidy_csv([{"reader": "=HYPERLINK(\"http://x\")", "modality": "aided", "case": "-c1", "truth": 1,
                     "score": -0.25}], tmp_path / "tidy.csv")
    with (tmp_path / "tidy.csv").open(newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["reader"], row["case"], row["score"]) == ("=HYPERLINK(\"http://x\")", "-c1", "-0.25")
    report = classification_report([0, 1, 1], [0, 1, 0], ["benign", "@cmd"])
    assert "\n'@cmd," in report.csv() and "\n'@cmd," in report.confusion_csv()
