"""Issue 14, input side: each careless or hostile input gets its exact outcome.

Every case builds its table around real radiographs from tests/data (copied into
tmp_path) and runs `bpd cohort check` (or the loader behind it), asserting the exit code,
the key words of the message and which patients were excluded and why. Large inputs
(a truncated DICOM, an image over PIL's pixel limit) are made here, not committed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings

import openpyxl
import pydicom
import pytest

from core.cli.main import main
from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError

FOUR = ("no BPD", "severe", "no BPD", "severe")
JPEGS = ("IM-0115-0001.jpeg", "IM-0117-0001.jpeg", "person1000_virus_1681.jpeg",
         "person1_bacteria_1.jpeg", "person47_bacteria_229.jpeg")  # fmt: skip
PNGS = ("nih_dx_8bit.png", "nih_dx_16bit.png")


@pytest.fixture()
def site(tmp_path, images_dir):
    """A site folder with an img/ folder holding the real test radiographs."""
    root = tmp_path / "site"
    (root / "img").mkdir(parents=True)
    for name in (*JPEGS, *PNGS):
        shutil.copyfile(images_dir / name, root / "img" / name)
    return root


def write_csv(root, lines, name="cohort.csv"):
    table = root / name
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table


def bpd_table(root):
    """Seven infants, BPD grades in words; one 'mild' (data row 7)."""
    images = [*JPEGS, *PNGS]
    grades = ["no BPD", "no BPD", "no BPD", "severe", "moderate", "severe", "mild"]
    rows = [
        f"K{i + 1},img/{img},{g}" for i, (img, g) in enumerate(zip(images, grades, strict=True))
    ]
    return write_csv(root, ["patient_id,image,BPD grade", *rows])


def check(capsys, *args):
    """Run `bpd cohort check --json`; (exit code, parsed JSON or None, stderr)."""
    code = main(["cohort", "check", *map(str, args), "--json", "--resolution", "32"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def excluded(result):
    return {e["patient_id"]: e["reason"] for e in result["exclusions"]}


# ----- outcome mapping: no silent wrong labels ---------------------------------------------
def test_a_misspelt_positive_value_is_an_error_with_a_suggestion(site, studio_home, capsys):
    table = bpd_table(site)
    code, result, err = check(capsys, table, "--outcome", "BPD grade", "--positive",
                              "moderate", "sever", "--negative", "no BPD", "mild")  # fmt: skip
    assert code == 2 and result is None
    assert "--positive value 'sever' does not occur in the outcome column 'BPD grade'" in err
    assert "did you mean 'severe'?" in err
    assert "'no BPD' (3)" in err and "'mild' (1)" in err  # the values that do occur


def test_a_misspelt_negative_value_is_an_error(site, studio_home, capsys):
    code, _, err = check(capsys, bpd_table(site), "--outcome", "BPD grade", "--positive",
                         "moderate", "severe", "--negative", "no bpd", "mlid")  # fmt: skip
    assert code == 2 and "--negative value 'mlid'" in err and "did you mean 'mild'?" in err


def test_an_unmapped_value_excludes_its_patient_with_the_reason(site, studio_home, capsys):
    code, result, _ = check(capsys, bpd_table(site), "--outcome", "BPD grade",
                            "--positive", "moderate", "severe", "--negative", "no BPD")  # fmt: skip
    assert code == 0
    assert excluded(result) == {"K7": "unknown_outcome"}
    (ex,) = result["exclusions"]
    assert ex["row"] == 7 and "'mild'" in ex["message"] and "--negative-rest" in ex["message"]
    summary = result["summary"]
    assert (summary["n_positive"], summary["n_negative"]) == (3, 3)
    assert summary["negative_values"] == ["no BPD"] and summary["negative_rest"] is False


def test_negative_rest_counts_every_other_value_negative(site, studio_home, capsys):
    code, result, _ = check(capsys, bpd_table(site), "--outcome", "BPD grade",
                            "--positive", "moderate", "severe", "--negative-rest")  # fmt: skip
    assert code == 0 and excluded(result) == {}
    summary = result["summary"]
    assert (summary["n_positive"], summary["n_negative"]) == (3, 4)
    assert summary["negative_rest"] is True
    assert set(summary["negative_values"]) == {"no BPD", "mild"}


def test_positive_only_is_not_usable_and_says_how_to_fix_it(site, studio_home, capsys):
    table = bpd_table(site)
    code = main(["cohort", "check", str(table), "--outcome", "BPD grade",
                 "--positive", "moderate", "severe", "--no-decode"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 2 and "usable:     NO" in out
    assert "4 patients have an outcome value named neither positive nor negative" in out
    assert "--negative-rest" in out and "negative = (none named)" in out


# ----- XLSX workbooks with several sheets --------------------------------------------------
def _workbook(path, sheets):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


HEADER = ["patient_id", "image", "BPD grade"]


def _split_rows():
    first = [
        ["K1", f"img/{JPEGS[0]}", "no BPD"],
        ["K2", f"img/{JPEGS[1]}", "severe"],
        ["K3", f"img/{JPEGS[2]}", "no BPD"],
        ["K4", f"img/{JPEGS[3]}", "severe"],
    ]
    second = [["K5", f"img/{JPEGS[4]}", "no BPD"], ["K6", f"img/{PNGS[0]}", "severe"],
              ["K7", f"img/{PNGS[1]}", "no BPD"]]  # fmt: skip
    return first, second


MAP = ("--outcome", "BPD grade", "--positive", "moderate", "severe", "--negative", "no BPD")
# For tables without a 'moderate' infant: a named value must occur in the column.
SEVERE = ("--outcome", "BPD grade", "--positive", "severe", "--negative", "no BPD")


def test_two_data_sheets_are_refused_not_guessed(site, studio_home, capsys):
    first, second = _split_rows()
    book = _workbook(site / "cohort.xlsx", {"2023": [HEADER, *first], "2024": [HEADER, *second]})
    code, result, err = check(capsys, book, *SEVERE)
    assert code == 2 and result is None
    assert "2 sheets that look like cohort data ('2023', '2024')" in err and "--sheet" in err


@pytest.mark.parametrize(
    ("sheet", "read", "n_patients", "exit_code"),  # 2024 alone: one severe infant, unusable
    [("2024", "2024", 3, 2), ("1", "2023", 4, 0), ("2", "2024", 3, 2), ("2023", "2023", 4, 0)],
)
def test_sheet_is_chosen_by_name_or_position_and_recorded(site, studio_home, capsys, sheet,
                                                          read, n_patients, exit_code):  # fmt: skip
    first, second = _split_rows()
    book = _workbook(site / "cohort.xlsx", {"2023": [HEADER, *first], "2024": [HEADER, *second]})
    code, result, _ = check(capsys, book, *SEVERE, "--sheet", sheet)
    assert result["summary"]["sheet"] == read  # what cohort.json records
    assert (code, result["summary"]["n_patients"], excluded(result)) == (exit_code, n_patients, {})


def test_a_notes_sheet_beside_the_data_is_skipped_and_the_sheet_named(site, studio_home, capsys):
    first, second = _split_rows()
    book = _workbook(
        site / "cohort.xlsx",
        {"Legende": [["BPD grade: NIH 2001 definition"], ["mild / moderate / severe"]],
         "Daten": [HEADER, *first, *second]},
    )  # fmt: skip
    code = main(["cohort", "check", str(book), *SEVERE, "--no-decode"])
    out = capsys.readouterr().out
    assert code == 0 and "sheet:      Daten" in out and "patients:   7" in out


def test_an_unknown_sheet_lists_the_sheets(site, studio_home, capsys):
    first, _ = _split_rows()
    book = _workbook(site / "cohort.xlsx", {"Daten": [HEADER, *first]})
    code, _, err = check(capsys, book, *SEVERE, "--sheet", "Data")
    assert code == 2 and "no sheet 'Data'" in err and "'Daten'" in err


# ----- duplicated headers ------------------------------------------------------------------
def test_a_duplicated_outcome_header_is_an_error_naming_both_columns(site, studio_home, capsys):
    table = write_csv(site, ["patient_id,diagnosis,image,diagnosis",
                             f"K1,no BPD,img/{JPEGS[0]},severe",
                             f"K2,severe,img/{JPEGS[1]},severe"])  # fmt: skip
    code, _, err = check(capsys, table, "--positive", "severe", "--negative", "no BPD")
    assert code == 2
    assert "column 2 (B) and column 4 (D) both have the header 'diagnosis'" in err
    assert "diagnosis.1" not in err


def test_a_repeated_header_keeps_both_columns_under_distinct_names(site):
    from core.cohort.table import read_table

    table = write_csv(site, ["id; diagnosis ;image;diagnosis", "K1;a;x.png;b"])
    df = read_table(table)
    assert list(df.columns) == ["id", "diagnosis", "image", "diagnosis [column 4 (D)]"]
    assert df.attrs["duplicate_headers"] == {"diagnosis": ["column 2 (B)", "column 4 (D)"]}
    assert (df.loc[1, "diagnosis"], df.loc[1, "diagnosis [column 4 (D)]"]) == ("a", "b")


def test_a_duplicated_unused_header_is_a_warning_naming_both(site, studio_home, capsys):
    lines = ["patient_id,image,BPD grade,note,note"]
    lines += [f"K{i},img/{img},{g},a,b" for i, (img, g) in
              enumerate(zip(JPEGS[:4], FOUR, strict=True), 1)]  # fmt: skip
    code, result, _ = check(capsys, write_csv(site, lines), *SEVERE)
    assert code == 0 and result["summary"]["n_patients"] == 4
    (dup,) = [p for p in result["problems"] if p["reason"] == "duplicate_header"]
    assert dup["severity"] == "warning"
    assert "column 4 (D) and column 5 (E) both have the header 'note'" in dup["message"]


# ----- a conflicting row that reuses another patient's image ------------------------------
def test_a_conflicting_row_with_anothers_image_does_not_exclude_the_owner(site, studio_home,
                                                                          capsys):  # fmt: skip
    lines = [
        "patient_id,image,BPD grade",
        f"K2,img/{JPEGS[1]},severe",  # 1
        f"K2,img/{JPEGS[0]},no BPD",  # 2 K2's conflicting row names K1's radiograph
        f"K1,img/{JPEGS[0]},no BPD",  # 3 the valid owner
        f"K3,img/{JPEGS[2]},severe",  # 4
        f"K4,img/{JPEGS[3]},no BPD",  # 5
        f"K5,img/{JPEGS[4]},severe",  # 6
    ]
    code, result, _ = check(capsys, write_csv(site, lines), *SEVERE)
    assert code == 0
    assert excluded(result) == {"K2": "conflicting_outcomes"}
    (k2,) = result["exclusions"]
    assert "data rows 1 ('severe'), 2 ('no BPD')" in k2["message"]
    assert result["summary"]["n_patients"] == 4  # K1 kept, with its image
    (dup,) = [p for p in result["problems"] if p["reason"] == "duplicate_image"]
    assert dup["row"] == 2 and dup["patient_id"] == "K2" and dup["severity"] == "warning"
    assert "data row 2 (patient K2, excluded)" in dup["message"]
    assert "data row 3 gives to patient K1" in dup["message"]


# ----- symbolic links out of the images root -----------------------------------------------
def test_links_inside_the_root_that_point_outside_are_refused(site, tmp_path, images_dir,
                                                              studio_home, capsys):  # fmt: skip
    elsewhere = tmp_path / "other-study"
    elsewhere.mkdir()
    shutil.copyfile(images_dir / PNGS[0], elsewhere / "secret.png")
    os.symlink(elsewhere / "secret.png", site / "img" / "linked.png")  # a file link
    os.symlink(elsewhere, site / "img" / "linked_dir")  # a folder link
    os.symlink(site / "img" / JPEGS[4], site / "img" / "inner_link.jpeg")  # stays inside
    lines = ["patient_id,image,BPD grade",
             f"K1,img/{JPEGS[0]},no BPD", f"K2,img/{JPEGS[1]},severe",
             f"K3,img/{JPEGS[2]},no BPD", f"K4,img/{JPEGS[3]},severe",
             "K5,img/linked.png,severe", "K6,img/linked_dir/secret.png,no BPD",
             "K7,img/inner_link.jpeg,severe"]  # fmt: skip
    code, result, _ = check(capsys, write_csv(site, lines), *SEVERE)
    assert code == 0
    assert excluded(result) == {"K5": "no_images", "K6": "no_images"}
    outside = [p for p in result["problems"] if p["reason"] == "outside_images_root"]
    assert [p["row"] for p in outside] == [5, 6]
    assert all("symbolic link" in p["message"] for p in outside)
    assert result["summary"]["n_patients"] == 5  # the link that stays inside is fine


def test_a_linked_patient_folder_is_refused_in_pattern_mode(site, tmp_path, images_dir):
    elsewhere = tmp_path / "other-study" / "K9"
    elsewhere.mkdir(parents=True)
    shutil.copyfile(images_dir / PNGS[0], elsewhere / "day1.png")
    xrays = site / "xrays"
    for pid, img in (("K1", JPEGS[0]), ("K2", JPEGS[1])):
        (xrays / pid).mkdir(parents=True)
        shutil.copyfile(images_dir / img, xrays / pid / "day1.jpeg")
    os.symlink(elsewhere, xrays / "K9")
    table = write_csv(site, ["patient_id,BPD grade", "K1,no BPD", "K2,severe", "K9,severe"])
    cohort = load_cohort(table, images_root=xrays, positive=["severe"], negative=["no BPD"],
                         image_pattern="{patient_id}/*")  # fmt: skip
    assert [p.patient_id for p in cohort.patients] == ["K1", "K2"]
    assert {e.patient_id: e.reason for e in cohort.exclusions} == {"K9": "no_images"}
    (problem,) = [p for p in cohort.problems if p.reason == "outside_images_root"]
    assert problem.patient_id == "K9" and "symbolic link" in problem.message


# ----- DICOM header values are never echoed unless they are standard codes -----------------
def test_unexpected_modality_and_body_part_text_is_not_echoed(site, dicom_dir, studio_home,
                                                              capsys):  # fmt: skip
    secret = "Mustermann^Erika 1970"
    with warnings.catch_warnings():  # pydicom warns that free text is not a code: the point
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(dicom_dir / "nih_dx_bodypart_ribcage.dcm")
        ds.Modality = secret[:16]  # a free-text value where a code belongs
        ds.save_as(site / "img" / "odd_modality.dcm")
        ds = pydicom.dcmread(dicom_dir / "nih_dx_bodypart_ribcage.dcm")
        ds.BodyPartExamined = secret
        ds.save_as(site / "img" / "odd_bodypart.dcm")
    shutil.copyfile(dicom_dir / "nih_dx_modality_ct.dcm", site / "img" / "ct.dcm")
    lines = ["patient_id,image,BPD grade",
             f"K1,img/{JPEGS[0]},no BPD", f"K2,img/{JPEGS[1]},severe",
             f"K3,img/{JPEGS[2]},no BPD", "K4,img/odd_bodypart.dcm,severe",
             "K5,img/odd_modality.dcm,severe", "K6,img/ct.dcm,no BPD"]  # fmt: skip
    code, result, err = check(capsys, write_csv(site, lines), *SEVERE)
    assert code == 0
    assert excluded(result) == {"K5": "no_usable_images", "K6": "no_usable_images"}
    by_row = {p["row"]: p for p in result["problems"]}
    assert by_row[4]["reason"] == "body_part_not_chest" and by_row[4]["severity"] == "warning"
    assert "BodyPartExamined is an unexpected value (not shown)" in by_row[4]["message"]
    assert by_row[5]["reason"] == "not_a_radiograph"
    assert "Modality is an unexpected value (not shown)" in by_row[5]["message"]
    assert "DICOM Modality is CT;" in by_row[6]["message"]  # a standard code is named
    text = json.dumps(result) + err
    assert "Mustermann" not in text and "1970" not in text


# ----- damaged and oversized images --------------------------------------------------------
def test_a_truncated_dicom_is_damaged_pixel_data_not_no_pixel_data(site, dicom_dir, studio_home,
                                                                   capsys):  # fmt: skip
    j2k = (dicom_dir / "dx256_jpeg2000.dcm").read_bytes()
    native = (dicom_dir / "dx256_explicit_le.dcm").read_bytes()
    (site / "img" / "cut_j2k.dcm").write_bytes(j2k[: len(j2k) - 4000])
    (site / "img" / "cut_native.dcm").write_bytes(native[: len(native) - 4000])
    lines = ["patient_id,image,BPD grade",
             f"K1,img/{JPEGS[0]},no BPD", f"K2,img/{JPEGS[1]},severe",
             f"K3,img/{JPEGS[2]},no BPD", f"K4,img/{JPEGS[3]},severe",
             "K5,img/cut_j2k.dcm,severe", "K6,img/cut_native.dcm,no BPD"]  # fmt: skip
    code, result, err = check(capsys, write_csv(site, lines), *SEVERE)
    assert code == 0
    assert excluded(result) == {"K5": "no_usable_images", "K6": "no_usable_images"}
    by_row = {p["row"]: p for p in result["problems"]}
    for row in (5, 6):
        assert by_row[row]["reason"] == "damaged_pixel_data"
        assert "truncated" in by_row[row]["message"] and "copy the file again" in by_row[row][
            "message"]  # fmt: skip
        assert "no pixel data" not in by_row[row]["message"]
    assert "UserWarning" not in err and "End of file" not in err


def test_pil_pixel_limit_is_a_warning_or_a_problem_never_a_raw_warning(site, studio_home, capfd,
                                                                        monkeypatch):  # fmt: skip
    from PIL import Image

    # The 8-bit PNG has 256 x 256 pixels: over the limit warns, over twice the limit refuses.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 256 // 2 - 1)
    lines = ["patient_id,image,BPD grade",
             f"K1,img/{JPEGS[0]},no BPD", f"K2,img/{JPEGS[1]},severe",
             f"K3,img/{JPEGS[2]},no BPD", f"K4,img/{JPEGS[3]},severe",
             f"K5,img/{PNGS[0]},severe"]  # fmt: skip
    table = write_csv(site, lines)
    code = main(["cohort", "check", str(table), *SEVERE, "--json", "--resolution", "32"])
    out, err = capfd.readouterr()
    result = json.loads(out)
    assert code == 0 and excluded(result) == {"K5": "no_usable_images"}
    (big,) = [p for p in result["problems"] if p["row"] == 5]
    assert big["reason"] == "image_too_large" and "too large to decode safely" in big["message"]
    assert "DecompressionBomb" not in out + err

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 256 - 1)
    code = main(["cohort", "check", str(table), *SEVERE, "--json", "--resolution", "16"])
    out, err = capfd.readouterr()
    result = json.loads(out)
    assert code == 0 and excluded(result) == {}
    (warned,) = [p for p in result["problems"] if p["row"] == 5]
    assert warned["reason"] == "large_image" and warned["severity"] == "warning"
    assert PNGS[0] in warned["message"] and "256 x 256 pixels" in warned["message"]
    assert "DecompressionBomb" not in out + err


# ----- the image cache cannot be written ----------------------------------------------------
def _usable_table(site):
    lines = ["patient_id,image,BPD grade"]
    lines += [f"K{i},img/{img},{g}" for i, (img, g) in
              enumerate(zip(JPEGS[:4], FOUR, strict=True), 1)]  # fmt: skip
    return write_csv(site, lines)


def test_a_cache_folder_that_cannot_be_created_is_a_clear_error(site, studio_home, capsys):
    studio_home.mkdir(parents=True)
    (studio_home / "cache").write_text("a file where the cache folder belongs")
    code = main(["cohort", "check", str(_usable_table(site)), *SEVERE, "--resolution", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"cannot write the image cache in {studio_home / 'cache'}" in err
    assert "BPD_STUDIO_HOME" in err


def test_a_full_disk_while_caching_is_a_clear_error(site, studio_home, capsys, monkeypatch):
    import core.cohort.cache as cache_module

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module, "atomic_write_bytes", disk_full)
    code = main(["cohort", "check", str(_usable_table(site)), *SEVERE, "--resolution", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "cannot write the image cache" in err and "No space left on device" in err


def test_cache_errors_in_decoding_processes_stop_the_import_at_once(studio_home, capsys):
    """The demo cohort through a pool of 2 processes; every entry's folder is blocked by
    a file, so each worker's put fails: the first failure ends the import with exit 2."""
    from core import paths

    blocked = studio_home / "cache" / "pixels" / PreprocessConfig(resolution=32).key()
    blocked.mkdir(parents=True)
    for i in range(256):  # entries live in pixels/<key>/<first two hex digits>/
        (blocked / f"{i:02x}").write_text("not a folder")
    code = main(["cohort", "check", str(paths.demo_cohort_table()), "--positive", "PNEUMONIA",
                 "--negative", "NORMAL", "--resolution", "32", "--workers", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("cannot write the image cache") == 1
    assert "a file stands where one of its folders belongs" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_is_a_clear_error(site, tmp_path):
    cache_root = tmp_path / "ro-cache"
    cache_root.mkdir()
    cache_root.chmod(0o500)
    try:
        cohort = load_cohort(_usable_table(site), positive=["severe"], negative=["no BPD"])
        with pytest.raises(InputError, match="cannot write the image cache"):
            prepare_images(cohort, PreprocessConfig(resolution=32), ImageCache(cache_root))
    finally:
        cache_root.chmod(0o700)
