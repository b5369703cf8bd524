"""The labelled-image CSV (``path, view, label[, mask]``): every refusal names the CSV and the row, and only the
project's message is printed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import synthetic_view, write_png

CLASSES = ("no_tumour", "benign", "malignant")


@pytest.fixture
def folder(tmp_path):
    write_png(tmp_path / "a.png", synthetic_view("L-CC", (200, 150), shape=(400, 240)))
    mask = np.zeros((400, 240), np.uint8)
    mask[190:210, 140:160] = 255
    write_png(tmp_path / "a_mask.png", mask)
    return tmp_path


def test_a_row_whose_image_does_not_exist_is_named_with_the_csv_and_row(folder):
    """Said only "error: /path/img.png: the file does not exist", unlike the mask errors."""
    from inference.training.labelled_images import csv_images

    csv_file = folder / "train.csv"
    csv_file.write_text("path,view,label,mask\na.png,L-CC,malignant,a_mask.png\ngone.png,L-CC,normal,\n")
    with pytest.raises(ValueError, match=rf"^{csv_file}, row 3: {folder / 'gone.png'}: the file does not exist$"):
        csv_images(csv_file, (*CLASSES, "normal"))


@pytest.mark.parametrize("mask, says", [("gone_mask.png", "it does not exist"),
                                        ("empty.png", r"it is empty \(0 bytes\)")], ids=["missing", "zero bytes"])
def test_a_mask_that_cannot_be_read_is_said_once_without_opencvs_warning(folder, capfd, mask, says):
    """OpenCV printed "[ WARN:0@…] global loadsave.cpp … can't open/read file" above the project's message."""
    from inference.training.labelled_images import csv_images

    (folder / "empty.png").write_bytes(b"")
    csv_file = folder / "train.csv"
    csv_file.write_text(f"path,view,label,mask\na.png,L-CC,malignant,{mask}\n")
    with pytest.raises(ValueError, match=rf"^{csv_file}, row 2: the mask {folder / mask} could not be read: {says}$"):
        csv_images(csv_file, CLASSES)
    printed = capfd.readouterr()
    assert "WARN" not in printed.err + printed.out and "loadsave" not in printed.err + printed.out


def test_an_empty_csv_is_said_to_be_empty(folder):
    """A 0-byte CSV said "the CSV lacks the column(s) ['label', 'path']"."""
    from inference.families.glimpsenet.training import glimpse_csv
    from inference.families.gmic.training import csv_samples
    from inference.training.labelled_images import csv_images

    csv_file = folder / "train.csv"
    csv_file.write_bytes(b"")
    for read in (lambda: csv_images(csv_file, CLASSES), lambda: csv_samples(csv_file), lambda: glimpse_csv(csv_file)):
        with pytest.raises(ValueError, match=rf"^{csv_file}: the CSV is empty"):
            read()


def test_a_row_after_a_blank_line_is_named_by_its_line_in_the_file(folder):
    """The rows were counted from 2 as read, and the reader skips blank lines: a lesion row without its mask on
    line 4 was called row 3."""
    from inference.families.maskrcnn.training import check_lesion_masks
    from inference.training.labelled_images import csv_images

    csv_file = folder / "train.csv"
    csv_file.write_text("path,view,label,mask\na.png,L-CC,malignant,a_mask.png\n\na.png,L-CC,malignant,\n")
    images = csv_images(csv_file, CLASSES)
    assert [image.row for image in images] == [2, 4]
    with pytest.raises(ValueError, match=rf"^{csv_file}, row 4: a malignant image needs its lesion mask"):
        check_lesion_masks(images, ("background", "benign", "malignant"), str(csv_file), "train")


def test_a_header_typed_with_spaces_a_row_too_long_and_a_folder_are_said(folder):
    """A researcher's test: "path, view, label, mask" lacked the column 'label' (its name was ' label'), a row
    with a fifth field was read without a word, and a folder given as the CSV "does not exist"."""
    from inference.training.labelled_images import csv_images

    csv_file = folder / "train.csv"
    csv_file.write_text("path, view, label, mask\na.png, L-CC, malignant, a_mask.png\n")
    (image,) = csv_images(csv_file, CLASSES)
    assert image.label == "malignant" and image.lesion is not None
    csv_file.write_text("path,view,label,mask\na.png,L-CC,malignant,a_mask.png,extra\n")
    with pytest.raises(ValueError, match=rf"^{csv_file}, row 2: 5 fields for the header's 4 \(path, view, label, mask\)$"):
        csv_images(csv_file, CLASSES)
    csv_file.write_text("file,view,kind\na.png,L-CC,malignant\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['label', 'path'\] .*its header has: file, view, kind"):
        csv_images(csv_file, CLASSES)
    with pytest.raises(ValueError, match=rf"^{folder}: this is a folder; give the CSV file"):
        csv_images(folder, CLASSES)


