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


def test_the_os_error_beneath_a_failure_is_found_down_its_chain_unless_put_aside():
    """pydicom re-raises a write's OS error from it (``__cause__``); a handler that raises anew leaves it as the
    ``__context__``; ``raise … from None`` puts it aside (a review)."""
    import errno

    from app.report.export import failure_text
    from inference.errors import os_error_beneath

    full = OSError(errno.ENOSPC, "No space left on device", "/out/x_sr.dcm")

    def raised(how):
        try:
            try:
                raise full
            except OSError as error:
                if how == "from":
                    raise ValueError("writing failed") from error
                if how == "context":
                    raise ValueError("writing failed")  # noqa: B904 - the context is the point
                raise ValueError("writing failed") from None
        except ValueError as error:
            return error

    assert os_error_beneath(raised("from")) is full and os_error_beneath(raised("context")) is full
    assert os_error_beneath(raised("none")) is None
    assert failure_text(raised("context")) == "No space left on device (x_sr.dcm)"
    bare = OSError("pydicom's own words")
    bare.filename = "/out/y_seg.dcm"
    assert failure_text(bare) == "pydicom's own words (y_seg.dcm)"  # no errno: its file still named
