"""Reading cohort tables as sites write them, and guessing what the columns mean."""

import pandas as pd
import pytest

from core.cohort.clinical import parse_birth_weight, parse_gestational_age, parse_irds, parse_sex
from core.cohort.mapping import (
    ColumnMapping,
    OutcomeMapping,
    guess_mapping,
    normalize_value,
    outcome_value_counts,
)
from core.cohort.table import read_table
from core.errors import InputError

ROWS = [
    ["Pat-ID", "Bilddatei", "Gestationsalter", "Geburtsgewicht", "BPD", "Geschlecht"],
    ["K-001", "a.png", "27+3", "850", "schwer", "männlich"],
    ["K-002", "b.png", "25+6", "640", "keine Angabe", "weiblich"],
]


def write(path, rows, delimiter=",", encoding="utf-8"):
    text = "\n".join(delimiter.join(r) for r in rows) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_any_delimiter(tmp_path, delimiter):
    df = read_table(write(tmp_path / "t.csv", ROWS, delimiter))
    assert list(df.columns) == ROWS[0]
    assert df.loc[2, "BPD"] == "keine Angabe"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
def test_encodings_with_and_without_bom(tmp_path, encoding):
    df = read_table(write(tmp_path / "t.csv", ROWS, ";", encoding))
    assert df.columns[0] == "Pat-ID"  # no BOM glued to the first header
    assert df.loc[1, "Geschlecht"] == "männlich"


def test_decimal_commas_do_not_confuse_the_delimiter(tmp_path):
    rows = [["id", "ga", "bw", "bpd"], ["1", "27,5", "850", "0"], ["2", "26,1", "700", "2"]]
    df = read_table(write(tmp_path / "t.csv", rows, ";"))
    assert df.loc[1, "ga"] == "27,5"


def test_xlsx(tmp_path):
    frame = pd.DataFrame(
        {"patient_id": ["007", "008"], "image": ["a.png", "b.png"], "SSW": [27.5, 26]}
    )
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    df = read_table(tmp_path / "t.xlsx")
    assert list(df["patient_id"]) == ["007", "008"]  # text ids keep leading zeros
    assert df.loc[1, "SSW"] == "27.5"


def test_rows_keep_their_numbers_past_blank_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id;bpd\n1;0\n\n;\n4;2\n", encoding="utf-8")
    df = read_table(path)
    assert list(df.index) == [1, 4]  # data rows, as the user sees them


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"id,bpd\n", "no data rows"), (b"\x00\x01\x02\x00abc", "binary")],
)
def test_unreadable_tables_raise_input_error(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_table(path)


def test_missing_table(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_table(tmp_path / "nope.csv")


def test_guess_mapping_from_german_headers():
    mapping = guess_mapping([*ROWS[0], "IRDS Grad", "Name", "Geburtsdatum"])
    assert mapping == ColumnMapping(
        patient_id="Pat-ID",
        image="Bilddatei",
        outcome="BPD",
        gestational_age="Gestationsalter",
        birth_weight="Geburtsgewicht",
        irds="IRDS Grad",
        sex="Geschlecht",
    )
    assert ColumnMapping.from_json(mapping.to_json()) == mapping


def test_guess_mapping_english_and_ssw():
    mapping = guess_mapping(["Patient ID", "image_path", "SSW", "birth weight (g)", "outcome"])
    assert (mapping.patient_id, mapping.image, mapping.outcome) == (
        "Patient ID",
        "image_path",
        "outcome",
    )
    assert mapping.gestational_age == "SSW" and mapping.birth_weight == "birth weight (g)"


def test_guess_mapping_german_abbreviations():
    mapping = guess_mapping(["Pat-Nr", "SSW", "Geburtsgewicht", "IRDS", "Geschlecht", "BPD-Grad"])
    assert (mapping.patient_id, mapping.outcome, mapping.image) == ("Pat-Nr", "BPD-Grad", None)
    assert mapping.irds == "IRDS" and mapping.sex == "Geschlecht"


def test_patient_name_is_never_guessed_as_id():
    assert guess_mapping(["Patientenname", "bpd"]).patient_id == ""


def test_outcome_mapping_is_case_space_and_number_insensitive():
    words = OutcomeMapping(positive=("moderate", "severe"), negative=("no BPD", "mild"))
    assert words.classify("  Severe ") == 1 and words.classify("NO  bpd") == 0
    assert words.classify("keine Angabe") is None and words.classify("") is None
    grades = OutcomeMapping(positive=("2", "3"), negative=("0", "1"))
    assert [grades.classify(v) for v in ("0", "1.0", " 2", "3", "4")] == [0, 0, 1, 1, None]
    assert OutcomeMapping.from_json(grades.to_json()) == grades
    unnamed = OutcomeMapping(positive=("PNEUMONIA",))  # an unnamed value is not negative
    assert unnamed.classify("NORMAL") is None
    rest = OutcomeMapping(positive=("PNEUMONIA",), negative_rest=True)
    assert rest.classify("NORMAL") == 0 and rest.classify("unknown") is None
    assert OutcomeMapping.from_json(rest.to_json()) == rest
    # Stored before the flag existed: an empty negative list meant "the rest".
    assert OutcomeMapping.from_json({"positive": ["PNEUMONIA"], "negative": []}) == rest
    with pytest.raises(ValueError):
        OutcomeMapping(positive=("2",), negative=("2.0",))
    assert normalize_value(" Moderate  BPD ") == "moderate bpd"


def test_outcome_value_counts():
    df = pd.DataFrame({"bpd": ["2", "0", "2", " 2", ""]})
    assert outcome_value_counts(df, "bpd") == {"2": 3, "": 1, "0": 1}


@pytest.mark.parametrize(
    ("text", "weeks"),
    [
        ("27+3", 27 + 3 / 7),
        ("27 + 3/7", 27 + 3 / 7),
        ("25+0 SSW", 25.0),
        ("27,5", 27.5),
        ("26w4d", 26 + 4 / 7),
    ],
)
def test_gestational_age(text, weeks):
    assert parse_gestational_age(text) == pytest.approx(weeks)


@pytest.mark.parametrize("text", ["27+9", "abc", "270", "2+1"])
def test_bad_gestational_age(text):
    with pytest.raises(ValueError):
        parse_gestational_age(text)


@pytest.mark.parametrize(
    ("text", "grade"),
    [("0", 0), ("3", 3), ("III", 3), ("iv", 4), ("Grad II", 2), ("IRDS I°", 1), ("kein", 0)],
)
def test_irds(text, grade):
    assert parse_irds(text) == grade


@pytest.mark.parametrize("text", ["V", "5", "schwer"])
def test_bad_irds(text):
    with pytest.raises(ValueError):
        parse_irds(text)


def test_birth_weight_and_sex():
    assert parse_birth_weight("850") == 850
    assert parse_birth_weight("850 g") == 850
    assert parse_birth_weight("0,85 kg") == pytest.approx(850)
    assert parse_birth_weight("1.234 g") == 1234
    with pytest.raises(ValueError):
        parse_birth_weight("85000")
    assert [parse_sex(s) for s in ("m", "W", "female", "männlich")] == ["M", "F", "F", "M"]
    with pytest.raises(ValueError):
        parse_sex("x")
