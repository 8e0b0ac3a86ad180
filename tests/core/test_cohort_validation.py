"""A table with every kind of problem: each one is reported with its reason and row.

Tables are built in tmp_path around real radiographs from tests/data.
"""

import shutil

import pytest

from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.mapping import ColumnMapping
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig
from core.errors import InputError

HEADER = "Patient;Bild;BPD Grad;SSW;IRDS"
# (data row) patient ; image ; BPD grade (positive 2 3, negative 0 1) ; GA ; IRDS
LINES = [
    "P1;img/IM-0115-0001.jpeg;0;27+3;II",  # 1 fine
    "P1;img/IM-0115-0001.jpeg;0;;",  # 2 same path again -> duplicate_image
    "P2;img/person1_bacteria_1.jpeg;3;abc;IV",  # 3 bad GA -> bad_clinical_value (warning)
    "P3;img/missing.png;2;26+1;",  # 4 missing_file -> P3 no_images
    "P4;../outside.jpeg;2;;",  # 5 outside_images_root -> P4 no_images
    "P5;img/IM-0117-0001.jpeg;0;;",  # 6
    "P5;img/person1000_virus_1681.jpeg;3;;",  # 7 conflicting_outcomes (P5)
    "P6;img/nih_dx_8bit.png;keine Angabe;;",  # 8 outcome_not_recorded
    "P7;img/nih_dx_16bit.png;moderat;;",  # 9 unknown_outcome
    ";img/person47_bacteria_229.jpeg;2;;",  # 10 missing_patient_id
    "P8;;2;;",  # 11 missing_image_path -> P8 no_images
    "P9;img/garbage.png;2;;",  # 12 unsupported_format -> P9 no_usable_images
    "P10;img/ct.dcm;2;;",  # 13 not_a_radiograph -> P10 no_usable_images
    "P11;img/ribcage.dcm;3;;",  # 14 body_part_not_chest (warning), kept
    "P12;img/copy_of_0115.jpeg;1;;",  # 15 same content as row 1, other patient
    "P13;img/person47_bacteria_229.jpeg;;;",  # 16 missing_outcome
    "P14;img/nih.dcm;2;;",  # 17 fine
    "P15;img/dx256.dcm;0;;",  # 18 fine
    "P16;img/cut.jpeg;2;;",  # 19 unreadable_image -> P16 no_usable_images
]


@pytest.fixture()
def messy_table(tmp_path, images_dir, dicom_dir):
    root = tmp_path / "site"
    img = root / "img"
    img.mkdir(parents=True)
    for f in images_dir.iterdir():
        shutil.copyfile(f, img / f.name)
    shutil.copyfile(images_dir / "IM-0115-0001.jpeg", img / "copy_of_0115.jpeg")
    shutil.copyfile(dicom_dir / "nih_dx_modality_ct.dcm", img / "ct.dcm")
    shutil.copyfile(dicom_dir / "nih_dx_bodypart_ribcage.dcm", img / "ribcage.dcm")
    shutil.copyfile(dicom_dir / "nih_dx_no_finding.dcm", img / "nih.dcm")
    shutil.copyfile(dicom_dir / "dx256_jpegls.dcm", img / "dx256.dcm")
    (img / "garbage.png").write_text("not an image")
    (img / "cut.jpeg").write_bytes((images_dir / "IM-0117-0001.jpeg").read_bytes()[:300])
    shutil.copyfile(images_dir / "IM-0117-0001.jpeg", tmp_path / "outside.jpeg")
    table = root / "cohort.csv"
    table.write_text("\n".join([HEADER, *LINES]) + "\n", encoding="utf-8")
    return table


def load(table):
    return load_cohort(table, positive=["2", "3"], negative=["0", "1"])


def by_reason(items):
    out = {}
    for item in items:
        out.setdefault(item.reason, []).append(item)
    return out


