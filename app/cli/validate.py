"""``python main.py validate --scores DIR/scores.parquet --outcomes OUTCOMES --out OUT``: validate models on the
site's own archive — ROC with DeLong CIs, operating points with Wilson CIs, calibration and a site
recalibration (saved beside the model), subgroups, drift, paired comparisons — and write ``OUT/metrics.json``,
a CSV per table, the figures as PNG and ``OUT/validation_report.pdf``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.folders import folder_write_error, made_folders_removed_if_refused
from app.validation.errors import ValidationInputError


def _models(entries: list[str] | None) -> tuple[list[str], dict[str, Path]]:
    """``--models ID`` or ``ID=CHECKPOINT``: the models to validate and the checkpoints that are known."""
    ids, checkpoints = [], {}
    for entry in entries or []:
        model_id, sep, checkpoint = entry.partition("=")
        if sep:
            path = Path(checkpoint)
            if not path.is_file():
                raise ValidationInputError("no such checkpoint", path)
            checkpoints[model_id] = path
        ids.append(model_id)
    return ids, checkpoints


def _check_checkpoints(table, checkpoints: dict[str, Path]) -> None:
    """Each ``ID=CHECKPOINT`` must be the model whose scores the table holds under ID (its content hash is in
    the table's model key): the site calibration is written beside it, and the loader applies it there."""
    from inference.weights import git_blob_sha1  # noqa: PLC0415

    for model_id, path in checkpoints.items():
        model = table.models.get(model_id)
        if model is None or not model.model_key:
            continue  # an unknown ID is named later; an older table without model keys cannot be checked
        blob = git_blob_sha1(path)
        if blob not in model.model_key:
            raise ValidationInputError(
                f"this is not the model whose scores the table holds as {model_id!r} (the table names "
                f"{model.model_key}; this file's content hash is {blob}): its site calibration would be written "
                "beside another model", path)


def _writable(folder: Path) -> None:
    """Refuse an output folder that cannot be written before the work, naming the folder (a failed write
    would name a hidden temporary file in it)."""
    error = folder_write_error(folder)
    if error is not None:
        raise ValidationInputError(f"the output folder cannot be written ({error.strerror or error}): make it "
                                   "writable or choose another --out", folder) from error


def _folder_named(error: OSError) -> OSError:
    """The error of a failed write, said of the folder when it names a hidden temporary file
    (``.metrics.json.x1y2.part``) the user never asked for."""
    name = Path(error.filename) if error.filename else None
    if name is None or not (name.name.startswith(".") and name.name.endswith(".part")):
        return error
    return OSError(error.errno, f"{error.strerror or error} (writing into this folder)", str(name.parent))


def _print_calibration(model_id: str, calibration: dict) -> None:
    recalibration = calibration.get("recalibration") or {}
    if recalibration.get("file"):
        print(f"{model_id}: site calibration ({recalibration['method']}) written to {recalibration['file']}")
    if calibration.get("note"):  # none kept, none possible (too few cases of a kind), where to copy it
        print(f"{model_id}: {calibration['note']}")


def run(args: argparse.Namespace) -> int:
    try:
        with made_folders_removed_if_refused(Path(args.out)):
            return _run(args)
    except OSError as error:
        named = _folder_named(error)
        if named is error:
            raise
        raise named from error


def _run(args: argparse.Namespace) -> int:
    from app.validation.metrics import Target, parse_target  # noqa: PLC0415
    from app.validation.outcomes import read_outcomes  # noqa: PLC0415
    from app.validation.report import write_report  # noqa: PLC0415
    from app.validation.run import ONLY_CANCERS, Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table, with_table_facts  # noqa: PLC0415
    from app.validation.tables import write_tables  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415

    out = Path(args.out)
    _writable(out)
    ids, checkpoints = _models(args.models)
    targets = tuple(parse_target(t) for t in args.operating_point) if args.operating_point else (Target("spec", 0.9),)
    table = read_score_table(args.scores)
    _check_checkpoints(table, checkpoints)
    outcomes = read_outcomes(args.outcomes)
    if args.batch_source:
        from app.validation.outcomes import with_batch_pseudonyms  # noqa: PLC0415

        outcomes, matched, outside = with_batch_pseudonyms(outcomes, args.batch_source)
        print(f"{matched} exam(s) of the outcomes matched to the de-identified batch's pseudonyms"
              + (f"; {outside} exam(s) of the outcomes are not in {args.batch_source} and are left out" if outside
                 else ""))
        if not outcomes:
            raise ValidationInputError(f"no exam of the outcomes is in the batch's source {args.batch_source}: the "
                                       "outcomes' exam_id must be the exam ID the batch gave (before de-identifying)")
    # the headers' facts where the CSV lacks them; not a de-identified batch's dates, shifted patient by patient
    outcomes = with_table_facts(outcomes, table, take_dates=not args.batch_source)
    if args.batch_source and not any(o.study_date for o in outcomes):
        print("note: the de-identified batch's study dates are shifted by each patient's own offset, so drift by "
              "month is not drawn from them; give study_date in the outcomes for it")
    options = Options(targets=targets, checkpoints=checkpoints, compare=tuple(tuple(p) for p in args.compare or ()),
                      site=args.site, bins=args.bins, calibration_folder=out,
                      save_calibration=not args.no_calibration)
    validation = validate(table, outcomes, options, ids)
    metrics = validation.metrics
    if args.batch_source:  # counted in the files too (the exams' own IDs are the site's: not listed there)
        metrics["accounting"]["outcome_exams_outside_batch"] = outside
    out.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))]
    written += write_tables(metrics, out)
    # a de-identified validation's files name no folder of the site's (its archive's or its outcomes' paths)
    description = ("scores of a de-identified batch; outcomes linked by this computer's key" if args.batch_source
                   else f"scores {args.scores}; outcomes {', '.join(str(o) for o in args.outcomes)}")
    written += write_report(validation, out / "validation_report.pdf", description, figures=out)
    for model_id in metrics["run"]["models"]:
        entry = metrics[model_id]
        for level in ("breast", "exam"):
            m = entry[level]
            auc = "—" if m["auc"] is None else f"{m['auc']:.3f}"
            ci = f" ({m['auc_ci'][0]:.3f}–{m['auc_ci'][1]:.3f})" if m["auc_ci"] else (
                f" ({m['auc_ci_note']})" if m.get("auc_ci_note") else "")
            print(f"{model_id} {level}: AUC {auc}{ci}  {m['n_positive']} cancer{'' if m['n_positive'] == 1 else 's'}, "
                  f"{m['n_negative']} non-cancer{'' if m['n_negative'] == 1 else 's'}")
        if ONLY_CANCERS in entry["operating_points_note"]:
            print(f"note: {ONLY_CANCERS}")
        _print_calibration(model_id, entry.get("calibration") or {})
    for c in metrics["comparisons"]:
        if c["difference"] is not None:
            print(f"{c['a']} − {c['b']} ({c['level']}): {c['difference']:+.3f}"
                  + (f", p = {c['p']:.4f}" if c["p"] is not None else ""))
    account = metrics["accounting"]
    print(f"not used: {len(account['exams_without_outcome'])} exam(s) without an outcome, "
          f"{len(account['exams_without_exam_outcome'])} without an exam-level outcome (a breast without one), "
          f"{len(account['failed_exams'])} failed, {len(account['outcome_exams_not_analysed'])} not analysed"
          + (f", {account['outcome_exams_outside_batch']} of the outcomes not in the batch's source (counted only)"
             if account.get("outcome_exams_outside_batch") else "") + f" (listed in {out / 'unused.csv'})")
    if account.get("not_analysed_hint"):
        print(f"note: {account['not_analysed_hint']}")
    if account.get("partial_exams"):  # in failures.csv, yet analysed: their scores are used
        print(f"{len(account['partial_exams'])} exam(s) analysed only in part are used (their reasons are in "
              "the batch's failures.csv)")
    print(f"wrote {len(written)} files to {out}")
    unsaved = [(m, metrics[m]["calibration"]["recalibration"]["save_error"]) for m in metrics["run"]["models"]
               if ((metrics[m].get("calibration") or {}).get("recalibration") or {}).get("save_error")]
    for model_id, problem in unsaved:
        print(f"error: {model_id}: {problem}", file=sys.stderr)
    return 1 if unsaved else 0
