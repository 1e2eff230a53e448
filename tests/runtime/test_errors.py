from mutual_seg.errors import DataError, subject_error


def test_subject_error_is_one_line_and_names_subject_file_and_fix():
    err = subject_error("UCSF-PDGM-0004", "/d/UCSF-PDGM-0004_FLAIR.nii.gz", "file is\nmissing", "add it")
    text = str(err)
    assert isinstance(err, DataError)
    assert "\n" not in text
    assert text == "subject UCSF-PDGM-0004, file /d/UCSF-PDGM-0004_FLAIR.nii.gz: file is missing; add it"
