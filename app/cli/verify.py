"""``python main.py verify --models M EXAM0``: does this installation reproduce the published numbers?

Each published checkpoint that Mammo Reader recognises by content and whose repository publishes values for
its sample exam (``inference/families/published.json``: GMIC ``sample_model_1.p``, GLAM ``model_sep.ckpt``)
is run on that exam, view by view, and compared with those values to the digits they are printed with: agree
when |ours - published| is at most half a unit of the last digit. ``--expected`` gives other values (the
project's own tests use the seeded oracle weights and their golden values).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.common import ProgressBar, load_exam_argument
from inference.errors import MammoError
from inference.numbers import finite_number


def compare(ours: dict[str, float], expected: list[float], classes: tuple[str, ...], digits: int) -> bool:
    tolerance = 0.5 * 10 ** -digits + 1e-9
    return all(abs(ours[c] - e) <= tolerance for c, e in zip(classes, expected, strict=True))


def check_expected(values: object, path: str) -> None:
    """``--expected``: {view: [a finite probability per class, ...]}; anything else is said, naming the file."""
    if not isinstance(values, dict) or not values:
        raise MammoError('the expected values must be a JSON object of views, e.g. {"L-CC": [0.1, 0.2]}', path)
    for view, numbers in values.items():
        if not isinstance(numbers, list) or not numbers or not all(
                finite_number(v) and 0 <= v <= 1
                for v in numbers):
            raise MammoError(f"{view}: the expected values must be a list of probabilities in [0, 1], not "
                             f"{json.dumps(numbers)[:40]}", path)


def run(args: argparse.Namespace) -> int:
    from inference.pipeline import analyze_exam  # noqa: PLC0415
    from inference.weights import load_model  # noqa: PLC0415

    if not args.models:
        raise MammoError("give the checkpoints to verify with --models")
    expected_override = None
    if args.expected:
        try:
            expected_override = json.loads(Path(args.expected).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise MammoError(f"the expected values cannot be read ({error})", args.expected) from error
        check_expected(expected_override, args.expected)
    exam = load_exam_argument(args.exam, args)
    failures = 0
    for source in args.models:
        loaded = load_model(source)
        identity = loaded.identity
        reference = None
        if expected_override is not None:
            reference = {"source": args.expected, "digits": args.digits, "views": expected_override}
        else:
            from inference.families.registry import published_checkpoint  # noqa: PLC0415

            reference = (published_checkpoint(identity.git_blob_sha1) or {}).get("reference")
        if reference is None:
            raise MammoError("this checkpoint is not one whose published values Mammo Reader knows (recognised by "
                             "content: GMIC sample_model_1.p, GLAM model_sep.ckpt); give --expected to compare with "
                             "other values", source)
        bar = ProgressBar()
        result = analyze_exam(exam, loaded, device=args.device or "auto", mode=args.mode or "exact", progress=bar)
        bar.close()
        entry = result.entries[0]
        digits = int(reference.get("digits", args.digits))
        print(f"{identity.label} ({identity.family}) against {reference['source']}:")
        provenance = result.provenance
        print(f"  device: {provenance.device}  mode: {provenance.mode.value} ({provenance.numerics})")
        for view_name, values in reference["views"].items():
            view_result = result.views.get(view_name) if view_name in {v.value for v in result.views} else None
            if view_result is None:
                print(f"  {view_name:<6} MISSING: the exam has no such view")
                failures += 1
                continue
            if view_result.result(entry.id) is None:
                print(f"  {view_name:<6} NO RESULT: {view_result.no_result.get(entry.id, '')}")
                failures += 1
                continue
            ours = view_result.entries[entry.id].probabilities
            if len(values) != len(entry.classes):
                raise MammoError(f"{view_name}: {len(values)} expected value(s) for the model's {len(entry.classes)} "
                                 f"classes ({', '.join(entry.classes)})", reference["source"])
            agree = compare(ours, values, entry.classes, digits)
            failures += not agree
            said = "published" if expected_override is None else "expected"
            shown = "  ".join(f"{c} {ours[c]:.{digits}f} ({said} {v:.{digits}f})"
                              for c, v in zip(entry.classes, values, strict=True))
            print(f"  {view_name:<6} {'agree   ' if agree else 'DISAGREE'}  {shown}")
    print("all values agree" if not failures else f"{failures} view(s) disagree", file=sys.stderr)
    if failures and (args.mode or "exact") == "fast":  # a researcher's test: said nothing of the mode
        print("the fast mode's arithmetic is not the reference's (it stays within 0.01 of the exact mode): verify "
              "an installation in the exact mode (the default)", file=sys.stderr)
    return 0 if not failures else 1
