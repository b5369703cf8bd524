"""The readers' screening decisions from their BI-RADS categories: recall rate, sensitivity and specificity per
reader and reading modality, as a screening service audits its readers (beside the AUCs of the malignancy
estimates).

A read is a recall when its category asks for more than routine screening: 0 (incomplete: additional imaging),
3, 4 (4A–4C), 5 and 6 — the positive screening assessments of the ACR BI-RADS Atlas' audit (3 included, as the
Breast Cancer Surveillance Consortium counts it; 6, a known cancer, is no screening assessment, and counted as a
call for more than routine screening); 1 and 2 are negative. At exam level an exam is recalled when
either breast is, and counted only where each breast has a category (an exam counted when its one categorised
breast recalled, and not when it did not, raised the recall rate and lowered the specificity). A unit without a
category (the study's form leaves BI-RADS optional) is not counted, and said.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from app.study.analysis import wilson as proportion_interval
from app.study.cases import study_cases
from app.study.store import Store

RECALL_CATEGORIES = ("0", "3", "4", "4A", "4B", "4C", "5", "6")
NEGATIVE_CATEGORIES = ("1", "2")
RECALL_RULE = "BI-RADS 0, 3, 4 (4A–4C), 5 and 6 recall; 1 and 2 do not"
POOLED = "readers pooled"  # the table's readers' reads pooled: its proportions, no interval (the same cases
# read again); it said "all readers" of the readers chosen with --readers


@dataclass(frozen=True)
class RecallRow:
    """One reader's (or all readers', pooled) screening decisions in one reading modality."""

    reader: str
    modality: str
    units: int  # read units with a category
    without_category: int  # read units the reader gave no category (not counted)
    recalled: int
    positives: int  # cancers (malignant units) among the counted
    true_positives: int
    negatives: int
    false_positives: int
    pooled: bool = False  # the readers' reads together (:data:`POOLED`), not a reader's

    @property
    def recall_rate(self) -> float:
        return self.recalled / self.units if self.units else math.nan

    @property
    def sensitivity(self) -> float:
        return self.true_positives / self.positives if self.positives else math.nan

    @property
    def specificity(self) -> float:
        return (self.negatives - self.false_positives) / self.negatives if self.negatives else math.nan

    @property
    def ppv(self) -> float:
        """Cancers among the recalled (PPV1 of the BI-RADS audit)."""
        return self.true_positives / self.recalled if self.recalled else math.nan

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Wilson 95 % score intervals of the four proportions, each over its own denominator (units taken as
        independent: a woman's two breasts at breast level are not, so the intervals there are too narrow); none
        for the pooled row, whose reads are of the same cases again."""
        if self.pooled:
            return dict.fromkeys(("recall_rate", "sensitivity", "specificity", "ppv"), (math.nan, math.nan))
        return {"recall_rate": wilson(self.recalled, self.units),
                "sensitivity": wilson(self.true_positives, self.positives),
                "specificity": wilson(self.negatives - self.false_positives, self.negatives),
                "ppv": wilson(self.true_positives, self.recalled)}


def wilson(successes: int, total: int) -> tuple[float, float]:
    """The Wilson score 95 % interval of a proportion (:func:`app.study.analysis.wilson`), NaNs for no units."""
    return proportion_interval(successes, total) or (math.nan, math.nan)


def recalled(category: str) -> bool | None:
    """True for a recall category, False for 1 or 2, None for no category."""
    if category in RECALL_CATEGORIES:
        return True
    return False if category in NEGATIVE_CATEGORIES else None


def recall_rows(store: Store, study_id: int, level: str = "breast",
                readers: Collection[str] | None = None) -> list[RecallRow]:
    """Each reader's row per modality, then the readers pooled (:data:`POOLED`) where there are several; empty
    when no committed read has a BI-RADS category. Training cases are left out, as in every analysis."""
    cases = study_cases(store, study_id)
    reads: dict[tuple[str, str, str], dict[str, str]] = {}
    for reader, case_id, modality, breast, category in store.read(
            "SELECT reader, case_id, modality, breast, birads FROM study_reads WHERE study_id=?", (study_id,)):
        if case_id in cases and not cases[case_id].training and (readers is None or reader in readers):
            reads.setdefault((reader, modality, case_id), {})[breast] = category
    # (reader, modality) -> [(decision or None, truth)] per unit
    units: dict[tuple[str, str], list[tuple[bool | None, bool]]] = {}
    for (reader, modality, case_id), categories in sorted(reads.items()):
        case = cases[case_id]
        truths = {"L": case.truth_left, "R": case.truth_right}
        present = [b for b in ("L", "R") if truths[b] != "none"]  # an absent breast is no unit
        if any(b not in categories for b in present):
            continue  # a read not committed for both breasts (an older store's half read): not a read
        decisions = [(recalled(categories[b]), truths[b] == "malignant") for b in present]
        if level == "exam":
            calls = [d for d, _ in decisions]
            decisions = [(None if None in calls else any(calls), case.positive)]
        units.setdefault((reader, modality), []).extend(decisions)
    if not any(d is not None for unit_list in units.values() for d, _ in unit_list):
        return []
    modalities = sorted({modality for _, modality in units}, key=_modality_order)
    rows = [_row(reader, modality, units[reader, modality]) for modality in modalities
            for reader in sorted({r for r, m in units if m == modality})]
    for modality in modalities:
        if len({reader for reader, m in units if m == modality}) > 1:  # one reader's modality: their row says it
            pooled = [u for (_, m), found in sorted(units.items()) if m == modality for u in found]
            rows.append(_row(POOLED, modality, pooled, pooled=True))
    return rows


