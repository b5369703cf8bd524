"""The command line: real subcommands, with the workstation (``open``) as the default.

``python main.py [EXAM]`` opens the workstation; ``python main.py SUBCOMMAND ...`` runs headless work.
Options that every command understands (``-v``, ``--device``, ``--mode``) may stand before the subcommand
too, so ``python main.py --device cpu analyze EXAM`` is the same as ``python main.py analyze EXAM --device
cpu``. A subcommand name always means the subcommand: an exam folder called ``report`` is opened with
``python main.py open report`` (or ``./report``).

Only argparse is imported here: ``--help`` stays instant, and each command imports what it needs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from inference.families.registry import BUILT_IN

DEVICE_HELP = "where the models run: auto = the GPU (CUDA) when present, else the CPU (default: auto)"
MODE_HELP = ("exact: the reference numerics (fp32, TF32 off); fast: folded batch norms, "
             "bf16 where the GPU or CPU has fast bf16 arithmetic (Mask R-CNN: fp32 unless its metadata declares "
             "fast_autocast) (default: exact)")
MODELS_HELP = ("checkpoint files or folders of them; several give several models side by side (one ensemble per "
               "folder); default: the models in Preferences, else the built-in demo model")
EXAM_HELP = ("an exam: a folder of DICOM files or of PNGs named like 0_L-CC.png, a list of image files, a "
             "manifest (CSV path,view or JSON), or a study on a PACS: dimse://CALLED_AET@HOST:PORT/STUDY_UID or "
             "dicomweb+http(s)://HOST:PORT/PREFIX/studies/STUDY_UID")

EPILOG = ("Without a subcommand the workstation opens (on EXAM when given). A folder named like a subcommand "
          "is opened with 'open': python main.py open report")


def positive_int(text: str) -> int:
    """An argument that counts something (bins, epochs, workers …): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def port_number(text: str) -> int:
    """A TCP port to listen on or to call: 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (1 to 65535)")
    return value


def ae_title(text: str) -> str:
    """A DICOM AE title (PS3.5, AE): 1 to 16 characters of printable ASCII, no backslash, not only spaces."""
    title = text.strip()
    if not title or len(title) > 16 or not all(" " <= c <= "~" and c != "\\" for c in title):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AE title (1 to 16 letters, digits or other printable "
                                         "ASCII characters, no backslash)")
    return title


PERCENT_T_HELP = "GMIC pooling threshold for checkpoints that are not recognised (default 0.02)"
PAGE_SIZE_HELP = "the paper size of the PDF reports (default A4)"


def number_in(low: float, high: float, *, low_open: bool, high_open: bool, says: str):
    """An argparse type: a number between ``low`` and ``high`` (each end open or closed); ``says`` the range in
    words for the message. NaN is in no range."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):  # NaN fails both
            raise argparse.ArgumentTypeError(f"{text} must {says}")
        return value

    return parse


# a significance level alpha; an overlap (IoU) threshold, 1 being exact overlap; a share of a resource (GPUs)
open_fraction = number_in(0.0, 1.0, low_open=True, high_open=True, says="lie strictly between 0 and 1")
overlap_fraction = number_in(0.0, 1.0, low_open=True, high_open=False, says="lie above 0 and at most 1")
non_negative_number = number_in(0.0, float("inf"), low_open=False, high_open=True, says="be a number of at least 0")


def output_folder(text: str) -> str:
    """An output folder: it may not exist yet, but it may not be a file."""
    from pathlib import Path  # noqa: PLC0415

    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def output_file(text: str) -> str:
    """An output file: it may not be a folder."""
    from pathlib import Path  # noqa: PLC0415

    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name (such as {Path(text) / 'result.json'})")
    return text


def _version() -> str:
    from app import __version__  # noqa: PLC0415 - app/__init__ is tiny

    return __version__


DB_HELP = "study database (default: the app's local store)"