def test_the_other_training_csvs_read_their_headers_and_rows_alike(folder):
    """A second review: GMIC's and GlimpseNet's CSVs still refused "path, view, benign, malignant" typed with
    spaces, and read a row longer than the header without a word."""
    from inference.families.glimpsenet.training import glimpse_csv
    from inference.families.gmic.training import csv_samples

    csv_file = folder / "train.csv"
    csv_file.write_text("path, view, benign, malignant, mask\na.png, L-CC, 0, 1, a_mask.png\n")
    assert len(csv_samples(csv_file)) == 1 and len(glimpse_csv(csv_file)) == 1
    csv_file.write_text("path,view,benign,malignant,mask\na.png,L-CC,0,1,a_mask.png,,\n")  # a spreadsheet's padding
    assert len(csv_samples(csv_file)) == 1
    csv_file.write_text("path,view,benign,malignant,mask\na.png,L-CC,0,1,a_mask.png,x\n")
    for read in (csv_samples, glimpse_csv):
        with pytest.raises(ValueError, match=r"row 2: 6 fields for the header's 5"):
            read(csv_file)


def test_a_label_is_taken_in_any_case_and_an_unknown_one_lists_the_classes_in_their_order(folder):
    """CBIS-DDSM writes "MALIGNANT": refused as unknown; and the detector's refusal listed the classes in a
    different order from run to run (a set; a researcher's hands-on test)."""
    from inference.families.maskrcnn.training import labelled_images
    from inference.training.labelled_images import csv_images

    csv_file = folder / "train.csv"
    csv_file.write_text("path,view,label,mask\na.png,L-CC,MALIGNANT,a_mask.png\n")
    assert [image.label for image in csv_images(csv_file, CLASSES)] == ["malignant"]  # the model's spelling
    csv_file.write_text("path,view,label,mask\na.png,L-CC,cancer,a_mask.png\n")
    detector = ("background", "benign mass", "malignant mass")
    with pytest.raises(ValueError, match=r"unknown label 'cancer'; the model's classes are \['benign mass', "
                                         r"'malignant mass', 'no_tumour', 'normal', 'benign', 'malignant'\]$"):
        labelled_images(str(csv_file), detector, 0, 0, (0, 0))


def test_a_mask_with_an_images_grey_levels_is_refused_naming_the_row_and_file(folder):
    """Seen hands-on: a JPEG mask (its ringing above 0 made the lesion bigger) and the image given as its own mask
    (the whole breast became the lesion) were read as masks."""
    import cv2

    from inference.training.labelled_images import csv_images

    mask = cv2.imread(str(folder / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(folder / "a_mask.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 75])
    csv_file = folder / "data.csv"
    for name in ("a_mask.jpg", "a.png"):
        csv_file.write_text(f"path,view,label,mask\na.png,L-CC,no_tumour,\na.png,L-CC,malignant,{name}\n")
        with pytest.raises(ValueError, match=rf"^{csv_file}, row 3: the mask {folder / name} holds \d+ grey levels, "
                                             r"not a mask's 0 and one other value: is it the image itself, or a "
                                             r"JPEG\? save masks as PNG with 0 and 255"):
            csv_images(csv_file, CLASSES)
    # CBIS-DDSM's 0/255 PNG, a 0/1 one and one of two lesion values are masks
    write_png(folder / "ones.png", (mask > 0).astype(np.uint8))
    two = mask.copy()
    two[195:205, 145:155] = 128
    write_png(folder / "two.png", two)
    csv_file.write_text("path,view,label,mask\na.png,L-CC,malignant,a_mask.png\na.png,L-CC,malignant,ones.png\n"
                        "a.png,L-CC,malignant,two.png\n")
    assert [int(image.lesion.sum()) for image in csv_images(csv_file, CLASSES)] == [400, 400, 400]


def test_an_empty_view_cell_points_to_the_csvs_view_column(folder):
    """Said "the view could not be told from the file name; name it like 0_L-CC.png …": the CSV's view column is
    the place for it."""
    from inference.training.labelled_images import csv_images

    write_png(folder / "scan.png", synthetic_view("L-CC", (200, 150), shape=(400, 240)))
    csv_file = folder / "data.csv"
    csv_file.write_text("path,view,label,mask\nscan.png,,no_tumour,\n")
    with pytest.raises(ValueError, match=rf"^{csv_file}, row 2: {folder / 'scan.png'}: the row's view is empty and "
                                         "the file's name does not tell it: write the view .* in the CSV's view "
                                         "column"):
        csv_images(csv_file, CLASSES)
    write_png(folder / "0_L-CC.png", synthetic_view("L-CC", (200, 150), shape=(400, 240)))
    csv_file.write_text("path,view,label,mask\n0_L-CC.png,,no_tumour,\n")  # a name that tells it still does
    assert csv_images(csv_file, CLASSES)[0].view.value == "L-CC"


def test_the_intake_notes_of_an_8_bit_image_are_kept(folder):
    """The intake's "8-bit image: only 256 grey levels" was dropped on the way from the file to the training."""
    from inference.training.labelled_images import csv_images

    write_png(folder / "b_L-CC.png", (synthetic_view("L-CC", (200, 150), shape=(400, 240)) // 16).astype(np.uint8))
    csv_file = folder / "data.csv"
    csv_file.write_text("path,view,label,mask\na.png,L-CC,no_tumour,\nb_L-CC.png,L-CC,no_tumour,\n")
    deep, shallow = csv_images(csv_file, CLASSES)
    assert not deep.eight_bit and not any("8-bit" in note for note in deep.notes)
    assert shallow.eight_bit and any(note.startswith("8-bit image: only 256 grey levels") for note in shallow.notes)
