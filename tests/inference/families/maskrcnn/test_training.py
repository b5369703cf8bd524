"""Training Mask R-CNN on small phantoms with masses: the box coder, the matching rules, a safe start from a
torchvision checkpoint, and a stopped and resumed run that ends bit-identical to one that was not stopped."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tests.conftest import SHARED, require_shared
from inference.weights import read_state_dict
from tests.helpers import run_isolated, run_main, train_stopped_and_resumed

SMALL = {"n_train": 6, "phantom_size": [256, 160], "min_size": 256, "max_size": 256, "device": "cpu",
         "rpn_batch": 64, "roi_batch": 64, "lr_drop_epoch": 1, "epochs": 2}


def test_encoding_inverts_the_box_decoder():
    from inference.families.maskrcnn import ops
    from inference.families.maskrcnn.training import BOX_WEIGHTS, encode_boxes

    references = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 8.0, 16.0]])
    targets = torch.tensor([[12.0, 18.0, 60.0, 44.0], [1.0, 2.0, 5.0, 20.0]])
    deltas = encode_boxes(targets, references, BOX_WEIGHTS)
    # hand-checked first row: centres (30, 30) -> (36, 31), sizes 40 x 20 -> 48 x 26
    expected = torch.tensor([10 * 6 / 40, 10 * 1 / 20, 5 * torch.log(torch.tensor(48 / 40)),
                             5 * torch.log(torch.tensor(26 / 20))])
    torch.testing.assert_close(deltas[0], expected)
    torch.testing.assert_close(ops.decode_boxes(deltas, references, BOX_WEIGHTS), targets)


def test_matching_keeps_each_lesions_best_anchor_and_ignores_the_middle():
    from inference.families.maskrcnn.training import match

    iou = torch.tensor([[0.9, 0.5, 0.1, 0.2],
                        [0.1, 0.2, 0.25, 0.0]])  # lesion 1's best is only 0.25
    assert match(iou, 0.7, 0.3, keep_best=True).tolist() == [0, -2, 1, -1]
    assert match(iou, 0.7, 0.3, keep_best=False).tolist() == [0, -2, -1, -1]
    assert match(torch.zeros((0, 3)), 0.7, 0.3, keep_best=True).tolist() == [-1, -1, -1]


def test_phantom_targets_are_the_lesion_its_box_and_class():
    from inference.families.maskrcnn.training import lesion_images, target_of
    from inference.training.labelled_images import phantom_images

    (image,) = phantom_images(1, 3, (256, 160), kinds=("spiculated",))
    (entry,) = lesion_images([image], ("background", "benign mass", "malignant mass"))
    target = target_of(entry)
    assert target.labels.tolist() == [2]
    x1, y1, x2, y2 = target.boxes[0].tolist()
    mask = target.masks[0]
    assert mask.sum() == image.lesion.sum()
    assert mask[int(y1):int(y2), int(x1):int(x2)].sum() == mask.sum()  # the box holds the whole lesion
    assert mask[int(y1), :].any() and mask[int(y2) - 1, :].any() and mask[:, int(x1)].any() and mask[:, int(x2) - 1].any()


def test_an_image_listed_once_per_lesion_is_one_image_with_all_its_lesions():
    """CBIS-DDSM lists an image once per ROI: taken row by row, training took the other lesions for background
    (and evaluate counted one lesion's detection as another row's false positive; tests/cli)."""
    import dataclasses

    import numpy as np

    from inference.families.maskrcnn.training import lesion_images, target_of
    from inference.intake.views import View
    from inference.training.labelled_images import LabelledImage

    classes = ("background", "benign mass", "malignant mass")
    pixels = np.zeros((64, 48), np.float32)
    first, second = np.zeros((64, 48), bool), np.zeros((64, 48), bool)
    first[5:15, 4:10], second[40:50, 30:44] = True, True
    rows = [LabelledImage(pixels, View("L-CC"), "malignant", first, "a.png", 2),
            LabelledImage(pixels, View("R-CC"), "normal", None, "b.png", 3),
            LabelledImage(pixels, View("L-CC"), "benign", second, "a.png", 4)]
    entries = lesion_images(rows, classes)
    assert [e.image.source for e in entries] == ["a.png", "b.png"] and [len(e.lesions) for e in entries] == [2, 0]
    target = target_of(entries[0])
    assert target.labels.tolist() == [2, 1]
    assert target.boxes.tolist() == [[4.0, 5.0, 10.0, 15.0], [30.0, 40.0, 44.0, 50.0]]
    assert target.masks.shape == (2, 64, 48) and target.masks[1].sum() == second.sum()
    assert target_of(entries[1]).boxes.shape == (0, 4)
    # the same file written another way, and a row repeated (CSVs put together): one image, each lesion once
    again = [*rows, dataclasses.replace(rows[2], source="./a.png", row=5), dataclasses.replace(rows[0], row=6)]
    pooled = lesion_images(again, classes)
    assert [len(e.lesions) for e in pooled] == [2, 0]
    with pytest.raises(ValueError, match=r"^data.csv: a.png: its rows \(2, 4\) give it different views \(L-CC, "
                                         r"R-CC\); one image has one view: correct the view column"):
        lesion_images([rows[0], dataclasses.replace(rows[2], view=View("R-CC"))], classes, "data.csv")


def test_a_stopped_and_resumed_run_ends_bit_identical(tmp_path):
    (tmp_path / "stopped").mkdir()
    log, resumed = train_stopped_and_resumed("maskrcnn", SMALL, tmp_path / "stopped")
    assert "resumed from epoch 1" in log
    config = tmp_path / "straight.json"
    config.write_text(json.dumps(SMALL))
    done = run_isolated(["main.py", "train", "--family", "maskrcnn", "--config", str(config),
                         "--out", str(tmp_path / "straight")])
    assert done.returncode == 0, done.stderr[-3000:]
    straight = read_state_dict(tmp_path / "straight" / "model.pt")
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in straight.values())
    meta = json.loads((tmp_path / "straight" / "model.pt.json").read_text())
    assert meta["family"] == "maskrcnn" and [h["lr"] for h in meta["training"]["history"]] == [0.002, 0.0002]
    from inference.weights import load_model

    loaded = load_model(tmp_path / "straight" / "model.pt")  # the trained file is a Mask R-CNN checkpoint
    assert loaded.identity.family == "maskrcnn" and loaded.identity.classes == ("benign mass", "malignant mass")


def test_starts_from_a_torchvision_checkpoint_and_refuses_a_pickle(tmp_path):
    require_shared(SHARED / "reference" / "maskrcnn")
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, _model

    seeded = SHARED / "reference" / "maskrcnn" / "seeded_state_dict.pt"
    said = []
    model = _model(MaskRCNNTrainConfig(weights=str(seeded)), said.append)
    # the file's network is trained, and said so (a researcher's test: the record kept the options' widths)
    assert "its network (block basic, layers (1, 1, 1, 1), stem_width 64, fpn_channels 64" in said[0]
    assert "not the options' block, layers and widths" in said[0]
    state = torch.load(seeded, weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v.float()) for k, v in state.items())
    four = _model(MaskRCNNTrainConfig(weights=str(seeded), classes=("background", "a", "b", "c")), lambda text: None)
    assert four.roi_heads.box_predictor.cls_score.out_features == 4  # new class layers, the rest loaded
    assert torch.equal(four.backbone.fpn.inner_blocks[0][0].weight, state["backbone.fpn.inner_blocks.0.0.weight"].float())

    class Payload:
        def __reduce__(self):
            return (print, ("never run",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil)
    from inference.errors import CheckpointError

    with pytest.raises(CheckpointError, match="evil.pt: .*(refused|not)"):
        _model(MaskRCNNTrainConfig(weights=str(evil)), lambda text: None)
    text = tmp_path / "text.pt"
    text.write_text("not weights")  # was an IndexError from deep in torch.load
    with pytest.raises(CheckpointError, match="text.pt"):
        _model(MaskRCNNTrainConfig(weights=str(text)), lambda text: None)


def test_training_refuses_images_beyond_max_value(tmp_path):
    """What inference would refuse to read is not trained on either: a model trained on 16-bit scans divided by
    4095 would declare 12-bit input and then refuse every such scan."""
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, train_maskrcnn

    config = MaskRCNNTrainConfig(**{**SMALL, "max_value": 1000.0, "out": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=r"phantom.*pixel values reach \d+, above max_value 1000; set max_value"):
        train_maskrcnn(config, progress=lambda text: None)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    from tests.helpers import synthetic_view, write_png  # a CSV's image: named with the CSV's line

    write_png(tmp_path / "a.png", synthetic_view("L-CC", (200, 100), shape=(256, 160)))
    (tmp_path / "data.csv").write_text("path,view,label,mask\na.png,L-CC,normal,\n")
    config = dataclasses.replace(config, data=str(tmp_path / "data.csv"), max_value=10.0)
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'data.csv'}, row 2: {tmp_path / 'a.png'}: its pixel values"):
        train_maskrcnn(config, progress=lambda text: None)


def write_phantom_csv(folder, count: int = 4, seed: int = 5) -> "Path":
    """``count`` small phantom views with masses as the user's own data: PNGs, masks and ``train.csv``."""
    import cv2
    import numpy as np

    from inference.training.labelled_images import phantom_images

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,view,label,mask"]
    for index, image in enumerate(phantom_images(count, seed, (256, 160), kinds=("spiculated", "round", None))):
        cv2.imwrite(str(folder / f"img{index}.png"), image.image)
        mask = ""
        if image.lesion is not None:
            mask = f"mask{index}.png"
            cv2.imwrite(str(folder / mask), image.lesion.astype(np.uint8) * 255)
        label = {"no_tumour": "normal"}.get(image.label, image.label)
        rows.append(f"img{index}.png,{image.view.value},{label},{mask}")
    (folder / "train.csv").write_text("\n".join(rows) + "\n")
    return folder / "train.csv"


