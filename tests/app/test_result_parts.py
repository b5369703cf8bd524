"""The store holds one part per model entry, so any mix of models reuses what any screen or command computed
(no Qt)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from app.analysis import analyse_or_restore, assemble, entry_key, entry_parts, restore
from app.study.store import Store
from inference.intake.exam import load_exam
from inference.families.gmic.model import GMICConfig
from inference.pipeline import as_groups, analyze_exam
from inference.results.exam_result import breast_results, exam_decisions, no_result_notice
from inference.intake.views import Laterality, View
from inference.weights import LoadedModel, ModelGroup, ModelIdentity
from tests.helpers import BrightSpotGMIC, synthetic_view, write_png


def _counted_model(name: str, seed: int) -> tuple[LoadedModel, list[int]]:
    """A stub model of its own identity, and a list that grows by one per forward pass of its network."""
    torch.manual_seed(seed)
    model = BrightSpotGMIC(GMICConfig(local_width=8)).eval()
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    identity = ModelIdentity(path=f"<stub {name}>", git_blob_sha1=f"stub-{name}", sha256=f"stub-{name}",
                             published_name=None, percent_t=0.02, label=f"stub {name}")
    return LoadedModel(model=model, identity=identity), calls


def _exam(folder):
    folder.mkdir()
    for view, lesion in (("R-CC", (500, 300)), ("L-CC", (900, 500)), ("R-MLO", (700, 400)), ("L-MLO", (600, 200))):
        write_png(folder / f"0_{view}.png", synthetic_view(view, lesion))
    return load_exam(folder)


def _same(one, other) -> None:
    """Two exam results agree in entries, views, breasts and exam decisions (within float tolerance)."""
    assert [e.id for e in one.entries] == [e.id for e in other.entries]
    assert [e.label for e in one.entries] == [e.label for e in other.entries]
    assert set(one.views) == set(other.views)
    for view in one.views:
        for entry in one.entries:
            a, b = one.views[view].result(entry.id), other.views[view].result(entry.id)
            assert a.probabilities.keys() == b.probabilities.keys()
            assert np.allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)
            for la, lb in zip(a.layers, b.layers, strict=True):
                assert np.allclose(la.values, lb.values, atol=1e-6)
    assert set(one.breasts) == set(other.breasts)
    for side, breast in one.breasts.items():
        for entry_id, scores in breast.entries.items():
            theirs = other.breasts[side].entries[entry_id]
            assert np.isclose(scores.malignant, theirs.malignant, atol=1e-6) and scores.views == theirs.views
    for entry_id, decision in one.exam.items():
        assert np.isclose(decision.malignant, other.exam[entry_id].malignant, atol=1e-6)
        assert decision.breast == other.exam[entry_id].breast


def test_each_entry_is_stored_alone_and_any_mix_reuses_it(tmp_path):
    exam = _exam(tmp_path / "exam")
    (a, calls_a), (b, calls_b), (c, calls_c) = (_counted_model(n, s) for n, s in (("a", 1), ("b", 2), ("c", 3)))
    store = Store(tmp_path / "store.sqlite")
    try:
        first = analyse_or_restore(exam, [a, b], store=store, device="cpu")
        assert not first.restored and first.analysed == tuple(g.id for g in as_groups([a, b]))
        ran_a, ran_b = len(calls_a), len(calls_b)
        assert ran_a > 0 and ran_b > 0

        alone = analyse_or_restore(exam, [a], store=store, device="cpu")  # A's part of [A, B], restored
        assert alone.restored and len(calls_a) == ran_a
        assert [e.id for e in alone.result.entries] == [as_groups([a])[0].id]
        _same(alone.result, dataclasses.replace(first.result, entries=first.result.entries[:1],
                                                exam={k: v for k, v in first.result.exam.items()
                                                      if k == first.result.entries[0].id}))
        assert store.load_result(alone.key) is not None  # the key of the first entry's stored part
        assert restore(store, alone.key).entries[0].members == alone.result.entries[0].members

        mixed = analyse_or_restore(exam, [a, c], store=store, device="cpu")  # only C runs
        assert not mixed.restored and mixed.analysed == (as_groups([a, c])[1].id,)
        assert len(calls_a) == ran_a and len(calls_b) == ran_b and len(calls_c) > 0
        assert set(mixed.keys) == {e.id for e in mixed.result.entries}

        fresh = analyze_exam(exam, [a, c], device="cpu")
        _same(mixed.result, fresh)
        assert [m.key for m in mixed.result.provenance.models] == [m.key for m in fresh.provenance.models]

        again = analyse_or_restore(exam, [c, b, a], store=store, device="cpu")  # any order, all restored
        assert again.restored
        _same(again.result, analyze_exam(exam, [c, b, a], device="cpu"))
    finally:
        store.close()


def test_slots_and_decisions_still_miss(tmp_path):
    exam = _exam(tmp_path / "exam")
    model, _ = _counted_model("a", 1)
    group = as_groups([model])[0]
    moved = exam.move_view(View.R_CC, View.L_CC)
    assert entry_key(exam, group, "exact", "cpu") != entry_key(moved, group, "exact", "cpu")
    assert entry_key(exam, group, "exact", "cpu") != entry_key(exam, group, "fast", "cpu")
    store = Store(tmp_path / "store.sqlite")
    try:
        analyse_or_restore(exam, [model], store=store, device="cpu")
        assert not analyse_or_restore(moved, [model], store=store, device="cpu").restored
        assert analyse_or_restore(exam, [model], store=store, device="cpu").restored
        assert analyse_or_restore(moved, [model], store=store, device="cpu").restored
    finally:
        store.close()


def test_an_entry_without_a_result_on_a_view_keeps_that_in_its_own_part(tmp_path):
    exam = _exam(tmp_path / "exam")
    (a, _), (b, _) = _counted_model("a", 1), _counted_model("b", 2)
    group_a, group_b = as_groups([a, b])
    result = analyze_exam(exam, [a, b], device="cpu")
    reason = "the model's output is not a finite number (probability of malignant)"
    r_cc = result.views[View.R_CC]  # B gave a NaN on R-CC (as tests/report/test_trust.py makes happen)
    views = {**result.views, View.R_CC: dataclasses.replace(r_cc, entries={group_a.id: r_cc.entries[group_a.id]},
                                                            no_result={group_b.id: reason})}
    notice = no_result_notice(group_b.label, View.R_CC, reason)
    breasts = breast_results(views, result.entries)
    damaged = dataclasses.replace(result, views=views, breasts=breasts, exam=exam_decisions(breasts, result.entries),
                                  provenance=dataclasses.replace(result.provenance, notices=(notice,)))

    parts = entry_parts(damaged)
    assert parts[group_a.id].provenance.notices == () and parts[group_b.id].provenance.notices == (notice,)
    assert parts[group_a.id].views[View.R_CC].no_result == {}
    whole = assemble([group_b, group_a], [parts[group_b.id], parts[group_a.id]])
    assert whole.provenance.notices == (notice,) and whole.views[View.R_CC].no_result == {group_b.id: reason}
    assert whole.breasts[Laterality.RIGHT].entries[group_b.id].views == (View.R_MLO,)
    assert whole.breasts[Laterality.RIGHT].entries[group_a.id].views == (View.R_CC, View.R_MLO)
    # the same part under another entry's name: the notice and the views say that name
    renamed = assemble([ModelGroup("other", group_b.members, "renamed")], [parts[group_b.id]])
    assert renamed.provenance.notices == (no_result_notice("renamed", View.R_CC, reason),)
    assert renamed.views[View.R_CC].no_result == {"other": reason} and renamed.entries[0].label == "renamed"


def test_a_fast_analysis_names_each_entrys_own_arithmetic(tmp_path, monkeypatch):
    """Fast mode on a device with bf16 (forced here): GMIC autocasts, Mask R-CNN keeps float32. The result says
    both, each stored part says its own, and the key a part is stored under from its result (the batch's way) is
    the key the workstation looks it up by."""
    import inference.cpu
    from app.analysis import arithmetic, store_parts
    from inference.weights import load_model
    from tests.conftest import SHARED, require_shared

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    require_shared(seeded.parent)
    monkeypatch.setattr(inference.cpu, "has_bf16_arithmetic", lambda: True)
    exam = _exam(tmp_path / "exam")
    stub, _calls = _counted_model("a", 1)
    detector = load_model(seeded)
    groups = as_groups([stub, detector])
    result = analyze_exam(exam, groups, device="cpu", mode="fast")

    assert result.provenance.numerics == "bf16, fp32"
    assert analyze_exam(exam, [detector, stub], device="cpu", mode="fast").provenance.numerics == "bf16, fp32"
    from app.archive.sources import ExamItem
    from app.archive.table import score_rows

    rows = score_rows(ExamItem("e", str(tmp_path / "exam")), result, 1.0)
    assert {r["model_id"]: r["numerics"] for r in rows} == {groups[0].id: "bf16", groups[1].id: "fp32"}
    parts = entry_parts(result)
    assert {k: p.provenance.numerics for k, p in parts.items()} == {groups[0].id: "bf16", groups[1].id: "fp32"}
    assert [arithmetic("fast", "cpu", g) for g in groups] == ["fast-bf16", "fast-fp32"]
    assert arithmetic("exact", "cpu", groups[1]) == "exact"
    store = Store(tmp_path / "store.sqlite")
    try:
        assert store_parts(store, exam, result) == {g.id: entry_key(exam, g, "fast", "cpu") for g in groups}
        again = analyse_or_restore(exam, groups, store=store, device="cpu", mode="fast")
        assert again.restored and again.result.provenance.numerics == "bf16, fp32"
    finally:
        store.close()


def test_a_result_names_the_file_each_view_was_analysed_from_also_when_restored(tmp_path):
    """The result JSON named no image per view: with a retake or an image kept aside, nothing told afterwards which
    file the figures were of. A stored part is keyed by the images, not their place: restored for a copy of the
    exam under other names, it names the copy's files."""
    import shutil

    from inference.results.serialize import read_result, write_result

    exam = _exam(tmp_path / "exam")
    (model, calls) = _counted_model("a", 1)
    store = Store(tmp_path / "store.sqlite")
    try:
        first = analyse_or_restore(exam, [model], store=store, device="cpu")
        assert {v: r.source_file for v, r in first.result.views.items()} == \
            {v: f"0_{v.value}.png" for v in View}
        assert all(r.sop_instance_uid == "" for r in first.result.views.values())  # PNGs have none
        copy = tmp_path / "copy"
        copy.mkdir()
        for view in View:
            shutil.copy(tmp_path / "exam" / f"0_{view.value}.png", copy / f"{view.value.replace('-', '')}.png")
        ran = len(calls)
        again = analyse_or_restore(load_exam(copy), [model], store=store, device="cpu")
        assert again.restored and len(calls) == ran
        assert {v: r.source_file for v, r in again.result.views.items()} == \
            {v: f"{v.value.replace('-', '')}.png" for v in View}
        json_path, _ = write_result(again.result, tmp_path / "r.json")
        assert {v: r.source_file for v, r in read_result(json_path).views.items()} == \
            {v: r.source_file for v, r in again.result.views.items()}
    finally:
        store.close()
