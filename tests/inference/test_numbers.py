"""Numbers in words: an AUC that no one-class validation set gives is said as such, never a bare "nan"."""

from __future__ import annotations

from inference.numbers import auc_text


def test_an_auc_of_one_class_is_not_a_bare_nan():
    assert auc_text(float("nan")) == "n/a (one class only)"
    assert auc_text(0.8125) == "0.812"