def _shared(suppress: bool, ae_title_help: str = "our calling AE title for dimse:// exams and destinations "
                                                  "(default MAMMOREADER)") -> argparse.ArgumentParser:
    """Options of every command. In the subcommands their default is SUPPRESS, so that a value given before
    the subcommand is not overwritten by the subcommand's default; ``ae_title_help`` says what --ae-title is to
    the command."""
    shared = argparse.ArgumentParser(add_help=False)
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    shared.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log more")
    shared.add_argument("--device", choices=["auto", "cpu", "cuda"], default=default(None), help=DEVICE_HELP)
    shared.add_argument("--mode", choices=["exact", "fast"], default=default(None), help=MODE_HELP)
    shared.add_argument("--ae-title", type=ae_title, default=default(None), metavar="AET",
                        help=ae_title_help)
    return shared


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mammo-reader", parents=[_shared(suppress=False)], epilog=EPILOG,
                                     description="Mammo Reader: a reading workstation for screening mammography "
                                     "with weakly supervised AI models (decision support only).")
    parser.add_argument("--version", action="version", version=f"Mammo Reader {_version()}")
    common = _shared(suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    open_ = sub.add_parser("open", parents=[common], help="open the workstation (the default command)",
                           description="Open the workstation, on EXAM when given (else the built-in demo exam).")
    open_.add_argument("exam", nargs="?", help=EXAM_HELP)
    open_.add_argument("--models", nargs="+", help=MODELS_HELP)
    open_.add_argument("--worklist", metavar="SOURCE",
                       help="start on a worklist: a folder of exam folders, a case CSV (case_id, exam), an exam list, "
                            "a batch output folder (scores.parquet), 'inbox' (the studies our Storage SCP received), "
                            "or a PACS node's address (dimse://AET@HOST:PORT or dicomweb+http(s)://…): its MG studies "
                            "of --dates")
    open_.add_argument("--dates", default="today", metavar="DATES",
                       help="a PACS worklist's study dates: today (the default), YYYYMMDD, or FROM-TO "
                            "(YYYYMMDD-YYYYMMDD; a side may be left open)")
    open_.add_argument("--screenshot", metavar="PNG",
                       help="render the window to this PNG once the exam is shown and analysed, then exit "
                       "(exit status 1 when the exam or the analysis failed)")
    open_.set_defaults(handler="app.cli.workstation:run")

    analyze = sub.add_parser("analyze", parents=[common], help="analyse one exam headless and print the probabilities")
    analyze.add_argument("exam", nargs="*", help=EXAM_HELP)
    analyze.add_argument("--models", nargs="+", help=MODELS_HELP)
    analyze.add_argument("--percent-t", type=float, default=None, help=PERCENT_T_HELP)
    analyze.add_argument("--overlap", type=float, default=None, choices=(0.0, 0.5, 0.75),
                         help="sliding-window models: window overlap 0, 0.5 or 0.75, the strides that tile the "
                              "window (default: the model's, else 0.5); other families have no windows")
    analyze.add_argument("--json", metavar="OUT", type=output_file, help="write the full result as JSON (maps in a sibling .npz)")
    analyze.set_defaults(handler="app.cli.analyze:run")

    verify = sub.add_parser("verify", parents=[common],
                            help="check an installation: run published checkpoints on the reference sample exam and "
                                 "compare with the values their papers' repositories publish")
    verify.add_argument("exam", nargs="*", help="the sample exam of the reference repositories (exam 0: 0_L-CC.png …)")
    verify.add_argument("--models", nargs="+", help="published checkpoints (GMIC sample_model_1.p, GLAM model_sep.ckpt)")
    verify.add_argument("--expected", metavar="JSON",
                        help='values to compare with instead of the published ones: {"L-CC": [benign, malignant], …}')
    verify.add_argument("--digits", type=positive_int, default=4, help="digits the values are given to (default 4)")
    verify.set_defaults(handler="app.cli.verify:run")

    report = sub.add_parser("report", parents=[common],
                            help="annotated reports (PDF, PNG, JSON, DICOM SR and SEG) for one or many exams")
    report.add_argument("exams", nargs="*", metavar="EXAM", help=EXAM_HELP + " (one report per argument)")
    report.add_argument("--cases", help="a case list CSV (case_id, exam, any other columns), as batch reads it")
    report.add_argument("--out", type=output_folder, required=True, help="output folder")
    report.add_argument("--format", default="pdf,png,json",
                        help="comma-separated: pdf, png, json, sr, seg (saliency maps), epdf (the PDF as DICOM "
                        "Encapsulated PDF) (default: pdf,png,json)")
    report.add_argument("--deidentify", action="store_true", help="no patient identifiers in any output")
    report.add_argument("--plain-hybrid", action="store_true",
                        help="the GMIC reader study's plain mean of reader and model instead of the calibrated hybrid")
    report.add_argument("--force", action="store_true", help="write the reports again even where they exist")
    report.add_argument("--models", nargs="+", help=MODELS_HELP)
    report.add_argument("--percent-t", type=float, default=None, help=PERCENT_T_HELP)
    report.add_argument("--page-size", default="A4", choices=["A4", "Letter"], help=PAGE_SIZE_HELP)
    report.add_argument("--reader", help="reader name for the header; the report carries this reader's committed read "
                        "of the exam from the workstation (its marks and amendments after AI too), where there is one")
    report.add_argument("--send", metavar="DEST",
                        help="store the SR, SEG and Encapsulated PDF (epdf) written to a node: dimse://CALLED_AET@HOST:PORT or "
                        "dicomweb+http(s)://HOST:PORT/PREFIX (a failed send keeps the files; rerun to retry)")
    report.set_defaults(handler="app.cli.report:run")

    batch = sub.add_parser("batch", parents=[common],
                           help="a whole archive through the models: resumable, one table of results, local or on Ray",
                           description="Analyse every exam of SOURCE and write its files in DIR/<exam_id>/, the "
                           "table DIR/scores.parquet and DIR/failures.csv. A rerun skips the exams already done.")
    batch.add_argument("source", metavar="SOURCE",
                       help="a case list CSV (case_id, exam, ...), a folder of exam folders, or a text file "
                       "with one exam per line")
    batch.add_argument("--out", type=output_folder, required=True, metavar="DIR", help="output folder")
    batch.add_argument("--models", nargs="+", help=MODELS_HELP)
    batch.add_argument("--format", default="json", help="comma-separated: json, sr, seg, pdf, png, epdf (default json)")
    batch.add_argument("--engine", default="local", choices=["local", "ray"],
                       help="local: this process (default); ray: Ray Data on a local Ray instance or --address")
    batch.add_argument("--address", metavar="RAY_ADDRESS",
                       help="join this Ray cluster (default: RAY_ADDRESS, else a local instance)")
    batch.add_argument("--workers", type=positive_int, help="model actors (default: one per GPU share, else half the CPUs)")
    batch.add_argument("--gpus-per-worker", type=non_negative_number, default=0.0,
                       help="GPUs each model actor reserves (0, the default: CPU actors)")
    batch.add_argument("--allow-missing-views", action="store_true",
                       help="analyse exams that lack a view (by default they are recorded as failed)")
    batch.add_argument("--deidentify", action="store_true", help="no patient identifiers in any output")
    batch.add_argument("--plain-hybrid", action="store_true",
                       help="the GMIC reader study's plain mean of reader and model instead of the calibrated hybrid")
    batch.add_argument("--force", action="store_true", help="analyse every exam again, even those already done")
    batch.add_argument("--percent-t", type=float, default=None, help=PERCENT_T_HELP)
    batch.add_argument("--page-size", default="A4", choices=["A4", "Letter"], help=PAGE_SIZE_HELP)
    batch.set_defaults(handler="app.cli.batch:run")

    serve_common = _shared(suppress=True, ae_title_help=(  # what --ae-title is to the node
        "the AE title this node listens as (senders address their studies to it: their called AE title) and calls "
        "the --send node as (default MAMMOREADER)"))
    serve = sub.add_parser("serve", parents=[serve_common],
                           help="a DICOM AI node: receive studies (Storage SCP), analyse each once, send the results back",
                           description="Listen as --ae-title on --bind:--port for studies from the allowed senders "
                           "only; keep their MG images in DIR, analyse a study when no instance has come for "
                           "--quiet-s seconds (once: a restarted node goes on where it stopped), write the results "
                           "in DIR/results/ and, with --send, store the SR, SEG and Encapsulated PDF on that node. "
                           "SIGTERM stops it cleanly.")
    serve.add_argument("--port", type=port_number, required=True, help="the port to listen on")
    serve.add_argument("--allow", nargs="+", metavar="SENDER_AET[@HOST]",
                       help="who may send: calling AE titles, each bound to a host when @HOST is given "
                       "(nobody else is let in)")
    serve.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS",
                       help="the address to listen on (default 127.0.0.1: this machine only; name a LAN address to "
                       "receive from the network)")
    serve.add_argument("--out", type=output_folder, required=True, metavar="DIR", help="where received studies and results are kept")
    serve.add_argument("--models", nargs="+", help=MODELS_HELP)
    serve.add_argument("--send", metavar="NODE",
                       help="store each study's SR, SEG and Encapsulated PDF on this node: dimse://CALLED_AET@HOST:PORT "
                       "or dicomweb+http(s)://HOST:PORT/PREFIX (a node that is down is tried again later)")
    serve.add_argument("--format", default="json,pdf,sr,seg,epdf",
                       help="comma-separated report formats (default json,pdf,sr,seg,epdf)")
    serve.add_argument("--quiet-s", type=float, default=30.0,
                       help="a study is analysed when no instance has come for this many seconds (default 30)")
    serve.add_argument("--max-instance-mb", type=float, default=512.0,
                       help="the largest instance kept, in MB (default 512; larger ones are refused with 0xA700)")
    serve.add_argument("--quota-gb", type=float, default=20.0,
                       help="what all received studies may take, in GB (default 20; then 0xA700)")
    serve.add_argument("--keep-hours", type=non_negative_number, default=24.0,
                       help="the received images of a study analysed (and sent) this many hours ago are removed, its "
                       "results kept (default 24; 0: at once); a view that comes later is analysed with the others "
                       "only while they are kept (later, with the whole study sent again)")
    serve.add_argument("--retry-s", type=float, default=60.0,
                       help="how often results are sent again to a node that was down, and a study whose results "
                       "could not be written (a full or read-only disk) is analysed again (default 60)")
    serve.add_argument("--allow-missing-views", action="store_true",
                       help="analyse studies that lack a view (by default they are recorded as failed)")
    serve.add_argument("--percent-t", type=float, default=None, help=PERCENT_T_HELP)
    serve.add_argument("--page-size", default="A4", choices=["A4", "Letter"], help=PAGE_SIZE_HELP)
    serve.set_defaults(handler="app.cli.serve:run")

    validate = sub.add_parser("validate", parents=[common],
                              help="validate models on the site's archive: ROC, operating points, calibration, "
                                   "subgroups, drift, comparisons",
                              description="Join a batch's scores to the site's outcomes and write OUT/metrics.json, "
                              "CSV tables, PNG figures and a validation report (PDF); a site recalibration is saved "
                              "beside each model given as ID=CHECKPOINT (else in OUT).")
    validate.add_argument("--scores", required=True, metavar="PARQUET", help="a batch's DIR/scores.parquet")
    validate.add_argument("--outcomes", required=True, nargs="+", metavar="CSV",
                          help="the outcomes: a CSV of exam_id, breast (L/R), cancer (0/1)[, density, manufacturer, "
                          "age, study_date], or CBIS-DDSM's mass/calc_case_description CSVs, or folders of them")
    validate.add_argument("--out", type=output_folder, required=True, metavar="OUT", help="output folder")
    validate.add_argument("--models", nargs="+", metavar="ID[=CHECKPOINT]",
                          help="the model ids of the table to validate (default: all); ID=CHECKPOINT also reads its "
                          "declared operating points and saves the site calibration beside it")
    validate.add_argument("--operating-point", nargs="+", metavar="POINT",
                          help="spec=0.9, sens=0.85 or threshold=0.3 (several allowed; default spec=0.9)")
    validate.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                          help="the paired DeLong test of models A and B on the same breasts (difference A - B); "
                          "may be repeated")
    validate.add_argument("--batch-source", metavar="SOURCE",
                          help="for a de-identified batch (batch --deidentify): the archive folder or case list it ran "
                          "on; the outcomes' exam IDs (the batch's own) are matched to the table's pseudonyms with "
                          "this computer's key, and no file links them")
    validate.add_argument("--site", default="site", help="the site's name, stored with its calibration")
    validate.add_argument("--bins", type=positive_int, default=10, help="bins of the reliability diagram and ECE (default 10)")
    validate.add_argument("--no-calibration", action="store_true", help="fit and report; write no calibration file")
    validate.set_defaults(handler="app.cli.validate:run")

    study = sub.add_parser("study", parents=[common],
                           help="reader studies: create, scores, read, status, results, froc, export, import")
    study.add_argument("--db", help=DB_HELP)
    # --db also after the study command ("study status pilot --db x.sqlite" was "unrecognized arguments")
    study_common = argparse.ArgumentParser(add_help=False, parents=[common])
    study_common.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    study_sub = study.add_subparsers(dest="study_command", required=True, metavar="STUDY_COMMAND")
    create = study_sub.add_parser("create", parents=[study_common], help="create a study from a case list CSV")
    create.add_argument("name")
    create.add_argument("--cases", required=True, help="CSV: case_id, exam, truth_left, truth_right[, notes, training]")
    create.add_argument("--readers", required=True, help="comma-separated reader names")
    create.add_argument("--design", default="sequential", choices=["unaided", "sequential", "concurrent", "crossover"],
                        help="unaided: readers alone; sequential (the default): each case unaided, then with the AI "
                             "shown; concurrent: with the AI from the start; crossover: two sessions, each case read "
                             "once unaided and once with the AI")
    create.add_argument("--scores", metavar="PARQUET",
                        help="take the models' scores from a batch's scores.parquet (case ID = exam ID)")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--washout-days", type=int, default=None,
                        help="crossover: days between a reader's last session-1 reading and session 2 (default 28)")
    create.add_argument("--lesions", metavar="CSV",
                        help="a localisation (FROC) study: where each case's lesions are (case_id, breast, view, "
                             "mask or row/col/radius_mm, weight, or seg: a DICOM Segmentation of the case's exam; "
                             "see app/study/lesions.py)")
    create.add_argument("--distance-mm", type=float, default=None,
                        help="with --lesions: a mark within this distance of a lesion's centre localises it "
                             "(default 10 mm; a mark inside the lesion's outline always does)")
    scores = study_sub.add_parser("scores", parents=[study_common],
                                  help="compute the models' scores for every case (resumable, cached)")
    scores.add_argument("name")
    scores.add_argument("--models", nargs="+", help=MODELS_HELP)
    read = study_sub.add_parser("read", parents=[study_common], help="open the reading screen for a reader")
    read.add_argument("name")
    read.add_argument("--reader", required=True)
    results = study_sub.add_parser("results", parents=[study_common],
                                   help="AUCs, ORH comparisons, BI-RADS recall, telemetry; optional CSV export")
    results.add_argument("name")
    results.add_argument("--level", default="breast", choices=["breast", "exam"])
    results.add_argument("--method", default="jackknife", choices=["jackknife", "delong"])
    results.add_argument("--readers", type=lambda text: [n.strip() for n in text.split(",") if n.strip()],
                         metavar="A,B", help="only these readers (interim results without one who is part-way: the "
                         "ORH comparisons need every reader to have read every case)")
    results.add_argument("--out", type=output_folder, help="folder for CSV, iMRMC and JSON files")
    results.add_argument("--window", action="store_true", help="open the results screen (ROC curves, tables)")
    results.add_argument("--screenshot", metavar="PNG", help="render the results screen to a PNG and exit")
    status = study_sub.add_parser("status", parents=[study_common],
                                  help="each reader's progress (and when a crossover's session 2 opens)")
    status.add_argument("name")
    export = study_sub.add_parser("export", parents=[study_common],
                                  help="the whole study as JSON; a localisation study's marks for RJafroc")
    export.add_argument("name")
    export.add_argument("out", nargs="?", help="the whole study as JSON (for 'study import')")
    export.add_argument("--froc", metavar="JSON",
                        help="the scored marks in the localisation JSON form ('study froc --data' re-runs it)")
    export.add_argument("--rjafroc", metavar="XLSX",
                        help="the scored marks as an RJafroc data file (Truth, NL and LL sheets)")
    export.add_argument("--truth", metavar="JSON", help="lesion locations for a study created without --lesions")
    import_ = study_sub.add_parser("import", parents=[study_common], help="import a study exported as JSON")
    import_.add_argument("file")
    import_.add_argument("--name", help="a new name (default: the exported one)")
    froc = study_sub.add_parser("froc", parents=[study_common],
                                help="localisation (FROC) analysis: wAFROC/AFROC/HrAuc with DBM or OR tests")
    froc.add_argument("name", nargs="?", help="a stored study (or give --data)")
    froc.add_argument("--data", metavar="JSON", help="a study in the localisation JSON form (RJafroc datasets, exports)")
    froc.add_argument("--fom", default="wAFROC", choices=["wAFROC", "AFROC", "wAFROC1", "AFROC1", "HrAuc", "Wilcoxon"])
    froc.add_argument("--method", default="DBM", choices=["DBM", "OR"])
    froc.add_argument("--covariance", default="jackknife", choices=["jackknife", "delong"],
                      help="OR error covariances; DeLong only for the ROC figures of merit HrAuc and Wilcoxon")
    froc.add_argument("--alpha", type=open_fraction, default=0.05, help="significance level (default 0.05)")
    froc.add_argument("--truth", metavar="JSON",
                      help="a stored study created without --lesions: the lesions' locations and the scoring rule "
                           "(see app/study/froc_study.py)")
    froc.add_argument("--out", type=output_folder, required=True, help="folder for results.json, CSVs and the FROC / wAFROC curves")
    study.set_defaults(handler="app.cli.study:run")

    train = sub.add_parser("train", parents=[common],
                           help="train a model (phantoms or a CSV of images); torchrun for several GPUs (GMIC)")
    train.add_argument("--family", default="gmic", choices=list(BUILT_IN),
                       help="which model to train (default: gmic; GLAM is not trained here)")
    train.add_argument("--config", help="JSON with the family's training options (the options class of its "
                       "inference/families/<family>/training.py, e.g. TrainConfig for GMIC)")
    train.add_argument("--out", type=output_folder, help="output folder (checkpoints, model.pt, model.pt.json)")
    train.add_argument("--data", help="'phantom', or a CSV: GMIC path, view, benign, malignant (glimpsenet: plus mask[, label]); sliding-window "
                       "and attention-cnn path, view, label[, mask]; attention-cnn also a MIAS folder (Info.txt)")
    train.add_argument("--folds", type=positive_int, help="glimpsenet: k-fold cross-validation (the poster's 10); accuracy "
                       "per fold and the mean")
    train.add_argument("--encoder-weights", metavar="PT",
                       help="ImageNet weights of the pre-trained part, a torchvision state dict: attention-cnn's "
                       "vgg16 encoder, glimpsenet's inception_v3 glimpse classifier; maskrcnn: a whole torchvision Mask R-CNN "
                       "checkpoint (COCO-pretrained) to start from")
    train.add_argument("--val-data", help="sliding-window: a CSV of held-out images for validation and the "
                       "temperature (default: the last 20 %% of --data)")
    train.add_argument("--epochs", type=positive_int,
                       help="the total number of epochs (a resumed run trains up to it; default: the configuration's)")
    train.add_argument("--seed", type=int, help="the random seed (default: the configuration's)")
    train.set_defaults(handler="app.cli.train:run")

    calibrate = sub.add_parser("calibrate", parents=[common],
                               help="fit a window classifier's temperature on held-out data; reliability diagram")
    calibrate.add_argument("--model", required=True, help="the checkpoint (its model.pt.json gets the calibration)")
    calibrate.add_argument("--data", required=True, help="'phantom' or a CSV of path, view, label[, mask]")
    calibrate.add_argument("--bins", type=positive_int, default=15, help="confidence bins of ECE and the diagram (default 15)")
    calibrate.add_argument("--diagram", metavar="PNG",
                           help="where to write the reliability diagram (default: beside the model; a dry run's "
                                "as MODEL.reliability.dry-run.png)")
    calibrate.add_argument("--phantoms", type=positive_int, help="with --data phantom: how many views (default 48)")
    calibrate.add_argument("--dry-run", action="store_true", help="fit and report; leave the model's metadata as it is")
    calibrate.set_defaults(handler="app.cli.calibrate:run")

    evaluate = sub.add_parser("evaluate", parents=[common],
                              help="a model on labelled images: window classifiers per-image and per-window AUC, "
                                   "accuracy, ECE before and after calibration; the attention CNN the classification "
                                   "report (precision, recall, F1, support; micro, macro, weighted) and the confusion "
                                   "matrix")
    evaluate.add_argument("--model", required=True, help="the checkpoint to evaluate")
    evaluate.add_argument("--data", required=True,
                          help="'phantom', a CSV of path, view, label[, mask], or (attention-cnn) a MIAS folder")
    evaluate.add_argument("--split", choices=["all", "test"], default="all",
                          help="attention CNN and GlimpseNet: every image of --data, or only the held-out part of "
                               "the model's own training split (its seed and fraction, from its metadata)")
    evaluate.add_argument("--out", type=output_folder, help="a folder for the tables (CSV) and, for the attention CNN, "
                                        "confusion_matrix.png")
    evaluate.add_argument("--bins", type=positive_int, default=15, help="confidence bins of ECE (default 15)")
    evaluate.add_argument("--phantoms", type=positive_int, help="with --data phantom: how many views (default 48)")
    evaluate.add_argument("--lesion-hit", choices=["centre", "iou"], default="centre",
                          help="detectors (FROC): a lesion is found when a detection's box centre falls inside its "
                               "mask (centre, default) or when they overlap with IoU >= --min-iou (iou)")
    evaluate.add_argument("--min-iou", type=overlap_fraction, default=None,  # None: not given (see evaluate.py)
                          help="detectors: the IoU of --lesion-hit iou (default 0.1)")
    evaluate.set_defaults(handler="app.cli.evaluate:run")
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _takes_value(parsers: Sequence[argparse.ArgumentParser], token: str) -> int:
    """How many values follow ``token`` if it is an option of one of ``parsers`` (0 for flags and unknowns,
    -1 for "every value up to the next option"; ``--x=value`` carries its own)."""
    if "=" in token:
        return 0
    for parser in parsers:
        action = parser._option_string_actions.get(token)  # noqa: SLF001
        if action is not None:
            if action.nargs in ("+", "*"):
                return -1
            return 0 if action.nargs == 0 else 1
    return 0


