"""``python main.py validate --scores DIR/scores.parquet --outcomes OUTCOMES --out OUT``: validate models on the
site's own archive — ROC with DeLong CIs, operating points with Wilson CIs, calibration and a site
recalibration (saved beside the model), subgroups, drift, paired comparisons — and write ``OUT/metrics.json``,
a CSV per table, the figures as PNG and ``OUT/validation_report.pdf``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    from app.validation.metrics import Target, parse_target  # noqa: PLC0415
    from app.validation.outcomes import read_outcomes  # noqa: PLC0415
    from app.validation.report import write_report  # noqa: PLC0415
    from app.validation.run import Options, validate  # noqa: PLC0415
    from app.validation.scores import read_score_table, with_table_facts  # noqa: PLC0415
    from app.validation.tables import write_tables  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415

    out = Path(args.out)
    ids, checkpoints = _models(args.models)
    targets = tuple(parse_target(t) for t in args.operating_point) if args.operating_point else (Target("spec", 0.9),)
    table = read_score_table(args.scores)
    _check_checkpoints(table, checkpoints)
    outcomes = with_table_facts(read_outcomes(args.outcomes), table)  # the headers' facts where the CSV lacks them
    options = Options(targets=targets, checkpoints=checkpoints, compare=tuple(tuple(p) for p in args.compare or ()),
                      site=args.site, bins=args.bins, calibration_folder=out,
                      save_calibration=not args.no_calibration)
    validation = validate(table, outcomes, options, ids)
    metrics = validation.metrics
    out.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))]
    written += write_tables(metrics, out)
    description = f"scores {args.scores}; outcomes {', '.join(str(o) for o in args.outcomes)}"
    written += write_report(validation, out / "validation_report.pdf", description, figures=out)
    for model_id in metrics["run"]["models"]:
        entry = metrics[model_id]
        for level in ("breast", "exam"):
            m = entry[level]
            auc = "—" if m["auc"] is None else f"{m['auc']:.3f}"
            ci = "" if not m["auc_ci"] else f" ({m['auc_ci'][0]:.3f}–{m['auc_ci'][1]:.3f})"
            print(f"{model_id} {level}: AUC {auc}{ci}  {m['n_positive']} cancers, {m['n_negative']} non-cancers")
        recalibration = (entry.get("calibration") or {}).get("recalibration") or {}
        if recalibration.get("file"):
            print(f"{model_id}: site calibration ({recalibration['method']}) written to {recalibration['file']}")
    for c in metrics["comparisons"]:
        if c["difference"] is not None:
            print(f"{c['a']} − {c['b']} ({c['level']}): {c['difference']:+.3f}"
                  + (f", p = {c['p']:.4f}" if c["p"] is not None else ""))
    account = metrics["accounting"]
    print(f"not used: {len(account['exams_without_outcome'])} exam(s) without an outcome, "
          f"{len(account['failed_exams'])} failed, {len(account['outcome_exams_not_analysed'])} not analysed "
          f"(listed in {out / 'unused.csv'})")
    print(f"wrote {len(written)} files to {out}")
    return 0