def test_table_level_problems_have_reason_and_row(messy_table):
    cohort = load(messy_table)
    problems = by_reason(cohort.problems)
    assert [p.row for p in problems["duplicate_image"]] == [2]
    assert [p.row for p in problems["missing_file"]] == [4]
    assert [p.row for p in problems["outside_images_root"]] == [5]
    assert [p.row for p in problems["missing_patient_id"]] == [10]
    assert [p.row for p in problems["missing_image_path"]] == [11]
    (bad_ga,) = problems["bad_clinical_value"]
    assert (bad_ga.row, bad_ga.severity, bad_ga.patient_id) == (3, "warning", "P2")
    assert "data row 3" in bad_ga.message and "SSW" in bad_ga.message
    assert problems["missing_file"][0].file.endswith("missing.png")

    exclusions = {e.patient_id: e for e in cohort.exclusions}
    assert exclusions["P5"].reason == "conflicting_outcomes"
    assert "data rows 6 ('0'), 7 ('3')" in exclusions["P5"].message
    assert exclusions["P6"].reason == "outcome_not_recorded"
    assert exclusions["P7"].reason == "unknown_outcome" and "moderat" in exclusions["P7"].message
    assert exclusions["P13"].reason == "missing_outcome"
    assert {exclusions[p].reason for p in ("P3", "P4", "P8")} == {"no_images"}
    assert exclusions["P3"].row == 4


def test_clinical_values_are_parsed(messy_table):
    cohort = load(messy_table)
    p1 = next(p for p in cohort.patients if p.patient_id == "P1")
    assert p1.clinical.gestational_age_weeks == pytest.approx(27 + 3 / 7)
    assert p1.clinical.irds_grade == 2
    assert len(p1.images) == 1 and p1.images[0].row == 1
    p2 = next(p for p in cohort.patients if p.patient_id == "P2")
    assert p2.clinical.gestational_age_weeks is None and p2.clinical.irds_grade == 4


def test_decoding_problems_and_patients_left_without_images(messy_table, tmp_path):
    cohort = load(messy_table)
    prepared = prepare_images(cohort, PreprocessConfig(resolution=32), ImageCache(tmp_path / "c"))
    final = prepared.cohort
    problems = by_reason(final.problems)
    assert [p.row for p in problems["unsupported_format"]] == [12]
    assert [p.row for p in problems["not_a_radiograph"]] == [13]
    assert [p.row for p in problems["unreadable_image"]] == [19]
    (warned,) = problems["body_part_not_chest"]
    assert warned.severity == "warning" and warned.row == 14
    content_dups = [p for p in problems["duplicate_image"] if p.row == 15]
    assert content_dups and content_dups[0].severity == "error" and "P1" in content_dups[0].message
    exclusions = {e.patient_id: e.reason for e in final.exclusions}
    for pid in ("P9", "P10", "P12", "P16"):
        assert exclusions[pid] == "no_usable_images"
    kept = {p.patient_id: p.label for p in final.patients}
    assert kept == {"P1": 0, "P2": 1, "P11": 1, "P14": 1, "P15": 0}
    assert final.is_usable() and final.n_images == 5
    assert prepared.pixels.shape == (5, 32, 32)
    assert list(prepared.labels) == [0, 1, 1, 1, 0]
    assert all(len(im.sha256) == 64 for p in final.patients for im in p.images)
    # Counts only in the summary: nothing else leaves the cohort for a run folder.
    summary = final.summary()
    assert summary["n_patients"] == 5 and summary["excluded_by_reason"]["no_usable_images"] == 4


def test_negative_rest_takes_every_other_recorded_value(messy_table):
    cohort = load_cohort(messy_table, positive=["2", "3"], negative_rest=True)
    assert "0" in cohort.negative_values and "1" in cohort.negative_values
    assert cohort.summary()["negative_rest"] is True
    exclusions = {e.patient_id: e.reason for e in cohort.exclusions}
    assert exclusions["P6"] == "outcome_not_recorded"
    assert "P7" not in exclusions  # "moderat" counts as negative only when asked for


