"""Numbers in words: an AUC that no one-class validation set gives is said as such, never a bare "nan"."""

from __future__ import annotations

from inference.numbers import auc_text, p_text


def test_an_auc_of_one_class_is_not_a_bare_nan():
    assert auc_text(float("nan")) == "n/a (one class only)"
    assert auc_text(0.8125) == "0.812"


def test_a_p_value_below_the_fourth_decimal_is_no_zero():
    """A study's comparison printed "p (fixed readers) 0.0000" (a coordinator's review): a p-value is never 0."""
    assert [p_text(p) for p in (0.0082, 3e-9, 0.0, None, float("nan"))] == ["0.0082", "< 0.0001", "< 0.0001", "—", "—"]


def test_a_region_s_caption_keeps_its_size_on_one_line():
    """"#1 attention 0.122, 256 × 256": the size's spaces are non-breaking (a PDF cell wrapped it "256 × / 256")."""
    from inference.results.types import ScoredRegion

    region = ScoredRegion(rank=1, box_original=(0.0, 0.0, 10.0, 10.0), score=0.1224, kind="attention", size=(256, 128))
    assert region.caption() == "#1  attention 0.122, 256\u00a0×\u00a0128"
    assert ScoredRegion(rank=2, box_original=(0.0, 0.0, 1.0, 1.0), score=0.5, kind="glimpse").caption() == (
        "#2  glimpse 0.500")
