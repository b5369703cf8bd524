"""The reader's read (no Qt): one definition for the workstation, reports and studies — the hybrid, how a
read amended after the AI is said, and the check that a read's parts agree before it is committed."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from inference.evaluation.calibration import calibrated_probability, hybrid_calibration

if TYPE_CHECKING:
    from app.study.store import BreastRead
    from inference.results.exam_result import ModelEntry

AMENDED_AFTER_AI = "amended after AI"


def hybrid(reader: float | None, model: float | None) -> float | None:
    """The mean of the reader's and the model's probability of malignancy (the GMIC reader study's hybrid);
    None unless both exist. ``reader`` is the reader's first (pre-AI) read, never an amendment made after
    the model was shown: the hybrid combines two independent opinions."""
    if reader is None or model is None:
        return None
    return (reader + model) / 2.0


PLAIN_MEAN = "hybrid: plain mean of the reader and the model output (the GMIC reader study's)"


def _calibrations(entry: ModelEntry) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """(site calibration, card calibration) of a one-model entry; an ensemble's mean has neither (its members'
    calibrations describe each member's output, not the mean)."""
    if len(entry.members) != 1:
        return None, None
    member = entry.members[0]
    return member.site_calibration, member.calibration


def entry_calibrations(entry: ModelEntry) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """(site calibration, card calibration) that the hybrid of ``entry`` uses; (None, None) for an ensemble."""
    return _calibrations(entry)


def basis_words(site: Mapping[str, Any] | None, card: Mapping[str, Any] | None, plain: bool = False) -> str:
    """:func:`hybrid_basis` from the calibration records themselves (a study keeps them with its scores)."""
    if plain:
        return PLAIN_MEAN
    kind, words = hybrid_calibration(site, card)
    if kind == "none":
        return "hybrid: mean of the reader and the model output, not calibrated as a probability"
    return f"hybrid: mean of the reader and the model {words}"


def model_on_reader_scale(model: float | None, entry: ModelEntry, plain: bool = False) -> float | None:
    """The model's P(malignant) as the hybrid uses it: calibrated (the site's, else the card's) unless
    ``plain`` (the GMIC reader study's hybrid, for reproducing it)."""
    if plain or model is None:
        return model
    return calibrated_probability(model, *_calibrations(entry))


def entry_hybrid(reader: float | None, model: float | None, entry: ModelEntry, plain: bool = False) -> float | None:
    """The hybrid of the reader's pre-AI read and ``entry``'s P(malignant), on one scale (see
    :func:`hybrid_basis`)."""
    return hybrid(reader, model_on_reader_scale(model, entry, plain))


@dataclass(frozen=True)
class BreastModel:
    """One model's part of a breast's reader | model | hybrid row: its P(malignant) of the breast (None without a
    result there), which views it came from, and the hybrid with the reader's pre-AI read."""

    entry: ModelEntry
    model: float | None
    one_view_note: str  # "(MLO only)" when one view counted, else ""
    views: tuple
    hybrid: float | None


def breast_models(result, side: str, reader: float | None, plain: bool = False,
                  every_entry: bool = False) -> list[BreastModel]:
    """The reader | model | hybrid cells of breast ``side`` ("R" / "L"), one per model with a malignancy rule
    (``every_entry``: every model, findings-only ones with no score), computed once for the score panel, the
    PDF and the JSON report."""
    from inference.intake.views import Laterality  # noqa: PLC0415

    if result is None:
        return []
    breast = result.breasts.get(Laterality(side))
    out = []
    for entry in result.entries:
        if not (every_entry or entry.has_malignancy):
            continue
        scores = breast.entries.get(entry.id) if breast is not None else None
        model = scores.malignant if scores is not None else None
        out.append(BreastModel(entry, model, scores.one_view_note if scores is not None else "",
                               tuple(scores.views) if scores is not None else (), entry_hybrid(reader, model, entry, plain)))
    return out


def hybrid_basis(entry: ModelEntry, plain: bool = False) -> str:
    """What the hybrid of ``entry`` is, in words: "hybrid: mean of the reader and the model calibrated on
    <site, date, n>", "... the model calibrated by its model card (...)", "... the model output, not
    calibrated as a probability", or the plain mean."""
    return basis_words(*_calibrations(entry), plain=plain)


def named_hybrid_basis(name: str, basis: str) -> str:
    """One model's hybrid basis beside others', named as its column: "hybrid (gmic): mean of the reader and …"."""
    return f"hybrid ({name}): {basis.removeprefix('hybrid: ')}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _whole_percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _parts(read: BreastRead, other: BreastRead) -> str:
    """The malignancy estimate, then each part that differs between the two reads."""
    parts = [_whole_percent(read.malignant)]
    if read.birads != other.birads:
        parts.append(f"BI-RADS {read.birads or '—'}")
    if read.recommendation != other.recommendation:
        parts.append(read.recommendation or "no recommendation")
    if read.density != other.density:
        parts.append(f"density {read.density or '—'}")
    if read.benign != other.benign:
        parts.append(f"benign {_whole_percent(read.benign)}")
    return ", ".join(parts)


AI_SHOWN = "read with the AI shown"  # a first read committed with the model on screen (blind reading off)


def _amendment_words(first: BreastRead) -> tuple[str, str]:
    """What the two reads are called: "before AI" / "after AI", or "first read (AI shown)" / "amended" when the
    model was on screen for the first read too."""
    return ("first read (AI shown)", "amended") if first.ai_shown else ("before AI", "after AI")


def amendment_text(first: BreastRead) -> str:
    """"before AI 80 % → after AI 30 %" (plus any other part that changed) for a first read that carries an
    amendment; "first read (AI shown) 80 % → amended 30 %" when the model was on screen for the first read too;
    every amendment in turn where there were several ("before AI 80 % → after AI 50 % → 30 %"); "" for one
    without an amendment."""
    if first.amendment is None:
        return ""
    before_words, after_words = _amendment_words(first)
    steps = [*first.earlier_amendments, first.amendment]
    text = f"{before_words} {_parts(first, steps[0])} → {after_words} {_parts(steps[0], first)}"
    return "".join([text, *(f" → {_parts(step, previous)}" for previous, step in zip(steps, steps[1:]))])


def change_text(recorded: BreastRead, now: BreastRead) -> str:
    """"40 % → 60 %" (with any other part that differs: "40 %, BI-RADS 3 → 40 %, BI-RADS 4A")."""
    return f"{_parts(recorded, now)} → {_parts(now, recorded)}"


def amendment_cell(first: BreastRead) -> str:
    """The two estimates of an amended read, one a line ("80 % before AI" / "30 % after AI"): the comparison
    table's reader cell (the whole :func:`amendment_text`, BI-RADS and all, pushed the model and hybrid columns
    out of sight; the line under the form says it whole)."""
    after = first.amendment
    if after is None:
        return ""
    before_words, after_words = _amendment_words(first)
    # the estimate, and what else changed where the estimate did not ("80 %" twice read as no change)
    changed = _whole_percent(after.malignant) if after.malignant != first.malignant else _parts(after, first)
    return f"{_whole_percent(first.malignant)} {before_words}\n{changed} {after_words}"


# the assessment categories ("" none given); 4's subdivisions are optional in the Atlas, so 4 stands too (an
# import of a study read with 4 was refused)
BIRADS_CATEGORIES = ("0", "1", "2", "3", "4", "4A", "4B", "4C", "5", "6")


def birads_problem(value: object) -> str:
    """Why ``value`` is no BI-RADS assessment category as the store keeps it ("" when it is one, or none): one
    message for the reading path and the study import."""
    if value in ("", *BIRADS_CATEGORIES):
        return ""
    return f"BI-RADS {value!r} is no assessment category ({', '.join(BIRADS_CATEGORIES)}, or none)"


# The likelihood of malignancy of each BI-RADS assessment category (ACR BI-RADS Atlas, 5th edition):
# 1 and 2 essentially 0 %, 3 ≤ 2 %, 4 > 2–< 95 % (4A > 2–10 %, 4B > 10–50 %, 4C > 50–< 95 %), 5 ≥ 95 %, 6 known
# cancer.
# A reader's own percentage is an estimate, not a category boundary, so the check flags only a read on the
# other side of the scale, never one a few points outside its category:
LOW_CATEGORIES = ("1", "2", "3", "4A")  # ≤ 10 %: disagrees with a probability of malignancy ≥ HIGH_PROBABILITY
HIGH_CATEGORIES = ("4C", "5", "6")  # > 50 %: disagrees with a probability of malignancy < HIGH_PROBABILITY
HIGH_PROBABILITY = 0.50
MIDDLE_CATEGORIES = ("4", "4B")  # disagree only with a BI-RADS 3 probability (≤ 2 %) or a BI-RADS 5 one (≥ 95 %)
PROBABLY_BENIGN = 0.02
HIGHLY_SUGGESTIVE = 0.95
# The management each category calls for: 1 and 2 routine screening, 3 short-interval follow-up, 4-5 tissue
# diagnosis. A biopsy below 2 % or for 1-3, or no work-up (routine screening, follow-up) for 4-6, disagrees.
BIOPSY = "biopsy"
NO_WORK_UP = ("routine screening", "short-interval follow-up")


def read_disagreements(malignant: float | None, birads: str = "", recommendation: str = "") -> list[str]:
    """Why the parts of one breast's read disagree, in plain words (empty: they agree, or too little is
    given to tell). ``malignant`` is the reader's probability of malignancy in [0, 1]; ``birads`` the
    assessment category ("" none, "0" to "6"); ``recommendation`` as the reader form words it."""
    out = []
    p = malignant
    if p is not None:
        shown = _whole_percent(p)
        if birads in LOW_CATEGORIES and p >= HIGH_PROBABILITY:
            out.append(f"{shown} malignant with BI-RADS {birads} (a category of at most 10 %)")
        elif birads in HIGH_CATEGORIES and p < HIGH_PROBABILITY:
            out.append(f"{shown} malignant with BI-RADS {birads} (a category above 50 %)")
        elif birads in MIDDLE_CATEGORIES and (p <= PROBABLY_BENIGN or p >= HIGHLY_SUGGESTIVE):
            span = "10–50 %" if birads == "4B" else "more than 2 % and less than 95 %"
            out.append(f"{shown} malignant with BI-RADS {birads} (a category of {span})")
        if recommendation == BIOPSY and p < PROBABLY_BENIGN:
            out.append(f"a biopsy for {shown} malignant (below the 2 % of BI-RADS 3)")
        if recommendation == "routine screening" and p >= HIGH_PROBABILITY:
            out.append(f"routine screening for {shown} malignant")
    if recommendation == BIOPSY and birads in ("1", "2", "3"):
        out.append(f"a biopsy with BI-RADS {birads}")
    if recommendation in NO_WORK_UP and birads in ("4", "4A", "4B", "4C", "5", "6"):
        out.append(f"{recommendation} with BI-RADS {birads} (a category that calls for a tissue diagnosis or treatment)")
    return out
