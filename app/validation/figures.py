"""The validation report's figures as PNG (OpenCV drawing, as the project's reliability diagram: no plotting
library): ROC curves, the reliability diagram before and after the site recalibration, the subgroup forest
plot and the drift plot."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from app.report.figures import encode_png
from app.figure_text import put_text
from app.study.analysis import roc_points
from app.validation.calibration import reliability
from inference.evaluation.reliability_diagram import reliability_panel
from inference.evaluation.text_lines import wrap

WHITE, INK, GRID = (255, 255, 255), (30, 30, 30), (225, 225, 225)
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR; ten colours: seven MIAS classes' curves were drawn with six, two of them alike
PALETTE = [(180, 90, 30), (40, 120, 230), (60, 160, 60), (160, 60, 160), (40, 40, 200), (130, 130, 30),
           (0, 0, 0), (180, 180, 60), (200, 130, 230), (90, 60, 20)]


@functools.cache
def _opencv_draws(letter: str) -> bool:
    """Whether OpenCV's font has ``letter`` (it has Latin, Cyrillic and Hebrew; Greek and CJK are drawn "?")."""
    def drawn(text: str) -> np.ndarray:
        canvas = np.zeros((40, 40), np.uint8)
        cv2.putText(canvas, text, (5, 30), FONT, 1.0, 255, 1)
        return canvas

    return letter == "?" or not np.array_equal(drawn(letter), drawn("?"))


def _text(image: np.ndarray, text: str, at: tuple[int, int], scale: float = 0.45, colour=INK) -> None:
    """``text`` from its baseline at ``at``: OpenCV's font where it has every letter, else DejaVu Sans (and a
    system CJK font) at about the same size: a subgroup, site or device named in Greek or Japanese was "???"."""
    if text.isascii() or all(_opencv_draws(letter) for letter in set(text)):
        cv2.putText(image, text, at, FONT, scale, colour, 1, cv2.LINE_AA)
    else:
        put_text(image, text, at, max(8, round(30 * scale)), colour)


