"""A first guess of which outcome values are positive, negative or not recorded.

Covers BPD grades in English and German (no / mild -> negative, moderate / severe ->
positive), yes/no and 0/1 codes, and the demo cohort's NORMAL / PNEUMONIA. The user
sees every value with its count and can change each guess.
"""

from __future__ import annotations

import re

from core.cohort.mapping import is_not_recorded

CHOICES = ("positive", "negative", "exclude")
_NEGATIVE = re.compile(
    r"\bno\b|\bnone\b|\bkein|\bmild|\bleicht|\bnormal|\bnegati|^0$|^false$|^nein$|^grade ?[01]$",
    re.I,
)


def guess_outcome_choice(value: str) -> str:
    if is_not_recorded(value):
        return "exclude"
    return "negative" if _NEGATIVE.search(value.strip()) else "positive"
