"""Which column holds what, and which outcome values count as positive or negative.

Guesses come from header names in English and German; the user can always override.
Outcome values are compared case- and whitespace-insensitively, and numbers by value
("2", "2.0" and " 2 " are the same grade).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing pandas costs every bpd command ~0.4 s
    import pandas as pd

# Written for "not recorded" in real tables; such a patient is excluded with that reason.
NOT_RECORDED = {
    "", "keine angabe", "k.a.", "k. a.", "ka", "n/a", "na", "nan", "none", "null", "unknown",
    "unbekannt", "missing", "fehlt", "not recorded", "-", "--", "?", "nicht erhoben",
}  # fmt: skip

# Header names (normalised: lower case, only letters and digits), best first.
COLUMN_HINTS: dict[str, tuple[str, ...]] = {
    "patient_id": (
        "patientid", "patid", "pid", "patient", "patientennummer", "patientnr", "patnr",
        "patnummer", "patientennr", "fallnummer",
        "fallnr", "caseid", "case", "subjectid", "subject", "studienid", "studyid",
        "pseudonym", "id",
    ),
    "image": (
        "image", "imagepath", "imagefile", "file", "filename", "filepath", "path", "bild",
        "bilddatei", "datei", "dateiname", "pfad", "xray", "roentgen", "röntgen",
        "röntgenbild", "dicom",
    ),
    "outcome": (
        "bpd", "bpdgrade", "bpdgrad", "bpdschweregrad", "outcome", "label", "diagnosis",
        "diagnose", "target", "class", "klasse", "endpunkt",
    ),
    "gestational_age": (
        "gestationalage", "gestationsalter", "gestationalter", "ga", "ssw",
        "schwangerschaftswoche", "gaweeks", "gestation",
    ),
    "birth_weight": ("birthweight", "geburtsgewicht", "bw", "gebgewicht", "weight", "gewicht"),
    "irds": ("irds", "irdsgrade", "irdsgrad", "rds", "rdsgrade"),
    "sex": ("sex", "gender", "geschlecht"),
}  # fmt: skip
# Never guessed as the patient id: identifying or unrelated columns.
NOT_AN_ID = ("name", "geburt", "birth", "date", "datum", "dob")


def _norm_header(name: str) -> str:
    return re.sub(r"[^0-9a-zäöüß]", "", str(name).lower())


def normalize_value(value: Any) -> str:
    """Outcome value as compared: trimmed, case-folded, inner spaces collapsed, 2.0 -> 2."""
    return _normalize(str(value if value is not None else ""))


@functools.lru_cache(maxsize=4096)  # a column holds few distinct values, many times over
def _normalize(text: str) -> str:
    s = re.sub(r"\s+", " ", text).strip().casefold()
    try:
        number = float(s.replace(",", "."))
    except ValueError:
        return s
    return str(int(number)) if number.is_integer() else repr(number)


def is_not_recorded(value: Any) -> bool:
    return normalize_value(value) in NOT_RECORDED


@dataclass(frozen=True)
class ColumnMapping:
    patient_id: str
    image: str | None = None  # None: images found by a pattern (one row per patient)
    outcome: str = ""  # "" = not chosen yet
    gestational_age: str | None = None
    birth_weight: str | None = None
    irds: str | None = None
    sex: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnMapping:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def clinical_columns(self) -> dict[str, str]:
        pairs = {
            "gestational_age": self.gestational_age,
            "birth_weight": self.birth_weight,
            "irds": self.irds,
            "sex": self.sex,
        }
        return {k: v for k, v in pairs.items() if v}


def guess_column(columns: list[str], role: str, taken: set[str] = frozenset()) -> str | None:
    """Best header for `role`: an exact (normalised) name first, then a name containing it."""
    hints = COLUMN_HINTS[role]
    free = [c for c in columns if c not in taken]
    if role == "patient_id":
        free = [c for c in free if not any(w in _norm_header(c) for w in NOT_AN_ID)]
    for hint in hints:
        for col in free:
            if _norm_header(col) == hint:
                return col
    for hint in hints:
        if len(hint) < 3:  # "id", "ga", "bw" only as whole names
            continue
        for col in free:
            if hint in _norm_header(col):
                return col
    return None


def guess_mapping(columns: list[str] | pd.Index) -> ColumnMapping:
    """Guess every role from header names; patient_id "" and outcome "" when not found."""
    cols = [str(c) for c in columns]
    taken: set[str] = set()
    found: dict[str, str | None] = {}
    for role in ("patient_id", "image", "gestational_age", "birth_weight", "irds", "sex"):
        found[role] = guess_column(cols, role, taken)
        if found[role]:
            taken.add(found[role])
    found["outcome"] = guess_column(cols, "outcome", taken) or ""
    return ColumnMapping(
        patient_id=found["patient_id"] or "",
        image=found["image"],
        outcome=found["outcome"],
        gestational_age=found["gestational_age"],
        birth_weight=found["birth_weight"],
        irds=found["irds"],
        sex=found["sex"],
    )


@dataclass(frozen=True)
class OutcomeMapping:
    """Which outcome values are positive and which negative. A recorded value named in
    neither list excludes its patient (with the reason), unless `negative_rest` says
    every other recorded value is negative: a typo must not silently relabel infants."""

    positive: tuple[str, ...]
    negative: tuple[str, ...] = ()
    negative_rest: bool = False  # every recorded value not named positive is negative

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive", tuple(str(v).strip() for v in self.positive))
        object.__setattr__(self, "negative", tuple(str(v).strip() for v in self.negative))
        object.__setattr__(self, "negative_rest", bool(self.negative_rest))
        overlap = {normalize_value(v) for v in self.positive} & {
            normalize_value(v) for v in self.negative
        }
        if overlap:
            raise ValueError(f"values named both positive and negative: {sorted(overlap)}")
        # Normalised once, not per table row (not fields: no effect on eq/repr/JSON).
        object.__setattr__(self, "_pos", frozenset(normalize_value(v) for v in self.positive))
        object.__setattr__(self, "_neg", frozenset(normalize_value(v) for v in self.negative))

    def to_json(self) -> dict[str, Any]:
        return {
            "positive": list(self.positive),
            "negative": list(self.negative),
            "negative_rest": self.negative_rest,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutcomeMapping:
        return cls(
            tuple(data.get("positive", ())),
            tuple(data.get("negative", ())),
            recorded_negative_rest(data),
        )

    def classify(self, value: Any) -> int | None:
        """1 positive, 0 negative, None not recorded or not named."""
        key = normalize_value(value)
        if key in self._pos:
            return 1
        if key in self._neg:
            return 0
        if self.negative_rest and key not in NOT_RECORDED:
            return 0
        return None


def recorded_negative_rest(outcome: dict[str, Any]) -> bool:
    """`negative_rest` of a stored outcome mapping. Mappings written before the flag
    existed meant "every other value is negative" by an empty negative list; a run
    recorded that way is re-read (resume, report, explain) as it was trained."""
    if "negative_rest" in outcome:
        return bool(outcome["negative_rest"])
    return not outcome.get("negative")


def outcome_value_counts(df: pd.DataFrame, column: str) -> dict[str, int]:
    """How often each outcome value occurs (rows, trimmed), most frequent first."""
    counts = Counter(str(v).strip() for v in df[column].tolist())
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
