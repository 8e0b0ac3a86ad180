"""Threshold choice: 0.5 by default, Youden's J on training scores only."""

import numpy as np
import pytest

from core.scoring.metrics import binary_metrics
from core.scoring.threshold import fold_threshold, youden_threshold


def test_fixed_threshold_is_the_papers_half():
    assert fold_threshold("fixed") == 0.5
    assert fold_threshold("fixed", fixed=0.3) == 0.3
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        fold_threshold("fixed", fixed=1.5)


def test_youden_cuts_between_the_separated_groups():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.10, 0.20, 0.30, 0.60, 0.70, 0.80]
    t = youden_threshold(y, s)
    assert t == pytest.approx(0.45)  # midpoint of 0.30 and 0.60
    m = binary_metrics(np.array(y), np.array(s), threshold=t)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0


def test_youden_hand_computed_with_overlap():
    # Sorted: 0.1- 0.2- 0.3- 0.4+ 0.5- 0.6+ 0.7+ 0.8+
    # cut 0.35: sens 4/4, spec 3/4 -> J 0.75;  cut 0.45: 3/4, 3/4 -> 0.50;
    # cut 0.55: sens 3/4, spec 4/4 -> J 0.75.  Tie: 0.55 is nearer 0.5, so 0.55.
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7, 0.8]
    t = youden_threshold(y, s)
    assert t == pytest.approx(0.55)
    m = binary_metrics(np.array(y), np.array(s), threshold=t)
    assert (m["sensitivity"], m["specificity"]) == (0.75, 1.0)


def test_youden_with_inverted_scores_still_picks_a_valid_cut():
    y = [1, 1, 0, 0]
    s = [0.1, 0.2, 0.8, 0.9]  # anti-informative: best J is 0 (all one class)
    t = youden_threshold(y, s)
    m = binary_metrics(np.array(y), np.array(s), threshold=t)
    assert m["sensitivity"] + m["specificity"] - 1 == pytest.approx(0.0)


def test_youden_needs_both_outcomes():
    with pytest.raises(ValueError, match="both outcomes"):
        youden_threshold([1, 1], [0.2, 0.4])


def test_youden_refuses_test_patients_scores():
    with pytest.raises(ValueError, match="test patient"):
        fold_threshold(
            "youden",
            [0, 1, 0, 1],
            [0.1, 0.9, 0.2, 0.8],
            train_ids=["a", "b", "c", "d"],
            test_ids=["d", "e"],
        )


def test_youden_on_training_scores_is_applied_unchanged_to_the_test_fold():
    rng = np.random.default_rng(0)
    y_train = rng.integers(0, 2, 50)
    s_train = np.clip(0.3 + 0.3 * y_train + rng.normal(0, 0.15, 50), 0, 1)
    t = fold_threshold(
        "youden",
        y_train,
        s_train,
        train_ids=[f"tr{i}" for i in range(50)],
        test_ids=["te0", "te1"],
    )
    assert t == youden_threshold(y_train, s_train)
    assert 0.3 < t < 0.7


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown threshold method"):
        fold_threshold("roc")
