"""Clinical values as sites write them (English and German notation).

Each parser returns the value or raises ValueError with a readable reason; the loader
turns that into a warning and keeps the patient (clinical values are optional).
"""

from __future__ import annotations

import re

ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4}
NONE_WORDS = {"0", "none", "no", "nein", "kein", "keine", "kein irds", "no irds", "neg"}
SEX_WORDS = {
    "f": "F", "female": "F", "w": "F", "weiblich": "F", "girl": "F", "mädchen": "F",
    "m": "M", "male": "M", "männlich": "M", "maennlich": "M", "boy": "M", "junge": "M",
}  # fmt: skip
GA_RANGE = (18.0, 45.0)
BW_RANGE = (200.0, 6000.0)


def _number(text: str) -> float:
    """'27,5' (German decimal comma) or '27.5' -> 27.5."""
    return float(text.replace(",", "."))


def parse_gestational_age(text: str) -> float:
    """'27+3', '27 + 3/7', '27+3 SSW', '27w3d', '27.4' -> weeks as a float (27+3 = 27 3/7)."""
    s = text.strip().lower()
    s = re.sub(r"\b(ssw|weeks?|wochen|wo|gw|ga)\b\.?", "", s).strip()
    m = re.fullmatch(r"(\d{1,2})\s*(?:\+|w)\s*(\d)\s*(?:/\s*7|d)?", s)
    if m:
        weeks, days = int(m.group(1)), int(m.group(2))
        if days > 6:
            raise ValueError(f"gestational age '{text}': days must be 0-6")
        value = weeks + days / 7
    elif re.fullmatch(r"\d{1,2}(?:[.,]\d+)?", s):
        value = _number(s)
    else:
        raise ValueError(f"gestational age '{text}' is not weeks (27.4) or weeks+days (27+3)")
    if not GA_RANGE[0] <= value <= GA_RANGE[1]:
        raise ValueError(
            f"gestational age {value:.1f} weeks is outside {GA_RANGE[0]:g}-{GA_RANGE[1]:g}"
        )
    return value


def parse_birth_weight(text: str) -> float:
    """'850', '850 g', '0,85 kg', '1.234 g' -> grams."""
    s = text.strip().lower().replace(" ", "")
    m = re.fullmatch(r"(\d+(?:[.,]\d+)?)(g|gr|gramm|grams?|kg)?", s)
    if not m:
        raise ValueError(f"birth weight '{text}' is not a number of grams")
    number, unit = m.group(1), m.group(2)
    if unit == "kg":
        value = _number(number) * 1000
    elif re.fullmatch(r"\d{1,2}[.,]\d{3}", number) and unit:
        value = float(number.replace(",", "").replace(".", ""))  # '1.234 g': thousands mark
    else:
        value = _number(number)
    if not BW_RANGE[0] <= value <= BW_RANGE[1]:
        raise ValueError(f"birth weight {value:g} g is outside {BW_RANGE[0]:g}-{BW_RANGE[1]:g} g")
    return value


def parse_irds(text: str) -> int:
    """'0'-'4', 'I'-'IV', 'Grad II', 'IRDS III°', 'kein' -> 0-4."""
    s = text.strip().lower()
    s = re.sub(r"\b(irds|rds|grad|grade|stadium|stage)\b", "", s).replace("°", "").strip()
    if s in NONE_WORDS:
        return 0
    if re.fullmatch(r"\d+(?:\.0+)?", s):
        value = int(float(s))
    elif s.upper() in ROMAN:
        value = ROMAN[s.upper()]
    else:
        raise ValueError(f"IRDS grade '{text}' is not 0-4 or I-IV")
    if not 0 <= value <= 4:
        raise ValueError(f"IRDS grade {value} is outside 0-4")
    return value


def parse_sex(text: str) -> str:
    """'m', 'male', 'männlich', 'w', 'weiblich', 'f' ... -> 'M' / 'F'."""
    key = text.strip().lower().rstrip(".")
    if key in SEX_WORDS:
        return SEX_WORDS[key]
    raise ValueError(f"sex '{text}' is not one of m/male/männlich or f/w/female/weiblich")
