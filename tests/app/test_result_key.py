"""The result cache keys a result on the image in each slot and the reader's laterality decisions (no Qt)."""

from __future__ import annotations

import numpy as np

from app.analysis import analyse_or_restore, result_key
from app.study.store import Store
from inference.intake.exam import load_exam
from inference.pipeline import as_groups
from inference.results.exam_result import Laterality
from inference.intake.views import View
from tests.helpers import make_stub_model, synthetic_view, write_png


def _swapped_cc_exam(folder):
    """Two CC files swapped at the site: the file labelled R-CC holds a left breast and the other way round."""
    folder.mkdir()
    write_png(folder / "0_R-CC.png", synthetic_view("L-CC", (500, 300)))  # a left breast (bright lesion)
    write_png(folder / "0_L-CC.png", synthetic_view("R-CC", (900, 600)))  # a right breast, lesion elsewhere
    for view in ("R-MLO", "L-MLO"):  # stored as usual: the exam as a whole is not mirrored
        write_png(folder / f"0_{view}.png", synthetic_view(view, (700, 400)))
    return load_exam(folder)


def test_confirmed_mirrored_and_moved_flows_get_different_keys_and_results(tmp_path):
    exam = _swapped_cc_exam(tmp_path / "swapped")
    assert set(exam.laterality_conflicts) == {View.L_CC, View.R_CC}
    confirmed = exam.confirm_orientation(View.R_CC).confirm_orientation(View.L_CC)
    moved = exam.move_view(View.R_CC, View.L_CC)
    assert confirmed.laterality_conflicts == () and moved.laterality_conflicts == ()
    model = make_stub_model()
    groups = as_groups([model])
    assert result_key(confirmed, groups, "exact", "cpu") != result_key(moved, groups, "exact", "cpu")

    store = Store(tmp_path / "store.sqlite")
    try:
        first = analyse_or_restore(confirmed, [model], store=store, device="cpu")
        second = analyse_or_restore(moved, [model], store=store, device="cpu")
        assert not second.restored  # never the first reader's result with each breast on the other slot
        again = analyse_or_restore(moved, [model], store=store, device="cpu")
        assert again.restored
        entry = first.result.entries[0].id
        for analysis, exam_shown in ((first, confirmed), (second, moved)):
            for view, image in exam_shown.views.items():
                assert analysis.result.views[view].original_shape == image.pixels.shape
        # the swap moved each file's scores with it: the first result's R-CC is the second's L-CC
        r_first = first.result.views[View.R_CC].entries[entry].probabilities
        l_second = second.result.views[View.L_CC].entries[entry].probabilities
        assert np.allclose(list(r_first.values()), list(l_second.values()), atol=1e-4)
        assert first.result.breasts[Laterality.RIGHT] != second.result.breasts[Laterality.RIGHT]
    finally:
        store.close()