def with_default_command(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with ``open`` put first when it names no subcommand (the workstation is the default)."""
    argv = list(argv)
    commands = _subcommands(parser)
    known = [parser, commands["open"]]
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if token in ("-h", "--help", "--version"):
            return argv  # the top-level help lists every command
        if token.startswith("-") and token != "-":
            values = _takes_value(known, token)
            index += 1
            if values < 0:  # as argparse does: everything up to the next option belongs to it
                while index < len(argv) and not argv[index].startswith("-"):
                    index += 1
            else:
                index += values
            continue
        if token in commands:
            return argv
        _refuse_a_mistyped_command(token, commands, parser)
        return ["open", *argv]
    return ["open", *argv]


def _refuse_a_mistyped_command(token: str, commands: dict[str, argparse.ArgumentParser],
                               parser: argparse.ArgumentParser) -> None:
    """A bare word that is neither a command nor anything on disk is a mistyped command (``analyse``), not an
    exam to open in the workstation: said at once, with the nearest command."""
    import difflib  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    if "/" in token or "\\" in token or "." in token or "://" in token or Path(token).exists():
        return
    near = difflib.get_close_matches(token, [c for c in commands if c != "open"], n=1)
    parser.error(f"{token!r} is neither a command ({', '.join(c for c in commands if c != 'open')}) nor an exam (no "
                 f"such file or folder)" + (f"; did you mean {near[0]}?" if near else ""))


CHECKPOINT_SUFFIXES = (".p", ".pt", ".pth", ".ckpt")


def _is_model_source(path: str) -> bool:
    """A checkpoint file, or a folder holding one (an exam folder holds images)."""
    from pathlib import Path  # noqa: PLC0415

    candidate = Path(path)
    if candidate.is_dir():
        return any(p.suffix in CHECKPOINT_SUFFIXES for p in candidate.iterdir())
    return candidate.suffix in CHECKPOINT_SUFFIXES


def _reclaim_exam(args: argparse.Namespace) -> None:
    """``--models M EXAM``: argparse gives EXAM to ``--models`` (it takes several values); an entry at its end
    that is no checkpoint is the exam."""
    models = getattr(args, "models", None)
    if not models or getattr(args, "exam", "missing") not in (None, []):
        return
    reclaimed = []
    while len(models) > 1 and not _is_model_source(models[-1]):
        reclaimed.insert(0, models.pop())
    if reclaimed:
        args.exam = reclaimed if isinstance(args.exam, list) else reclaimed[0]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(with_default_command(argv, parser))
    _reclaim_exam(args)
    if args.command in ("analyze", "verify") and not args.exam:
        _subcommands(parser)[args.command].error("give the exam (a folder, a manifest or image files)")
    return args
