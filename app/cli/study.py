"""``python main.py study …``: create, score, read, follow and analyse reader studies."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from app.cli.common import ProgressBar, model_sources
from inference.numbers import df_text, p_text


MAKE_A_DATABASE = ("create", "import")  # the commands that may make the --db file; the others read a study in it


def _store(args: argparse.Namespace):
    from app.settings import store_path  # noqa: PLC0415
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.study.store import Store  # noqa: PLC0415

    if not args.db:
        return Store(store_path())
    path = Path(args.db)
    if path.is_dir():
        raise StudyError(f"{path}: a folder, not a study database file (--db names the file, e.g. "
                         f"{path / 'study.sqlite'})")
    if not path.exists() and args.study_command not in MAKE_A_DATABASE:
        # a mistyped --db made a new empty database (and its folders) and said only "no study named …"
        raise StudyError(f"{path}: no such study database (study create or study import makes one)")
    if args.study_command not in MAKE_A_DATABASE and path.is_file() and path.stat().st_size == 0:
        # an empty file became a 200 KB store under a command that only reads (a coordinator's re-test)
        raise StudyError(f"{path}: an empty file, no study database (study create or study import makes one)")
    return Store(path)


def _study_id(store, name: str) -> int:
    from app.study.errors import StudyError  # noqa: PLC0415

    rows = store.read("SELECT study_id FROM studies WHERE name=?", (name,))
    if not rows:
        names = [row[0] for row in store.read("SELECT name FROM studies ORDER BY name")]
        known = f"; it holds {', '.join(repr(n) for n in names[:10])}{' …' if len(names) > 10 else ''}" if names else (
            "; it holds no study")
        raise StudyError(f"no study named {name!r} in {store.path}{known}")
    return rows[0][0]


def _create(store, args) -> int:
    from app.study.cases import case_mix_note, read_case_list, unread_columns_note  # noqa: PLC0415
    from app.study.design import DEFAULT_WASHOUT_DAYS, Design, create_study, design_note  # noqa: PLC0415

    from app.study.errors import StudyError  # noqa: PLC0415

    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    cases = read_case_list(args.cases, check_exams=True)
    lesions, rule = None, None
    if args.lesions:
        from app.study.lesions import lesions_for_new_study  # noqa: PLC0415

        lesions, rule = lesions_for_new_study(args.lesions, cases, args.distance_mm)
    elif args.distance_mm is not None:
        raise StudyError("--distance-mm scores marks against lesions: give the lesions with --lesions")
    scores = None
    if args.scores:  # checked before the study is made: a refused table leaves no study behind
        from app.archive.study_scores import read_batch_scores  # noqa: PLC0415

        scores = read_batch_scores(args.scores, {case.case_id: case for case in cases})
    washout = args.washout_days
    if washout is None:
        washout = DEFAULT_WASHOUT_DAYS if args.design == Design.CROSSOVER else 0
    study_id = create_study(store, args.name, args.design, readers, cases, seed=args.seed,
                            washout_days=washout, lesions=lesions, scoring=rule)
    print(f"created study {args.name!r} (id {study_id}) with {len(readers)} reader{'' if len(readers) == 1 else 's'}")
    for note in (unread_columns_note(args.cases), case_mix_note(cases), design_note(args.design, readers, washout)):
        if note:
            print(f"note: {note}")
    if lesions:
        from app.study.lesions import LESION_COLUMNS, lesions_summary  # noqa: PLC0415

        print(lesions_summary(lesions, rule))
        if note := unread_columns_note(args.lesions, LESION_COLUMNS, "the lesion list"):
            print(f"note: {note}")
    if scores is not None:
        from app.archive.study_scores import store_batch_scores  # noqa: PLC0415

        store_batch_scores(store, study_id, scores)
        print(f"model scores of {len(scores.cases)} case(s) taken from {scores.table_path}"
              + (f"; {scores.missing} case(s) have none there ('study scores {args.name}' computes them)"
                 if scores.missing else ""))
        if scores.foreign:
            shown = ", ".join(scores.foreign[:5]) + (" …" if len(scores.foreign) > 5 else "")
            print(f"{len(scores.foreign)} exam(s) of the table are no case of the study and were not taken: {shown}")
    return 0


def _scores(store, args) -> int:
    from app.study.scores import compute_model_scores  # noqa: PLC0415
    from inference.weights import load_model_groups  # noqa: PLC0415

    models = load_model_groups(model_sources(args))
    bar = ProgressBar()
    try:
        count = compute_model_scores(store, _study_id(store, args.name), models, device=args.device or "auto",
                                     mode=args.mode or "exact", progress=bar)
    finally:
        bar.close()  # an error is printed on a line of its own
    print(f"model scores computed for {count} case(s)")
    return 0


def _results(store, args) -> int:
    from app.study.recall import recall_lines  # noqa: PLC0415
    from app.study.results import (  # noqa: PLC0415
        comparison_caution, comparison_means, comparison_test, study_results, write_results)

    results = study_results(store, _study_id(store, args.name), args.level, args.method, args.readers)
    for note in results.notes():
        print(f"note: {note}")
    print(f"AUCs ({args.level} level, DeLong 95 % CI):")
    # columns as wide as the longest name ("Jan van der Berg aided" ran past them)
    readers = max([10, *(len(row.reader) for row in results.aucs)])
    modalities = max([22, *(len(row.modality) for row in results.aucs)])
    for row in results.aucs:
        ci = "no CI" if row.ci_low != row.ci_low else f"{row.ci_low:.3f} – {row.ci_high:.3f}"
        print(f"  {row.reader:<{readers}} {row.modality:<{modalities}} {row.auc:.3f}  ({ci})  n+ {row.n_positive}  "
              f"n- {row.n_negative}")
    averages = results.reader_averages()
    if averages:
        print(f"Reader-averaged AUCs (ORH random readers and cases, {args.method}, 95 % CI):")
    both = max([readers + 1 + modalities, *(len(row.modality) for row in averages)])
    for row in averages:
        ci = "no CI" if row.ci_low != row.ci_low else f"{row.ci_low:.3f} – {row.ci_high:.3f}"
        print(f"  {row.modality:<{both}} {row.auc:.3f}  ({ci})  n+ {row.n_positive}  n- {row.n_negative}")
    for name, r in results.comparisons.items():  # "A vs B": the difference is A − B, said by name
        print(f"ORH {name} ({r.method}): {comparison_means(r)};  {comparison_test(r)}")
        if caution := comparison_caution(r):
            print(f"    caution: {caution}")
    if results.recalls:
        print(f"Screening decisions from the BI-RADS categories ({results.level} level):")
        print(f"  note: {results.recall_notes()[0]}")
        for line in recall_lines(results.recalls):
            print(f"  {line}")
    for key, value in (results.telemetry_summary().items() if results.telemetry else ()):  # aided reads only
        print(f"telemetry: {key}: {value}")
    if args.out:
        files = write_results(results, args.out)
        for path in files:
            print(f"wrote {path}")
        for path in files.removed:
            print(f"removed {path} (an earlier results run wrote it there, and this run writes none in its place)")
        for path in files.kept_aside:
            print(f"note: kept your {path.with_name(path.name.rsplit('.yours', 1)[0])} as {path}: no results run "
                  "recorded writing it, and this run wrote its own under that name")
        for path in files.left:
            print(f"note: left {path} as it is: named as a results file, but not this run's, and no results run "
                  "recorded writing it as it is now (your own, changed since, or an earlier version's)")
    if args.window or args.screenshot:
        from app.gui import run_study_results  # noqa: PLC0415

        return run_study_results(results, args.screenshot)
    return 0


def _status(store, args) -> int:
    from app.study.sessions import reader_progress  # noqa: PLC0415

    for row in reader_progress(store, _study_id(store, args.name)):
        session = f" session {row['session']} of {row['sessions']}:" if row["sessions"] > 1 else ""
        state = ""
        if row["done"] < row["total"] and not row["open"]:
            opens = row["opens_at"]
            state = ("  (opens after session 1)" if opens is None else
                     f"  (opens {time.strftime('%Y-%m-%d %H:%M', time.localtime(opens))}, after the washout)")
        begun = f", {row['started']} begun" if row.get("started") else ""
        print(f"{row['reader']}:{session} {row['done']} of {row['total']} read{begun}{state}")
    return 0


def _froc_form(store, study_id: int, truth_path: str | None) -> tuple[dict, tuple[str, ...]]:
    """The stored study's scored marks in the localisation JSON form, with the study's own lesions (or those
    of a truth file for a study created without them)."""
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.study.froc_study import load_lesion_truth, stored_froc_data  # noqa: PLC0415
    from app.study.lesions import stored_lesion_truth  # noqa: PLC0415

    truth = load_lesion_truth(truth_path) if truth_path else stored_lesion_truth(store, study_id)
    if truth_path and truth is not None:  # a lesion list is checked when a study is created; a truth file here
        from app.study.cases import study_cases  # noqa: PLC0415
        from app.study.froc_study import check_truth_file  # noqa: PLC0415

        unchecked = check_truth_file(truth, study_cases(store, study_id), truth_path)
        form, cautions = stored_froc_data(store, study_id, truth)
        return form, (*unchecked, *cautions)
    if truth is None:
        raise StudyError("the study was created without lesion locations: create it with --lesions CSV, or give "
                         "them with --truth LESIONS.json")
    return stored_froc_data(store, study_id, truth)


def _export(store, args) -> int:
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.study.exchange import export_study  # noqa: PLC0415
    from inference.files import write_text_atomic  # noqa: PLC0415

    if not (args.out or args.froc or args.rjafroc):
        raise StudyError("say what to write: OUT (the whole study), --froc JSON and/or --rjafroc XLSX")
    for given in (args.out, args.froc, args.rjafroc):
        if given and Path(given).is_dir():
            raise StudyError(f"{given} is a folder: give the file to write (e.g. {Path(given) / 'study.json'})")
    study_id = _study_id(store, args.name)
    if args.out:
        write_text_atomic(args.out, json.dumps(export_study(store, study_id), indent=1))
        print(f"wrote {args.out}")
    if args.froc or args.rjafroc:
        form, cautions = _froc_form(store, study_id, args.truth)
        for note in cautions:
            print(f"note: {note}")
        if args.froc:
            write_text_atomic(args.froc, json.dumps(form, indent=1))
            print(f"wrote {args.froc} (the localisation JSON form: 'study froc --data' analyses it)")
        if args.rjafroc:
            from app.study.froc_export import write_rjafroc_xlsx  # noqa: PLC0415

            write_rjafroc_xlsx(form, args.rjafroc)
            print(f"wrote {args.rjafroc} (RJafroc: DfReadDataFile(\"{Path(args.rjafroc).name}\"))")
    return 0


def _import(store, args) -> int:
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.study.exchange import import_study, studies_like  # noqa: PLC0415

    try:
        data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise StudyError(f"{args.file}: not a readable study export ({error})") from error
    try:
        earlier = studies_like(store, data)
        study_id = import_study(store, data, name=args.name)
    except StudyError as error:
        raise StudyError(f"{args.file}: {error}") from error
    print(f"imported as study id {study_id}")
    from app.study.cases import study_cases  # noqa: PLC0415

    elsewhere = [case.exam_path for case in study_cases(store, study_id).values()
                 if "://" not in case.exam_path and not Path(case.exam_path).exists()]
    if elsewhere:  # an export from another machine: said now, not when a reader meets the first one
        print(f"note: {len(elsewhere)} case(s)' exams are not at their paths on this machine (e.g. {elsewhere[0]}): "
              "the reading screen and study scores cannot open them until they are")
    if earlier:
        print(f"note: this database held the same study already ({', '.join(map(repr, earlier))}: the same creation "
              "time, design and seed); the import is a second copy of its reads")
    return 0


def _read(store, args) -> int:
    from app.gui import run_study_reading  # noqa: PLC0415

    return run_study_reading(store, _study_id(store, args.name), args.reader)


def _froc(store, args) -> int:
    from app.study.analysis import NotEstimable  # noqa: PLC0415
    from app.study.errors import StudyError  # noqa: PLC0415
    from app.study.froc import froc_analysis, load_froc_json  # noqa: PLC0415
    from app.study.froc_results import fom_interval, froc_cautions, write_froc_results  # noqa: PLC0415

    if args.data and args.name:
        raise StudyError("give either a stored study or --data, not both")
    cautions: tuple[str, ...] = ()
    if args.data:
        try:
            data = load_froc_json(args.data)
        except NotEstimable as reason:  # e.g. no abnormal case: the file's content, said with its name
            raise StudyError(f"{args.data}: {reason}") from reason
    else:
        from app.study.froc import froc_data_from_dict  # noqa: PLC0415
        from inference.files import write_text_atomic  # noqa: PLC0415

        if not args.name:
            raise StudyError("name a stored study, or give a study in the localisation JSON form with --data")
        form, cautions = _froc_form(store, _study_id(store, args.name), args.truth)
        path = write_text_atomic(Path(args.out) / "study_froc.json", json.dumps(form, indent=1))
        print(f"wrote {path} (the study in the localisation JSON form: 'study froc --data' re-runs it)")
        try:
            data = froc_data_from_dict(form, args.name)
        except NotEstimable as reason:
            for note in cautions:  # why (a reader left out, interim) stands beside the refusal too
                print(f"note: {note}")
            print(f"{args.fom} ({args.method}): {reason}")
            return 1
    try:
        analysis = froc_analysis(data, args.fom, args.method, args.covariance, args.alpha)
    except NotEstimable as reason:
        for note in cautions:  # "a single reader": because the other has read nothing yet, say so
            print(f"note: {note}")
        means = ", ".join(f"{m} {v:.4f}" for m, v in reason.reader_mean.items())
        print(f"{args.fom} ({args.method}): {reason}" + (f" (mean {args.fom}: {means})" if means else ""))
        return 1
    for note in cautions + froc_cautions(data, analysis):
        print(f"note: {note}")
    print(f"{args.fom} by modality (mean over {len(data.readers)} readers; {data.n_normal} normal, "
          f"{data.n_abnormal} abnormal cases):")
    for modality, value in analysis.modality_mean().items():
        ci = fom_interval(analysis.tests["RRRC"].single[modality].ci)
        print(f"  {modality:<12} {value:.4f}  (RRRC 95 % CI {ci[0]:.4f} – {ci[1]:.4f})")
    for name, test in analysis.tests.items():
        if test.reason in analysis.cautions:  # said once above (a single modality: no test)
            continue
        if test.reason:
            print(f"{args.method} {name}: not estimable: {test.reason}")
            continue
        df = f"df {test.ndf:g}" if test.statistic_name == "chisq" else f"ndf {test.ndf:g}  ddf {df_text(test.ddf)}"
        print(f"{args.method} {name}: {test.statistic_name} {test.statistic:.4f}  {df}  p {p_text(test.p)}")
        for d in test.differences:
            print(f"    {d.name} = {d.estimate:+.4f}  95 % CI {d.ci[0]:+.4f} – {d.ci[1]:+.4f}")
    for path in write_froc_results(data, analysis, args.out, cautions):
        print(f"wrote {path}")
    return 0


COMMANDS = {"create": _create, "scores": _scores, "results": _results, "status": _status, "export": _export,
            "import": _import, "read": _read, "froc": _froc}


def run(args: argparse.Namespace) -> int:
    if args.study_command == "froc" and args.data:  # a study given as a file: no store is opened (or created)
        return _froc(None, args)
    # a create or import that fails leaves no database (nor folder) it made: an empty one said "it holds no study"
    # to the next command instead of "no such study database"
    made = _not_there_yet(Path(args.db)) if args.db and args.study_command in MAKE_A_DATABASE else []
    store = _store(args)
    status = None
    try:
        status = COMMANDS[args.study_command](store, args)
        return status
    finally:
        store.close()
        if made and status != 0:
            _remove_made(made)


def _not_there_yet(path: Path) -> list[Path]:
    """``path`` and those of its folders that do not exist yet, the file first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_made(made: list[Path]) -> None:
    database = made[0]
    for path in (database, *(database.with_name(database.name + end) for end in ("-wal", "-shm", "-journal"))):
        path.unlink(missing_ok=True)
    for folder in made[1:]:
        try:
            folder.rmdir()
        except OSError:  # not empty (something else was put there meanwhile): left
            break