def test_a_model_trained_on_the_users_data_is_not_the_demo_and_its_run_resumes_only_as_itself(tmp_path):
    """Seen hands-on: a model trained with --data train.csv was labelled "Mammo Reader demo Mask R-CNN (synthetic
    phantoms)" with demo true (the app's DEMO banner); and a resume with another --seed went on silently, its
    model.pt.json recording the new seed for the old run's weights."""
    data = write_phantom_csv(tmp_path / "data", seed=11)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL, "epochs": 1}))
    out = tmp_path / "run"
    train = ["main.py", "train", "--family", "maskrcnn", "--config", str(config), "--data", str(data),
             "--out", str(out)]
    done = run_isolated(train)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "model.pt.json").read_text())
    assert meta["label"] == "Mask R-CNN trained on train.csv" and meta["demo"] is False
    from inference.weights import load_model

    assert not load_model(out / "model.pt").identity.demo
    before = (out / "model.pt.json").read_bytes()
    refused = run_main([*train[1:], "--seed", "1", "--epochs", "2"])  # refused before any training: in-process
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: {out / 'checkpoint.pt'}: the checkpoint is of a run with other settings (seed 0 there, 1 now), which "
        "the model would record for weights that did not come from them: train into another --out, or move the "
        "checkpoint away to start afresh (continue_with_changes in the training options continues it on purpose, as "
        "a new stage)")
    assert (out / "model.pt.json").read_bytes() == before
    resumed = run_isolated([*train, "--epochs", "2"])  # the same run: resumed as before
    assert resumed.returncode == 0 and "resumed from epoch 1" in resumed.stderr, resumed.stderr[-3000:]