def _modality_order(modality: str) -> tuple[int, str]:
    """Unaided first, then the reads with the AI, as the study is read."""
    order = ("unaided", "aided", "concurrent")
    return (order.index(modality) if modality in order else len(order), modality)


def _row(reader: str, modality: str, found: list[tuple[bool | None, bool]], pooled: bool = False) -> RecallRow:
    counted = [(d, truth) for d, truth in found if d is not None]
    return RecallRow(reader, modality, len(counted), len(found) - len(counted), sum(d for d, _ in counted),
                     sum(1 for _, truth in counted if truth), sum(1 for d, truth in counted if d and truth),
                     sum(1 for _, truth in counted if not truth), sum(1 for d, truth in counted if d and not truth),
                     pooled)


def recall_note(rows: list[RecallRow], level: str) -> str:
    """What the table's counting rests on: the rule, and the reads without a category left out."""
    missing = sum(row.without_category for row in rows if not row.pooled)
    unit = "breast" if level == "breast" else "exam"
    return (RECALL_RULE
            + ("; an exam is recalled when either breast is, and counted where each breast has a category"
               if level == "exam" else "")
            + "; Wilson 95 % intervals"
            + (", units taken as independent (a woman's two breasts are not)" if level == "breast" else "")
            + (f"; {POOLED}: the table's readers' reads together, no interval"
               if any(r.pooled for r in rows) else "")
            + (f"; {missing} read {unit}{'s' if missing != 1 else ''} without a category"
               + (" on a breast" if level == "exam" else "") + " not counted" if missing else ""))


def percent(value: float, interval: tuple[float, float] = (math.nan, math.nan)) -> str:
    """"84 % (62 – 95)", "84 %" without an interval, "—" without units; halves round up (62.5 % is "63 %",
    as 47.5 % is "48 %": Python's rounding to even made one "62 %")."""
    if value != value:
        return "—"
    low, high = interval
    return f"{_whole(value)} %" + (f" ({_whole(low)} – {_whole(high)})" if low == low else "")


def _whole(fraction: float) -> int:
    return math.floor(100 * fraction + 0.5 + 1e-9)  # 0.625 * 100 is 62.49999… in binary


def cells(row: RecallRow) -> dict[str, str]:
    """The row's four measures as the screen and the terminal show them: "count/of percent (CI)"."""
    ci = row.intervals()
    return {"recall rate": f"{row.recalled}/{row.units} {percent(row.recall_rate, ci['recall_rate'])}",
            "sensitivity": f"{row.true_positives}/{row.positives} {percent(row.sensitivity, ci['sensitivity'])}",
            "specificity": f"{row.negatives - row.false_positives}/{row.negatives} "
                           f"{percent(row.specificity, ci['specificity'])}",
            "PPV": f"{row.true_positives}/{row.recalled} {percent(row.ppv, ci['ppv'])}"}


def recall_lines(rows: list[RecallRow]) -> list[str]:
    """Two lines per row for a terminal (one ran to 175 characters): who and modality with the recall rate and
    sensitivity, then specificity and PPV, each "count/of percent (95 % CI)"."""
    who = max([14, *(len(row.reader) for row in rows)])
    modality = max([10, *(len(row.modality) for row in rows)])
    out = []
    for row in rows:
        shown = cells(row)
        out.append(f"{row.reader:<{who}} {row.modality:<{modality}} recall rate {shown['recall rate']}  "
                   f"sensitivity {shown['sensitivity']}")
        out.append(f"{'':<{who + modality + 1}} specificity {shown['specificity']}  PPV {shown['PPV']}"
                   + (f"  ({row.without_category} without a category)" if row.without_category else ""))
    return out
