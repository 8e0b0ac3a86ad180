"""Folds split patients, never images; stratification holds; same seed, same folds."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from core.training.folds import make_folds, scored_images, training_images


def _labels(n_pos=37, n_neg=61, seed=0):
    return (
        np.random.default_rng(seed).permutation(np.r_[np.ones(n_pos), np.zeros(n_neg)]).astype(int)
    )


def test_stratified_folds_partition_patients_per_repeat():
    y = _labels()
    folds = make_folds(y, 5, 3, seed=1)
    assert len(folds) == 15
    for r in range(3):
        tests = [f.test for f in folds if f.repeat == r]
        assert sorted(np.concatenate(tests).tolist()) == list(range(len(y)))  # each once
        for f in (f for f in folds if f.repeat == r):
            assert not set(f.train) & set(f.test)
            assert len(f.train) + len(f.test) == len(y)
            # stratified: each test fold's positive share within one patient of the cohort's
            assert abs(y[f.test].sum() - y.mean() * len(f.test)) <= 1.0
    assert not np.array_equal(folds[0].test, folds[5].test)  # repeats reshuffle


def test_same_seed_same_folds_other_seed_other_folds():
    y = _labels()
    a, b, c = make_folds(y, 5, 2, 7), make_folds(y, 5, 2, 7), make_folds(y, 5, 2, 8)
    assert all(np.array_equal(x.test, z.test) for x, z in zip(a, b, strict=True))
    assert not all(np.array_equal(x.test, z.test) for x, z in zip(a, c, strict=True))


def test_images_of_a_patient_stay_on_one_side():
    y = _labels(20, 30)
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 4, size=len(y))
    image_patient = np.repeat(np.arange(len(y)), counts)
    image_rank = np.concatenate([np.arange(c) for c in counts])
    for f in make_folds(y, 5, 1, 0):
        tr = training_images(image_patient, f.train)
        first = scored_images(image_patient, image_rank, f.test, "first")
        every = scored_images(image_patient, image_rank, f.test, "mean")
        assert not set(image_patient[tr]) & set(image_patient[every])
        assert len(tr) == counts[f.train].sum()  # training uses all images
        assert len(first) == len(f.test) and (image_rank[first] == 0).all()
        assert len(every) == counts[f.test].sum()


def test_first_image_falls_back_to_lowest_rank_present():
    image_patient = np.array([0, 0, 1, 1])
    image_rank = np.array([1, 2, 0, 1])  # patient 0's first image was unreadable
    assert scored_images(image_patient, image_rank, np.array([0, 1]), "first").tolist() == [0, 2]


def test_paper_scheme_one_to_one_test_folds():
    y = _labels(25, 60)
    folds = make_folds(y, 5, 2, seed=3, scheme="paper")
    for r in range(2):
        tested = np.concatenate([f.test for f in folds if f.repeat == r])
        assert len(tested) == len(set(tested.tolist()))
        assert y[tested].sum() == 25  # every positive tested once per repeat
        assert (y[tested] == 0).sum() == 25  # 35 leftover negatives never tested
    for f in folds:
        assert y[f.test].sum() == (y[f.test] == 0).sum()
        assert not set(f.train) & set(f.test)
        assert len(f.train) + len(f.test) == len(y)


def test_too_few_patients_of_a_class_is_an_input_error():
    with pytest.raises(InputError, match="at least 5 patients"):
        make_folds(np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]), 5, 1, 0)