def test_training_names_every_lesion_row_without_its_mask(tmp_path):
    """A lesion row without a mask, or with a blank one, was refused naming the image only (and the first one)."""
    import cv2
    import numpy as np

    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, train_maskrcnn

    data = write_phantom_csv(tmp_path / "data", count=4, seed=11)
    lines = data.read_text().splitlines()
    cv2.imwrite(str(data.parent / "blank.png"), np.zeros((256, 160), np.uint8))
    lines += ["img0.png,L-CC,malignant,", "img1.png,R-CC,benign,blank.png"]  # rows 6 and 7
    data.write_text("\n".join(lines) + "\n")
    config = MaskRCNNTrainConfig(**{**SMALL, "data": str(data), "out": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=rf"^{data}, rows 6, 7: a benign or malignant image needs its lesion mask to "
                                         "train a detector"):
        train_maskrcnn(config, progress=lambda text: None)


def test_the_demo_label_stays_for_phantoms_and_the_options_own_label_wins():
    from inference.families.gmic.training import TrainConfig
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig
    from inference.families.sliding_window.training import WindowTrainConfig
    from inference.training.common import model_label

    assert model_label(MaskRCNNTrainConfig(), "maskrcnn", "demo label") == ("demo label", True)
    assert model_label(TrainConfig(data="/x/site.csv"), "gmic", "demo") == ("GMIC trained on site.csv", False)
    own = WindowTrainConfig(data="a.csv", label="Site model", demo=True)
    assert model_label(own, "sliding-window", "demo") == ("Site model", True)


def _normals_csv(folder):
    """Four phantom views as the user's own data, every one normal (no lesion)."""
    data = write_phantom_csv(folder, count=4, seed=11)
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0], *(",".join([*line.split(",")[:2], "normal", ""]) for line in lines[1:])])
                    + "\n")
    return data


