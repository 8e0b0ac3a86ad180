"""The probability threshold that turns scores into a predicted class.

Two choices: the paper's fixed 0.5, or Youden's J (sensitivity + specificity - 1)
maximised on the *training* patients' out-of-fold scores of a fold. The test fold's
scores never reach these functions; `fold_threshold` checks that by patient id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

THRESHOLD_METHODS = ("fixed", "youden")
DEFAULT_THRESHOLD = 0.5


def youden_threshold(y_true, scores) -> float:
    """Threshold t maximising sensitivity + specificity - 1 for the rule score >= t.

    Candidates are midpoints between neighbouring distinct scores (plus just above
    the maximum and at the minimum), so the cut sits between the training patients
    rather than on one of them. Ties in J go to the candidate closest to 0.5, keeping
    the choice stable when several cuts separate the training patients equally well.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(y) != len(s):
        raise ValueError("one score per label is needed")
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Youden's J needs training patients of both outcomes")
    distinct = np.unique(s)
    candidates = np.concatenate(
        [[distinct[0]], (distinct[:-1] + distinct[1:]) / 2, [np.nextafter(distinct[-1], np.inf)]]
    )
    pred = s[None, :] >= candidates[:, None]
    sens = (pred & (y == 1)).sum(axis=1) / n_pos
    spec = (~pred & (y == 0)).sum(axis=1) / n_neg
    j = sens + spec - 1
    best = np.flatnonzero(np.isclose(j, j.max()))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def fold_threshold(
    method: str,
    train_labels: Sequence[int] | np.ndarray | None = None,
    train_scores: Sequence[float] | np.ndarray | None = None,
    *,
    train_ids: Iterable[str] | None = None,
    test_ids: Iterable[str] | None = None,
    fixed: float = DEFAULT_THRESHOLD,
) -> float:
    """The threshold for one fold.

    method "fixed" returns `fixed` (0.5 by default, the paper's rule). method
    "youden" maximises Youden's J on the training patients' out-of-fold scores
    (`train_labels`, `train_scores`, e.g. from an inner cross-validation). Pass
    `train_ids` (whose scores these are) and `test_ids` to have the separation
    checked: a test patient among the scored ids raises ValueError.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {THRESHOLD_METHODS}")
    if method == "fixed":
        if not 0.0 < fixed < 1.0:
            raise ValueError(f"a probability threshold must lie in (0, 1), got {fixed}")
        return float(fixed)
    if train_labels is None or train_scores is None:
        raise ValueError("Youden's J needs the training patients' out-of-fold scores")
    if train_ids is not None and test_ids is not None:
        leaked = sorted(set(map(str, train_ids)) & set(map(str, test_ids)))
        if leaked:
            raise ValueError(
                f"threshold would be tuned on {len(leaked)} test patient(s) "
                f"(e.g. {leaked[0]!r}); only training patients' scores may be used"
            )
    return youden_threshold(train_labels, train_scores)
