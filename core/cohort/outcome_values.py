"""Checks that an outcome mapping fits the outcome column it is applied to.

A value named in --positive/--negative that the column does not hold is almost always a
typo ("moderate sever"); with the old "every other value is negative" default it made
every severe infant negative without a word. Such a value is an error that names the
column, the value, the values that do occur and the closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from core.cohort.mapping import NOT_RECORDED, OutcomeMapping, normalize_value
from core.errors import InputError

NEGATIVE_REST_HINT = (
    "name such values with --negative (or --positive), or say --negative-rest to count every "
    "other recorded value as negative"
)


def listed_values(counts: dict[str, int]) -> str:
    """`value (rows)` for each distinct value, most frequent first."""
    return ", ".join(f"'{v}' ({n})" if v else f"(empty) ({n})" for v, n in counts.items())


def require_named_values_occur(
    counts: dict[str, int], outcome: OutcomeMapping, column: str, file: str | Path | None
) -> None:
    """InputError (exit 2) for the first named value that no row of `column` holds.

    `counts`: each value as written in the column -> number of rows (outcome_value_counts).
    """
    present = {normalize_value(v): v for v in counts}
    for side, values in (("--positive", outcome.positive), ("--negative", outcome.negative)):
        for value in values:
            if normalize_value(value) in present:
                continue
            hint = _closest(value, present)
            raise InputError(
                f"{side} value '{value}' does not occur in the outcome column '{column}'"
                + (f" (did you mean '{hint}'?)" if hint else "")
                + f"; values in '{column}': {listed_values(counts)}",
                file=file,
            )


def _closest(value: str, present: dict[str, str]) -> str | None:
    """The written value closest to `value` (case and spacing ignored), if any is close."""
    recorded = [k for k in present if k not in NOT_RECORDED]
    match = difflib.get_close_matches(normalize_value(value), recorded, n=1, cutoff=0.6)
    return present[match[0]] if match else None


def unmapped_values(values: Iterable[str], outcome: OutcomeMapping) -> list[str]:
    """Recorded values that count as neither positive nor negative (their patients are
    excluded), each once, in the order given."""
    seen: dict[str, str] = {}
    for v in values:
        key = normalize_value(v)
        if key in NOT_RECORDED or key in seen:
            continue
        if outcome.classify(v) is None:
            seen[key] = v
    return list(seen.values())
