"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017) and the measures
of calibration: one temperature T > 0 divides a classifier's logits before the softmax; it is fitted on
held-out data by minimising the negative log-likelihood over log T (L-BFGS), so T stays positive and the
argmax, hence the accuracy, never changes.

ECE is the top-label expected calibration error: predictions binned by their confidence (the top class's
probability) into equal-width bins, ECE = sum_b (n_b / N) |accuracy_b - confidence_b|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a temperature above this divides any logit a classifier gives to nothing: every class equally likely,
#: whatever the image (what a fit that ran off towards infinity leaves; see ``unusable_fit``)
FLATTENING_TEMPERATURE = 1000.0
#: below this, the logits are multiplied by more than 100: every output is 0 or 1 (calibrate refuses to store a
#: fit under 0.05 that classified its data without an error; a stored one this small is refused at load)
SATURATING_TEMPERATURE = 0.01


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"expected (N, K) logits and N labels with N > 0, got {logits.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in 0 … {logits.shape[1] - 1}")
    return logits, labels


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log p(true class) (probabilities clipped at 1e-12)."""
    p = np.asarray(probabilities, np.float64)[np.arange(len(labels)), np.asarray(labels, np.int64)]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature that minimises the NLL of ``softmax(logits / T)`` on ``labels``."""
    import torch  # noqa: PLC0415 - only where a temperature is fitted
    import torch.nn.functional as F  # noqa: PLC0415

    logits, labels = _check(logits, labels)
    z = torch.from_numpy(logits)
    y = torch.from_numpy(labels)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError("the temperature fit did not converge")
    return temperature


@dataclass(frozen=True)
class ReliabilityBins:
    """Per confidence bin: mean confidence, accuracy and count (bins without predictions: count 0)."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        total = self.count.sum()
        if total == 0:
            return 0.0
        return float((self.count / total * np.abs(self.accuracy - self.confidence)).sum())

    def as_dict(self) -> dict[str, list[float]]:
        return {"edges": self.edges.round(6).tolist(), "confidence": self.confidence.round(6).tolist(),
                "accuracy": self.accuracy.round(6).tolist(), "count": self.count.astype(int).tolist()}


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> ReliabilityBins:
    """Top-label reliability on ``bins`` equal-width confidence bins ((lo, hi], the first also holds 0)."""
    if not 2 <= bins <= 100:
        raise ValueError(f"use between 2 and 100 bins, not {bins}")
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(count > 0, np.bincount(index, confidence, bins) / count, 0.0)
        accuracy = np.where(count > 0, np.bincount(index, correct, bins) / count, 0.0)
    return ReliabilityBins(edges, mean_confidence, accuracy, count)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    return reliability_bins(probabilities, labels, bins).ece


@dataclass(frozen=True)
class CalibrationFit:
    """A temperature fit and its effect on the data it was fitted on."""

    temperature: float
    samples: int
    bins: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    accuracy: float
    before: ReliabilityBins
    after: ReliabilityBins


def calibrate_logits(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> CalibrationFit:
    """Fit T on (logits, labels) and measure NLL, ECE and accuracy at T = 1 and at the fitted T."""
    logits, labels = _check(logits, labels)
    temperature = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits, temperature)
    bins_before, bins_after = reliability_bins(before, labels, bins), reliability_bins(after, labels, bins)
    return CalibrationFit(
        temperature=temperature, samples=len(labels), bins=bins,
        nll_before=negative_log_likelihood(before, labels), nll_after=negative_log_likelihood(after, labels),
        ece_before=bins_before.ece, ece_after=bins_after.ece,
        accuracy=float((before.argmax(axis=1) == labels).mean()), before=bins_before, after=bins_after)


def temperature_problem(temperature: float) -> str:
    """Why a model must not be used with ``temperature`` ("" when it may): one that flattens every output, or
    one so small that every output is 0 or 1 (1e-300 made an exam's P(malignant) 0.5, the mean of a 1 and a 0)."""
    if not math.isfinite(temperature):
        return f"the calibration temperature {temperature} is not a number"
    if temperature > FLATTENING_TEMPERATURE:
        return (f"the calibration temperature {temperature:.4g} makes every class equally likely, whatever the "
                "image (a temperature fit that ran off on data the model could not tell apart)")
    if temperature < SATURATING_TEMPERATURE:
        return (f"the calibration temperature {temperature:.4g} makes every output 0 or 1, whatever the image (a "
                "temperature fit that ran off on data the model classified without an error)")
    return ""


def unusable_fit(fit: CalibrationFit, classes: int) -> str:
    """Why a fitted temperature must not be stored ("" when it may). The fit runs off towards infinity when the
    model's outputs are no better than a uniform guess on the data: its NLL is then lowest with every output 1/K,
    a model that says the same for every image. It runs off towards 0 when the model classifies every sample
    right: nothing to calibrate against, and every output would be 0 or 1."""
    uniform = math.log(classes)
    if fit.temperature > 1 and fit.nll_after >= 0.99 * uniform:
        return (f"the fit drove the temperature to {fit.temperature:.4g}, which makes every class equally likely "
                f"whatever the image: on this data the model's outputs are no better than a uniform guess "
                f"(accuracy {fit.accuracy:.3f} over {classes} classes; NLL {fit.nll_before:.4f} at T = 1, "
                f"{fit.nll_after:.4f} after, where a uniform guess gives ln {classes} = {uniform:.4f})")
    if fit.temperature < 0.05 and fit.accuracy == 1.0:
        return (f"the fit drove the temperature to {fit.temperature:.4g}, which makes every output 0 or 1: the "
                "model classifies every sample of this data right, leaving nothing to calibrate against")
    return ""