class _Axes:
    """A plot area of ``size`` pixels in a white canvas, mapping data (x, y) to pixels."""

    def __init__(self, size: tuple[int, int], margin: tuple[int, int, int, int], x_range: tuple[float, float],
                 y_range: tuple[float, float]) -> None:
        width, height = size
        self.left, self.top, self.right, self.bottom = margin
        self.image = np.full((height, width, 3), 255, np.uint8)
        self.w, self.h = width - self.left - self.right, height - self.top - self.bottom
        self.x_range, self.y_range = x_range, y_range

    def point(self, x: float, y: float) -> tuple[int, int]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return (int(round(self.left + (x - x0) / (x1 - x0) * self.w)),
                int(round(self.top + self.h - (y - y0) / (y1 - y0) * self.h)))

    def frame(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str,
              title: str, x_format: Callable[[float], str] = lambda v: f"{v:.1f}") -> None:
        for tick in x_ticks:
            cv2.line(self.image, self.point(tick, self.y_range[0]), self.point(tick, self.y_range[1]), GRID, 1)
            x, y = self.point(tick, self.y_range[0])
            _text(self.image, x_format(tick), (x - 12, y + 18), 0.4)
        for tick in y_ticks:
            cv2.line(self.image, self.point(self.x_range[0], tick), self.point(self.x_range[1], tick), GRID, 1)
            x, y = self.point(self.x_range[0], tick)
            _text(self.image, f"{tick:.1f}", (x - 34, y + 4), 0.4)
        cv2.rectangle(self.image, (self.left, self.top), (self.left + self.w, self.top + self.h), INK, 1)
        _text(self.image, x_label, (self.left + self.w // 2 - 60, self.top + self.h + 40))
        _text(self.image, y_label, (6, self.top - 10))
        _text(self.image, title, (self.left, 22), 0.55)


# the top margin leaves the y axis's label below the title (they were drawn over each other)
ROC_SIZE, ROC_MARGIN, LEGEND_SCALE, LEGEND_LINE = (620, 656), (60, 56, 20, 160), 0.42, 18


def roc_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> np.ndarray:
    """ROC curves of (name with AUC, scores, truth), one colour each, with the chance diagonal; the legend
    below the axes wraps each name to the image's width (the canvas grows when the legend needs it)."""
    width, height = ROC_SIZE
    left, top, right, bottom = ROC_MARGIN
    text_x = left + 32
    legends = [wrap(name, width - text_x - 10, LEGEND_SCALE) for name, _, _ in curves]
    needed = 62 + LEGEND_LINE * sum(len(lines) for lines in legends) + 4 * len(legends)
    axes = _Axes((width, height + max(0, needed - bottom)), (left, top, right, max(bottom, needed)), (0, 1), (0, 1))
    axes.frame(np.linspace(0, 1, 6), np.linspace(0, 1, 6), "1 - specificity", "sensitivity", "ROC curves")
    cv2.line(axes.image, axes.point(0, 0), axes.point(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    baseline = axes.top + axes.h + 62
    for index, ((_, scores, truth), lines) in enumerate(zip(curves, legends, strict=True)):
        colour = PALETTE[index % len(PALETTE)]
        if (truth == 1).any() and (truth == 0).any():
            fpr, tpr, _ = roc_points(scores, truth)
            points = np.array([axes.point(x, y) for x, y in zip(fpr, tpr, strict=True)], np.int32)
            cv2.polylines(axes.image, [points], False, colour, 2, cv2.LINE_AA)
        cv2.line(axes.image, (axes.left, baseline - 4), (axes.left + 24, baseline - 4), colour, 3)
        for line in lines:
            _text(axes.image, line, (text_x, baseline), LEGEND_SCALE)
            baseline += LEGEND_LINE
        baseline += 4
    return axes.image


def reliability_figure(scores: np.ndarray, truth: np.ndarray, after: np.ndarray | None, bins: int,
                       ece_before: float, ece_after: float | None, method: str | None) -> np.ndarray:
    """The site's reliability diagram: model P(malignant) against the observed cancer rate, before and (when
    fitted) after the site recalibration."""
    panels = [reliability_panel(reliability(scores, truth, bins), "as the model gives it",
                                [f"ECE {ece_before:.4f}", f"{len(scores)} breasts, {bins} bins"],
                                "predicted P(malignant)", "observed cancer rate")]
    if after is not None:
        panels.append(reliability_panel(reliability(after, truth, bins), f"recalibrated here ({method})",
                                        [f"ECE {ece_after:.4f}", "fitted and shown on the same data"],
                                        "predicted P(malignant)", "observed cancer rate"))
    return np.concatenate(panels, axis=1)


def forest_figure(rows: Sequence[dict], title: str) -> np.ndarray:
    """One line per subgroup: its AUC and 95 % CI, or "too few to say"."""
    height = 70 + 24 * len(rows) + 50
    # from 0.3, or lower where a subgroup's AUC or CI is: the worst subgroup, the one that matters most, was drawn
    # over its label at 0.05, its CI bar running back from 0.3
    drawn = [v for row in rows if row.get("auc") is not None for v in (row["auc"], *(row.get("auc_ci") or ()))]
    start = min(0.3, math.floor(10 * min(drawn, default=0.3)) / 10)
    axes = _Axes((900, height), (330, 50, 40, 50), (start, 1.0), (0, max(len(rows), 1)))
    image = axes.image
    for tick in np.linspace(start, 1.0, round(10 * (1.0 - start)) + 1):
        cv2.line(image, axes.point(tick, 0), axes.point(tick, len(rows)), GRID, 1)
        x, y = axes.point(tick, 0)
        _text(image, f"{tick:.1f}", (x - 12, y + 18), 0.4)
    if any(row.get("auc") is not None for row in rows):  # chance, for AUCs; through notes alone it cut their words
        cv2.line(image, axes.point(0.5, 0), axes.point(0.5, len(rows)), (150, 150, 150), 1)
    _text(image, title, (10, 22), 0.55)
    _text(image, "(cancers / breasts)", (10, 42), 0.4, (90, 90, 90))  # what the counts after each label are
    _text(image, "AUC (95 % CI)", (axes.left + axes.w // 2 - 50, height - 8))
    for index, row in enumerate(rows):
        y = axes.point(start, len(rows) - index - 0.5)[1]
        label = f"{row['variable']}: {row['value']}  ({row['n_positive']}/{row['n']})"
        _text(image, label[:44], (8, y + 5), 0.42)
        if row.get("auc") is None:
            _noted(image, row.get("note") or "no AUC", (axes.left + 8, y + 5))
            continue
        low, high = row["auc_ci"] if row.get("auc_ci") else (row["auc"], row["auc"])
        cv2.line(image, (axes.point(low, 0)[0], y), (axes.point(high, 0)[0], y), INK, 2, cv2.LINE_AA)
        cv2.rectangle(image, (axes.point(row["auc"], 0)[0] - 4, y - 4), (axes.point(row["auc"], 0)[0] + 4, y + 4),
                      PALETTE[0], -1)
        if not row.get("auc_ci"):  # a bare point claimed a certainty: its table's note, beside it
            _noted(image, "no CI" + (f": {row['note'].removeprefix('no CI: ')}" if row.get("note") else ""),
                   (axes.left + 8, y + 5))
    return image


def _noted(image: np.ndarray, text: str, at: tuple[int, int]) -> None:
    """A grey note on a white ground, so that no grid or reference line runs through it."""
    (width, height), base = cv2.getTextSize(text, FONT, 0.4, 1)
    width = min(width, image.shape[1] - at[0] - 4)
    cv2.rectangle(image, (at[0] - 2, at[1] - height - 2), (at[0] + width + 2, at[1] + base), WHITE, -1)
    _text(image, text, at, 0.4, (90, 90, 90))


def _months_apart(first: str, second: str) -> int:
    """Months from ``first`` to ``second`` ("2025-01"); 1 when either is no month."""
    try:
        (y1, m1), (y2, m2) = (map(int, first.split("-")[:2]), map(int, second.split("-")[:2]))
    except ValueError:
        return 1
    return (y2 - y1) * 12 + (m2 - m1)


def drift_figure(rows: Sequence[dict], title: str) -> np.ndarray:
    """Per month: the AUC with its CI (dark), the median score with its interquartile range (blue) and, where the
    rows have one, the share of breasts called at the operating point with its CI (orange)."""
    dated = [r for r in rows if r["month"] != "no date"]
    axes = _Axes((900, 460), (60, 50, 30, 110), (-0.5, max(len(dated), 1) - 0.5), (0, 1))
    axes.frame([], np.linspace(0, 1, 6), "month of study date", "AUC / score / share", title)
    for index, row in enumerate(dated):
        x = axes.point(index, 0)[0]
        _text(axes.image, row["month"], (x - 26, axes.top + axes.h + 18), 0.38)
        q25, q75 = axes.point(index, row["score_q25"])[1], axes.point(index, row["score_q75"])[1]
        cv2.rectangle(axes.image, (x + 4, q75), (x + 12, q25), PALETTE[0], -1)
        median = (x + 8, axes.point(index, row["score_median"])[1])  # ringed in blue: seen where the range is none
        cv2.circle(axes.image, median, 5, PALETTE[0], -1)
        cv2.circle(axes.image, median, 2, WHITE, -1)
        if row.get("auc") is not None:
            low, high = row["auc_ci"] if row.get("auc_ci") else (row["auc"], row["auc"])
            cv2.line(axes.image, (x - 6, axes.point(index, low)[1]), (x - 6, axes.point(index, high)[1]), INK, 2)
            cv2.circle(axes.image, (x - 6, axes.point(index, row["auc"])[1]), 4, INK, -1)
        recall = row.get("recall_rate")
        if recall and recall["value"] is not None:
            low, high = recall["ci"]
            cv2.line(axes.image, (x + 20, axes.point(index, low)[1]), (x + 20, axes.point(index, high)[1]),
                     PALETTE[1], 2)
            y = axes.point(index, recall["value"])[1]
            cv2.rectangle(axes.image, (x + 16, y - 4), (x + 24, y + 4), PALETTE[1], -1)
    for index in range(1, len(dated)):  # months are drawn side by side: a gap of months between two is marked
        if _months_apart(dated[index - 1]["month"], dated[index]["month"]) > 1:
            x = (axes.point(index - 1, 0)[0] + axes.point(index, 0)[0]) // 2
            for y in range(axes.top, axes.top + axes.h, 8):
                cv2.line(axes.image, (x, y), (x, y + 3), (150, 150, 150), 1)
    point = next((r for r in rows if r.get("recall_rate")), None)
    _text(axes.image, "black: AUC with 95 % CI (months with fewer than 10 cancers have none); "
          "blue: median score and interquartile range", (10, axes.top + axes.h + 66), 0.4)  # below the x label
    undated = sum(int(r["n"]) for r in rows if r["month"] == "no date")
    _text(axes.image, (f"orange: share of breasts called at {point['operating_point']} (95 % CI); " if point else "")
          + "dotted line: months without data between"
          + (f"; {undated} breast(s) without a study date are not drawn" if undated else ""),
          (10, axes.top + axes.h + 88), 0.4)
    if not dated:
        _text(axes.image, "no study dates in the outcomes", (axes.left + 20, axes.top + 40), 0.5)
    return axes.image


FROC_MAX_FP = 8.0  # the FROC figure's axis ends at 8 false positives per image


def froc_steps(fp_per_image: np.ndarray, sensitivity: np.ndarray) -> tuple[list[float], list[float]]:
    """The FROC figure's line: (log2 of false positives per image, sensitivity) of a step curve cut at the
    axis's end (``curve_within``), points below its start on its left edge; empty without lesions."""
    from inference.evaluation.froc import curve_within  # noqa: PLC0415

    fp, sens = curve_within(np.asarray(fp_per_image, float), np.asarray(sensitivity, float), FROC_MAX_FP)
    fp = np.log2(np.clip(fp, 2.0 ** -3, FROC_MAX_FP))
    if not len(fp):
        return [], []
    xs, ys = [float(fp[0])], [float(sens[0])]
    for x, y in zip(fp[1:], sens[1:], strict=True):  # steps: right at the old sensitivity, then up
        xs += [float(x), float(x)]
        ys += [ys[-1], float(y)]
    return xs, ys


FROC_SIZE, FROC_MARGIN = (620, 616), (60, 56, 20, 120)  # as the ROC's: the y axis's label below the title


def froc_figure(fp_per_image: np.ndarray, sensitivity: np.ndarray, title: str, notes: Sequence[str] = ()) -> np.ndarray:
    """A detector's FROC curve: sensitivity against mean false positives per image on a log2 axis from 1/8 to
    8, as a step curve cut at 8 (the sensitivity held there; points beyond were drawn on the edge, as if reached
    at 8) and with points below 1/8 on the left edge; ``notes`` below (the hit rule, the CPM …)."""
    axes = _Axes(FROC_SIZE, FROC_MARGIN, (-3.0, 3.0), (0, 1))
    axes.frame(np.arange(-3, 4), np.linspace(0, 1, 6), "mean false positives per image", "sensitivity", title[:70],
               x_format=lambda v: f"{2.0 ** v:g}")
    xs, ys = froc_steps(fp_per_image, sensitivity)
    if xs:
        points = np.array([axes.point(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
        cv2.polylines(axes.image, [points], False, PALETTE[0], 2, cv2.LINE_AA)
    for index, note in enumerate(notes):
        _text(axes.image, note[:90], (10, axes.top + axes.h + 62 + 20 * index), 0.42)
    return axes.image


def png(image: np.ndarray) -> bytes:
    return encode_png(image)