def test_data_without_a_single_lesion_is_refused_naming_the_csv_and_its_labels(tmp_path):
    """Seen hands-on: a CSV of normal images only trained silently, every loss zero."""
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, train_maskrcnn

    data = _normals_csv(tmp_path / "data")
    config = MaskRCNNTrainConfig(**{**SMALL, "data": str(data), "out": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=rf"^{data}: no image has a lesion: a detector learns nothing to find \(the "
                                         r"labels read: normal 4 image\(s\)\)"):
        train_maskrcnn(config, progress=lambda text: None)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cuda_without_a_gpu_trains_on_the_cpu_with_analyzes_notice(tmp_path, monkeypatch):
    """Seen hands-on: train --device cuda on a machine without CUDA crashed in torch (_cuda_setDevice), where
    analyze says so and runs on the CPU."""
    from inference.training.device import training_device

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert training_device("cuda") == torch.device("cpu") and training_device("auto") == torch.device("cpu")
    data = _normals_csv(tmp_path / "data")  # refused after the device is chosen: no training in this process
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL, "epochs": 1}))
    done = run_main(["train", "--family", "maskrcnn", "--config", config, "--data", data, "--out", tmp_path / "run",
                     "--device", "cuda"])
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "notice: CUDA was requested but no usable GPU was found; running on the CPU" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: training stopped: {data}: no image has a lesion")


def test_a_second_training_on_the_same_folder_is_refused_at_once(tmp_path):
    """Seen hands-on: two runs on one --out both wrote its checkpoint.pt and model.pt (the second "resumed from
    epoch 6" while the first ran)."""
    from filelock import FileLock

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**SMALL, "epochs": 1}))
    out = tmp_path / "run"
    out.mkdir()
    train = ["train", "--family", "maskrcnn", "--config", config, "--data", tmp_path / "missing.csv", "--out", out]
    with FileLock(out / ".train.lock", timeout=0):  # another training's, for as long as it runs
        refused = run_main(train)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: {out}: another training is writing to this folder (its checkpoint.pt and model.pt): wait for it to "
        "end, or train into another --out")
    after = run_main(train)  # the folder free again: refused for its data, as before
    assert after.returncode == 2 and "missing.csv" in after.stderr.strip().splitlines()[-1]
    fresh = run_main([*train[:-1], tmp_path / "new"])  # a folder made for a refused run is not left behind
    assert fresh.returncode == 2 and not (tmp_path / "new").exists()


def test_a_detectors_classes_begin_with_the_background():
    """Seen hands-on: classes ["benign mass", "malignant mass"] were accepted, and benign mass silently became
    the background (class 0 in torchvision's layout)."""
    from inference.families.maskrcnn.training import MaskRCNNTrainConfig

    with pytest.raises(ValueError, match=r"classes must begin with the background class: class 0 is the background "
                                         r"in torchvision's layout, and \['benign mass'\] would be taken for it; "
                                         r"write e.g. \['background', 'benign mass', 'malignant mass'\]"):
        MaskRCNNTrainConfig(classes=("benign mass", "malignant mass"))
    for first in ("background", "__background__", "Background", "__BACKGROUND__"):
        assert MaskRCNNTrainConfig(classes=(first, "mass")).classes[0] == first
    with pytest.raises(ValueError, match="classes must begin with the background class"):
        MaskRCNNTrainConfig(classes=("background",))


def test_an_8_bit_image_is_said_and_refused_against_a_12_bit_scale(tmp_path):
    """An 8-bit image's note ("only 256 grey levels") was dropped, and the image divided by max_value 4095 (a
    sixteenth of the scale of the 12-bit images beside it): said, and refused naming the row, with what to do."""
    import cv2

    from inference.families.maskrcnn.training import MaskRCNNTrainConfig, train_maskrcnn

    data = write_phantom_csv(tmp_path / "data", count=4, seed=11)
    image = cv2.imread(str(data.parent / "img3.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(data.parent / "img3.png"), (image // 16).astype("uint8"))
    said = []
    config = MaskRCNNTrainConfig(**{**SMALL, "data": str(data), "out": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=rf"^{data}, row 5: {data.parent / 'img3.png'}: an 8-bit image \(grey levels "
                                         r"0 to 255\) in a run whose max_value is 4095: the network would read it at "
                                         r"1/16.0588 of its scale; .* set max_value 255 in the training options"):
        train_maskrcnn(config, progress=said.append)
    assert said == [f"note: {data.parent / 'img3.png'}: 8-bit image: only 256 grey levels (mammograms are usually "
                    "12 to 16 bit)"]
