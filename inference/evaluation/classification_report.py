"""The classification report of a multi-class model, as the MIAS attention paper's Table 1: per class
precision, recall, F1 and support, the micro, macro and weighted averages (scikit-learn's metrics), and the
confusion matrix, as a table and as a picture (OpenCV drawing)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from inference.evaluation.text_lines import wrap
from inference.spreadsheet_cells import text_writer

INK = (30, 30, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX
AVERAGES = ("micro", "macro", "weighted")


@dataclass(frozen=True)
class ClassificationReport:
    classes: tuple[str, ...]  # those in the truth or the predictions, in the model's order
    rows: dict[str, dict[str, float]]  # class or "<average> avg" -> precision, recall, f1, support
    accuracy: float
    confusion: np.ndarray  # (K, K) counts, rows = truth, columns = prediction

    def as_dict(self) -> dict:
        return {"classes": list(self.classes), "rows": self.rows, "accuracy": self.accuracy,
                "confusion": self.confusion.tolist()}

    def text(self) -> str:
        width = max(len(name) for name in self.rows)
        lines = [f"{'':<{width}}  precision  recall  f1-score  support"]
        for name, row in self.rows.items():
            if name == "micro avg":
                lines.append("")
            lines.append(f"{name:<{width}}  {row['precision']:9.2f}  {row['recall']:6.2f}  {row['f1']:8.2f}  "
                         f"{int(row['support']):7d}")
        lines.append(f"{'accuracy':<{width}}  {self.accuracy:9.2f}")
        return "\n".join(lines)

    def csv(self) -> str:
        out = io.StringIO()
        writer = text_writer(out)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for name, row in self.rows.items():
            writer.writerow([name, f"{row['precision']:.6f}", f"{row['recall']:.6f}", f"{row['f1']:.6f}",
                             int(row["support"])])
        writer.writerow(["accuracy", f"{self.accuracy:.6f}", "", "", int(self.confusion.sum())])
        return out.getvalue()

    def confusion_csv(self) -> str:
        out = io.StringIO()
        writer = text_writer(out)
        writer.writerow(["truth \\ prediction", *self.classes])
        for name, counts in zip(self.classes, self.confusion, strict=True):
            writer.writerow([name, *(int(c) for c in counts)])
        return out.getvalue()


def classification_report(truth: Sequence[int], predicted: Sequence[int], classes: Sequence[str]) -> ClassificationReport:
    """Per class and averaged precision, recall and F1 of class indices; a class never predicted has
    precision 0 (scikit-learn's ``zero_division=0``), as the paper's table. As scikit-learn's own report, the
    classes are those in the truth or the predictions: a class absent from both (no support, never predicted)
    would only pull the macro average down by a zero it did not earn."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support  # noqa: PLC0415

    truth, predicted = np.asarray(truth, int), np.asarray(predicted, int)
    if truth.shape != predicted.shape or truth.size == 0:
        raise ValueError("the report needs as many predictions as true labels, and at least one")
    labels = sorted(set(truth.tolist()) | set(predicted.tolist()))
    if labels[0] < 0 or labels[-1] >= len(classes):
        raise ValueError(f"class indices must lie in 0..{len(classes) - 1}")
    classes = [classes[i] for i in labels]
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    rows = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)}
    for average in AVERAGES:
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, labels=labels, average=average, zero_division=0)
        rows[f"{average} avg"] = {"precision": float(p), "recall": float(r), "f1": float(f),
                                  "support": int(support.sum())}
    return ClassificationReport(tuple(classes), rows, float(accuracy_score(truth, predicted)),
                                confusion_matrix(truth, predicted, labels=labels))


def confusion_picture(report: ClassificationReport, title: str = "") -> np.ndarray:
    """(rows, cols, 3) BGR uint8: the confusion matrix, counts in cells shaded by the row's fraction (so a
    rare class reads as clearly as a common one), truth down the side, prediction along the top."""
    k = len(report.classes)
    longest = max(cv2.getTextSize(c, FONT, 0.45, 1)[0][0] for c in report.classes)
    cell, label_width, top = 64, max(180, longest + 24), max(150, longest + 50)
    width = label_width + k * cell + 30
    titles = wrap(title or "confusion matrix", width - 16, 0.55)  # a long model label was cut at the edge
    top += 22 * (len(titles) - 1)
    height = top + k * cell + 70
    image = np.full((height, width, 3), 255, np.uint8)
    totals = report.confusion.sum(axis=1, keepdims=True).clip(min=1)
    fractions = report.confusion / totals
    shades = cv2.applyColorMap((fractions * 255).astype(np.uint8).reshape(k, k, 1), cv2.COLORMAP_VIRIDIS)
    for i in range(k):
        for j in range(k):
            x0, y0 = label_width + j * cell, top + i * cell
            colour = tuple(int(c) for c in shades[i, j])
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), colour, -1)
            cv2.rectangle(image, (x0, y0), (x0 + cell, y0 + cell), (255, 255, 255), 1)
            text = str(int(report.confusion[i, j]))
            ink = (0, 0, 0) if fractions[i, j] > 0.6 else (255, 255, 255)
            size = cv2.getTextSize(text, FONT, 0.55, 1)[0]
            cv2.putText(image, text, (x0 + (cell - size[0]) // 2, y0 + (cell + size[1]) // 2), FONT, 0.55, ink, 1,
                        cv2.LINE_AA)
        cv2.putText(image, report.classes[i], (8, top + i * cell + cell // 2 + 5), FONT, 0.45, INK, 1, cv2.LINE_AA)
    for j, name in enumerate(report.classes):  # prediction names written upwards above the columns
        size = cv2.getTextSize(name, FONT, 0.45, 1)[0]
        strip = np.full((size[1] + 8, size[0] + 4, 3), 255, np.uint8)
        cv2.putText(strip, name, (2, size[1] + 2), FONT, 0.45, INK, 1, cv2.LINE_AA)
        strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
        h, w = strip.shape[:2]
        x0 = label_width + j * cell + (cell - w) // 2
        image[top - 6 - h: top - 6, x0: x0 + w] = strip[-h:]
    for number, line in enumerate(titles):
        cv2.putText(image, line, (8, 22 + 22 * number), FONT, 0.55, INK, 1, cv2.LINE_AA)
    cv2.putText(image, "columns: prediction", (8, top - 30), FONT, 0.45, INK, 1, cv2.LINE_AA)
    cv2.putText(image, "rows: truth", (8, top - 10), FONT, 0.45, INK, 1, cv2.LINE_AA)
    macro = report.rows["macro avg"]["f1"]
    cv2.putText(image, f"accuracy {report.accuracy:.2f}   macro F1 {macro:.2f}   "
                f"weighted F1 {report.rows['weighted avg']['f1']:.2f}   n = {int(report.confusion.sum())}",
                (8, height - 28), FONT, 0.45, INK, 1, cv2.LINE_AA)
    return image