def test_without_negatives_unnamed_values_exclude_their_patients(messy_table):
    cohort = load_cohort(messy_table, positive=["2", "3"])
    assert cohort.negative_values == () and cohort.n_negative == 0
    exclusions = {e.patient_id: e for e in cohort.exclusions}
    for pid in ("P1", "P7", "P15"):  # 0, moderat, 0: named neither positive nor negative
        assert exclusions[pid].reason == "unknown_outcome"
        assert "--negative-rest" in exclusions[pid].message


def test_positive_values_are_required_and_listed(messy_table):
    with pytest.raises(InputError, match=r"'BPD Grad'.*'0' \(\d+\)"):
        load_cohort(messy_table)


def test_misnamed_outcome_value_is_an_error(messy_table):
    with pytest.raises(InputError, match=r"--positive value 'moderate' does not occur.*"
                       r"'BPD Grad' \(did you mean 'moderat'\?\)"):  # fmt: skip
        load_cohort(messy_table, positive=["2", "3", "moderate"], negative=["0", "1"])


def test_unknown_column_is_an_input_error(messy_table):
    with pytest.raises(InputError, match="'diagnosis' not in the table"):
        load_cohort(messy_table, outcome_column="diagnosis", positive=["2"])


def test_one_row_per_patient_with_file_pattern(tmp_path, images_dir):
    root = tmp_path / "xrays"
    root.mkdir()
    shutil.copyfile(images_dir / "nih_dx_8bit.png", root / "K1_day1.png")
    shutil.copyfile(images_dir / "nih_dx_16bit.png", root / "K1_day1_repeat.png")
    shutil.copyfile(images_dir / "IM-0117-0001.jpeg", root / "K2_ap.jpeg")
    (root / "K3").mkdir()  # folder per patient
    shutil.copyfile(images_dir / "person1_bacteria_1.jpeg", root / "K3" / "0001.jpeg")
    (root / "K3" / "Thumbs.db").write_bytes(b"junk")
    table = tmp_path / "patients.csv"
    table.write_text(
        "Fallnummer,Geburtsgewicht,BPD\n"
        "K1,850 g,schwer\nK2,700,keine BPD\nK3,640,mild\nK4,900,schwer\n",
        encoding="utf-8",
    )
    mapping = ColumnMapping(patient_id="Fallnummer", outcome="BPD", birth_weight="Geburtsgewicht")
    cohort = load_cohort(
        table,
        images_root=root,
        mapping=mapping,
        positive=["schwer"],
        negative=["keine BPD", "mild"],
    )
    images = {p.patient_id: [i.path.name for i in p.images] for p in cohort.patients}
    assert images == {
        "K1": ["K1_day1.png", "K1_day1_repeat.png"],
        "K2": ["K2_ap.jpeg"],
        "K3": ["0001.jpeg"],
    }
    assert cohort.patients[0].clinical.birth_weight_g == 850
    (k4,) = cohort.exclusions
    assert (k4.patient_id, k4.reason, k4.row) == ("K4", "no_images", 4)

    png_only = load_cohort(
        table,
        images_root=root,
        mapping=mapping,
        positive=["schwer"],
        negative=["keine BPD", "mild"],
        image_pattern="{patient_id}_*.png",
    )
    assert [p.patient_id for p in png_only.patients] == ["K1"]
    assert {e.patient_id for e in png_only.exclusions} == {"K2", "K3", "K4"}


def test_pattern_and_image_column_together_is_an_input_error(messy_table):
    mapping = ColumnMapping(patient_id="Patient", image="Bild", outcome="BPD Grad")
    with pytest.raises(InputError, match="either an image column"):
        load_cohort(messy_table, mapping=mapping, positive=["2"], image_pattern="{patient_id}_*")
    guessed = load_cohort(messy_table, positive=["2"], image_pattern="{patient_id}_*")
    assert guessed.n_patients == 0  # the guessed image column gave way to the pattern
    assert {e.reason for e in guessed.exclusions} >= {"no_images"}
