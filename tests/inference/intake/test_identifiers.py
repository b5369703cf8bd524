"""Removing identifiers from notes keeps what names a view only."""

from inference.intake.identifiers import names_a_view_only, remove_identifiers


def test_a_file_named_by_its_view_is_no_identifier_and_the_view_stays_in_the_note():
    """A deployer's re-test: files named R-MLO.dcm made "R-MLO" an identifier, and a de-identified export read
    "POSSIBLE LATERALITY ERROR: … is labelled …, … move it to …"."""
    note = "POSSIBLE LATERALITY ERROR: R-MLO.dcm of PID123 is labelled R-MLO; move it to L-MLO"
    assert remove_identifiers(note, ["/data/SMITH^JANE/lat/R-MLO.dcm", "PID123"]) == \
        "POSSIBLE LATERALITY ERROR: R-MLO.dcm of … is labelled R-MLO; move it to L-MLO"
    assert all(names_a_view_only(word) for word in ("R-MLO", "0_L-CC", "R-CC_retake.dcm", "LCC", "left_cc_2"))
    # an accession, a name beside a view, CBIS-DDSM's per-file patient IDs: identifiers still
    assert not any(names_a_view_only(word) for word in ("12345", "SMITH_LCC", "Mass-Test_P_00820_LEFT_CC", "lat",
                                                        "4711235_L-CC.dcm", "1234567890-RCC.dcm", "4711235_LCC"))
    # a code review: an accession beside the view kept the whole file name, and the accession inside it
    from app.study.blinding import scrub

    said = scrub("2 images for L-CC: used 4711235_L-CC.dcm; kept aside: 0_L-CC.png", {"4711235"})
    assert "4711235" not in said and "0_L-CC.png" in said
    assert remove_identifiers("used SMITH_LCC.dcm", ["/data/x/SMITH_LCC.dcm"]) == "used …"


def test_an_identifier_set_apart_by_an_underscore_is_removed_but_not_one_inside_a_longer_word():
    """A deployer's test: the AI node's full-disk line named "ACCSECRET99_pdf.dcm", "ACCSECRET99_sr.dcm" whole
    ("_" is a word character to a regular expression), where "ACCSECRET99.pdf" lost its accession."""
    line = ("PDF failed: No space left (ACCSECRET99.pdf); ePDF failed: (ACCSECRET99_pdf.dcm); SEG failed: "
            "(ACCSECRET99_L-CC_saliency_seg.dcm); kept ACCSECRET990.dcm and XACCSECRET99")
    assert remove_identifiers(line, ["ACCSECRET99"]) == (
        "PDF failed: No space left (….pdf); ePDF failed: (…_pdf.dcm); SEG failed: (…_L-CC_saliency_seg.dcm); "
        "kept ACCSECRET990.dcm and XACCSECRET99")
