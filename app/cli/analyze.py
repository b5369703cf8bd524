"""``python main.py analyze EXAM``: analyse one exam headless, print the probabilities, optionally write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import ProgressBar, load_exam_argument, model_sources
from app.folders import folder_write_error
from inference.errors import MammoError


def probability_text(value: float, floor: float | None = None) -> str:
    """Four decimals; a score that rounds to 0 or 1 is said so ("<0.0001", ">0.9999"), as the workstation says
    "< 0.1 %": a model's output printed as "1.0000" read as a certainty (the demo model on a real mammogram; a
    float32 sigmoid reaches 1.0 from a logit of 17, and 0.0 from one of -104). A detector's 0 is "<" its threshold
    (``floor``: no detection of the class passed it), as the workstation says."""
    if floor is not None and value == 0.0:
        return f"<{floor:g}"
    if 0.0 <= value < 0.00005:
        return "<0.0001"
    if value >= 0.99995:
        return ">0.9999"
    return f"{value:.4f}"


def _format(probabilities, floor: float | None = None) -> str:
    return "   ".join(f"{name} {probability_text(value, floor)}" for name, value in probabilities.items())


def print_result(result) -> None:
    """Per entry: views, breasts and the exam decision, classes as the model names them."""
    from app.model_table import score_floor  # noqa: PLC0415
    from app.report.content import DEMO_WARNING  # noqa: PLC0415
    from inference.results.exam_result import shown_notices  # noqa: PLC0415

    provenance = result.provenance
    print(f"device: {provenance.device}  mode: {provenance.mode.value} ({provenance.numerics})")
    if any(model.demo for model in provenance.models):  # the workstation and every report say it in red
        print(f"WARNING: {DEMO_WARNING}")
    for notice in shown_notices(result):
        print(f"notice: {notice}")
    if any(r.source_file for r in result.views.values()):  # which image each view's figures are of (a retake …)
        print("images:")
        for view, view_result in result.views.items():
            print(f"  {view.value:<6} {view_result.source_file or '—'}")
    for entry in result.entries:
        members = f", {len(entry.members)} models" if len(entry.members) > 1 else ""
        weights = ", ".join(m.weights_id for m in entry.members)  # as the screen, the reports and the SR name them
        print(f"model [{entry.id}]: {entry.label} ({entry.family}{members}) [{weights}]")
        floor = score_floor(entry)  # a detector: "<0.05" where no detection passed its threshold
        print("views:")
        for view, view_result in result.views.items():
            r = view_result.result(entry.id)
            if r is None:
                print(f"  {view.value:<6} NO RESULT: {view_result.no_result.get(entry.id, 'no output')}")
                continue
            spread = f"   (spread ±{max(r.spread.values()):.4f})" if len(entry.members) > 1 else ""
            counted = "" if view_result.counted else "   NOT COUNTED (possible laterality error)"
            print(f"  {view.value:<6} {_format(r.probabilities, floor)}{spread}{counted}")
        print("breasts:")
        for side, breast in result.breasts.items():
            name = "left " if side.value == "L" else "right"
            scores = breast.entries.get(entry.id)
            if scores is None:
                print(f"  {name}  no result")
                continue
            note = f"   {scores.one_view_note}" if scores.one_view_note else ""
            print(f"  {name}  {_format(scores.probabilities, floor)}{note}")
        decision = result.exam[entry.id]
        if decision.malignant is not None:
            side, other = ("left", "right") if decision.breast == "L" else ("right", "left")
            where = f"{side} breast only: the {other} breast has no score" if result.one_breast_note(entry.id) \
                else f"{side} breast"
            print(f"exam:    P(malignant) {probability_text(decision.malignant, floor)} ({where})   "
                  f"{_format(decision.probabilities, floor)}")
        elif decision.probabilities:
            print(f"exam:    {_format(decision.probabilities, floor)}   (this model declares no malignancy score)")
        else:
            print("exam:    no result")


def _refuse_writing_over_the_exam(exam, json_path: Path) -> None:
    """``--json`` naming one of the exam's own files (an image, the manifest), or any file that is no earlier
    result, replaced it with the result."""
    from inference.results.serialize import maps_path  # noqa: PLC0415

    inputs = {image.source for image in (*exam.views.values(), *exam.aside) if image.source is not None}
    if exam.source is not None:
        folder = exam.source if exam.source.is_dir() else exam.source.parent
        inputs |= {exam.source, *(folder / name for name, _reason in exam.refused)}
    own = {path.resolve() for path in inputs if path.is_file()}
    for target in (json_path, maps_path(json_path)):
        if target.resolve() in own:
            raise MammoError("this is one of the exam's own files: writing the result there would replace it; give "
                             "--json another path", target)
    if json_path.is_file() and not _is_a_result(json_path):  # an earlier result is replaced; nothing else
        raise MammoError("this file exists and is no result JSON of Mammo Reader's: it is not written over; give "
                         "--json another path", json_path)


def _is_a_result(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" in data


def exam_notes(exam) -> list[str]:
    """What the intake said of the exam and of each view, and each possible laterality error."""
    return [*exam.warnings, *(f"{view.value}: {warning}" for view, image in exam.views.items()
                              for warning in image.warnings),
            *(exam.laterality_message(view) for view in exam.laterality_conflicts)]


def run(args: argparse.Namespace) -> int:
    from inference.pipeline import Cancelled, analyze_exam  # noqa: PLC0415
    from inference.results.serialize import write_result  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    if args.json:  # asked before the analysis, not after it
        json_folder = Path(args.json).parent
        error = folder_write_error(json_folder)
        if error is not None:
            raise MammoError(f"the JSON result cannot be written there ({error.strerror or error})", json_folder)
    exam = load_exam_argument(args.exam, args)
    if args.json:
        _refuse_writing_over_the_exam(exam, Path(args.json))
    notes = exam_notes(exam)
    for note in notes:  # with the results they qualify (stdout), not with the progress (a retake's choice was
        print(f"{'WARNING' if note.startswith('POSSIBLE LATERALITY') else 'note'}: {note}")  # lost in "> out.txt")
    settings = {"overlap": args.overlap} if args.overlap is not None else None
    groups = load_model_groups(model_sources(args), percent_t=args.percent_t, settings=settings)
    if args.overlap is not None and not any("overlap" in model.identity.settings
                                            for group in groups for model in group.members):
        print("note: --overlap is a setting of none of these models (they read no windows): not used",
              file=sys.stderr)
    bar = ProgressBar()
    try:
        result = analyze_exam(exam, groups, device=args.device or "auto", progress=bar, mode=args.mode or "exact")
    except Cancelled:
        bar.close()
        print("cancelled", file=sys.stderr)
        return 130
    bar.close()
    print_result(result)
    if args.json:
        print(f"writing {args.json} and its maps …", file=sys.stderr)  # many detections' masks take a while
        path, maps = write_result(result, args.json, notes)
        print(f"wrote {path} and {maps.name}")
    from inference.results.exam_result import views_without_result  # noqa: PLC0415

    missing = views_without_result(result)
    for line in missing:  # the scores above leave these views out; the exit status says the analysis is partial
        print(f"ERROR: {line}; left out of the breast and exam scores", file=sys.stderr)
    return 1 if missing else 0
