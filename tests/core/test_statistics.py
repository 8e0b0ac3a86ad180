"""Paired tests and CIs, checked against scipy, brute force and an independent DeLong."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from core.evaluation.statistics import (
    bootstrap_auroc_ci,
    corrected_resampled_t,
    delong_covariance,
    delong_test,
    wilcoxon_signed_rank,
)

# ---------------------------------------------------------------- Wilcoxon


def test_six_pairs_all_in_one_direction_give_the_papers_p():
    in_domain = [0.79, 0.78, 0.80, 0.77, 0.785, 0.775]
    imagenet = [0.72, 0.71, 0.73, 0.70, 0.715, 0.725]
    res = wilcoxon_signed_rank(in_domain, imagenet)
    assert res.p_value == pytest.approx(2 / 64)  # 0.03125, printed as 0.031
    assert (res.r_plus, res.r_minus, res.n) == (21.0, 0.0, 6)
    assert wilcoxon_signed_rank(imagenet, in_domain).p_value == pytest.approx(2 / 64)


@pytest.mark.parametrize("n", [3, 5, 8, 12, 20, 25, 30])
def test_exact_p_matches_scipy_without_ties(n):
    rng = np.random.default_rng(n)
    a = rng.normal(0.3, 1.0, n)
    b = rng.normal(0.0, 1.0, n)
    ours = wilcoxon_signed_rank(a, b)
    ref = stats.wilcoxon(a, b, method="exact")
    assert ours.method == "exact"
    assert ours.statistic == pytest.approx(float(ref.statistic))
    assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-12)


def _brute_force_p(d):
    """Enumerate every sign pattern of the midranks: the definition, written plainly."""
    d = np.asarray([x for x in d if x != 0], dtype=float)
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(d))
    ]
    sums = np.array(sums)
    lower = np.mean(sums <= observed + 1e-9)
    upper = np.mean(sums >= observed - 1e-9)
    return min(1.0, 2 * min(lower, upper))


def test_ties_use_the_exact_distribution_of_the_midranks():
    d = [1, 1, 2, -1, 3, 4, 2, -2, 5]
    ours = wilcoxon_signed_rank(d)
    assert ours.p_value == pytest.approx(_brute_force_p(d), rel=1e-12)
    # The same sign-flip distribution via scipy's permutation machinery.
    perm = stats.permutation_test(
        (np.array(d, dtype=float),),
        lambda x: stats.rankdata(np.abs(x))[x > 0].sum(),
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=np.inf,
    )
    assert ours.r_plus == pytest.approx(float(perm.statistic))
    assert ours.p_value == pytest.approx(float(perm.pvalue), rel=1e-9)


def test_zero_differences_are_dropped_and_counted():
    d = [0.0, 0.4, 0.0, -0.1, 0.25, 0.3, 0.15]
    with_zeros = wilcoxon_signed_rank(d)
    without = wilcoxon_signed_rank([x for x in d if x != 0])
    assert with_zeros.n_zero == 2 and with_zeros.n == 5
    assert with_zeros.p_value == without.p_value
    assert with_zeros.median_difference == pytest.approx(0.15)


def test_all_equal_pairs_give_p_one():
    res = wilcoxon_signed_rank([0.7, 0.8], [0.7, 0.8])
    assert res.p_value == 1.0 and res.n == 0 and res.n_zero == 2


def test_large_samples_fall_back_to_the_normal_approximation():
    rng = np.random.default_rng(7)
    d = rng.normal(0.2, 1.0, 80)
    ours = wilcoxon_signed_rank(d)
    ref = stats.wilcoxon(d, method="approx", correction=True)
    assert ours.method == "normal"
    assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-6)


def test_wilcoxon_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_signed_rank([0.1, float("nan")], [0.0, 0.0])


# ---------------------------------------------------------------- DeLong


def _delong_by_definition(y, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988) written from the U-statistic: the kernel
    psi over every (positive, negative) pair, structural components V10/V01 as row and
    column means, and their sample covariances. O(m*n), no ranks."""
    y = np.asarray(y)
    comps = []
    for s in (np.asarray(a, float), np.asarray(b, float)):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]).astype(float) + 0.5 * (x[:, None] == z[None, :])
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    m, n = (y == 1).sum(), (y == 0).sum()
    v10 = np.vstack([c[1] for c in comps])
    v01 = np.vstack([c[2] for c in comps])
    s = np.cov(v10) / m + np.cov(v01) / n
    aucs = np.array([c[0] for c in comps])
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    return aucs, s, z, 2 * stats.norm.sf(abs(z))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_matches_the_u_statistic_definition(seed):
    rng = np.random.default_rng(seed)
    y = np.array([1] * 23 + [0] * 31)
    rng.shuffle(y)
    a = np.round(y * 0.8 + rng.normal(0, 1, len(y)), 1)  # rounding creates ties
    b = np.round(y * 0.4 + 0.5 * a + rng.normal(0, 1, len(y)), 1)
    res = delong_test(y, a, b)
    aucs, s, z, p = _delong_by_definition(y, a, b)
    assert aucs[0] == pytest.approx(res.auc_a)
    assert res.auc_a == pytest.approx(roc_auc_score(y, a))
    assert res.auc_b == pytest.approx(roc_auc_score(y, b))
    assert [res.var_a, res.var_b, res.covariance] == pytest.approx([s[0, 0], s[1, 1], s[0, 1]])
    assert res.z == pytest.approx(z) and res.p_value == pytest.approx(p)
    assert res.ci_low < res.difference < res.ci_high
    assert res.ci_high - res.difference == pytest.approx(1.959964 * res.se_difference, rel=1e-5)


def test_delong_hand_computed_example():
    # Positives 0.9, 0.8, 0.4 beat negatives 0.7, 0.3, 0.2 in 3 + 3 + 2 of 9 pairs.
    y = [1, 1, 1, 0, 0, 0]
    a = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    aucs, cov = delong_covariance(y, [a])
    assert aucs[0] == pytest.approx(8 / 9)
    # V10 = (1, 1, 2/3), V01 = (2/3, 1, 1): each sample variance is 1/27, /3 -> 1/81.
    assert cov[0, 0] == pytest.approx(1 / 81 + 1 / 81)


def test_delong_on_the_hanley_mcneil_1982_worked_example():
    # Hanley & McNeil, Radiology 143:29-36 (1982), Table 1: CT ratings 1-5 of 58 normal
    # and 51 abnormal patients. Published: AUC 0.893, SE 0.032 (their exponential
    # approximation; DeLong's nonparametric SE estimates the same quantity).
    normal = [1] * 33 + [2] * 6 + [3] * 6 + [4] * 11 + [5] * 2
    abnormal = [1] * 3 + [2] * 2 + [3] * 2 + [4] * 11 + [5] * 33
    y = [0] * len(normal) + [1] * len(abnormal)
    aucs, cov = delong_covariance(y, [normal + abnormal])
    assert round(float(aucs[0]), 3) == 0.893
    assert math.sqrt(cov[0, 0]) == pytest.approx(0.032, abs=0.002)


def test_delong_identical_scores_have_no_difference():
    y = [0, 1, 0, 1, 1, 0]
    s = [0.2, 0.7, 0.4, 0.6, 0.3, 0.1]
    res = delong_test(y, s, s)
    assert res.difference == 0.0 and res.p_value == 1.0


def test_delong_detects_a_real_difference():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    good = y * 1.5 + rng.normal(0, 1, 300)
    weak = y * 0.2 + rng.normal(0, 1, 300)
    res = delong_test(y, good, weak)
    assert res.difference > 0.2 and res.p_value < 1e-6


# ---------------------------------------------------------------- bootstrap


def _sample(n, seed):
    rng = np.random.default_rng(seed)
    y = np.array([1] * (n // 3) + [0] * (n - n // 3))
    return y, y * 1.0 + rng.normal(0, 1, n)


def test_bootstrap_ci_covers_the_estimate_and_is_reproducible():
    y, s = _sample(60, 0)
    ci = bootstrap_auroc_ci(y, s, n_boot=1000, seed=5)
    assert ci.estimate == pytest.approx(roc_auc_score(y, s))
    assert ci.low < ci.estimate < ci.high
    assert ci == bootstrap_auroc_ci(y, s, n_boot=1000, seed=5)
    assert ci != bootstrap_auroc_ci(y, s, n_boot=1000, seed=6)


def test_bootstrap_ci_narrows_with_more_patients():
    small = bootstrap_auroc_ci(*_sample(40, 1), n_boot=1000)
    large = bootstrap_auroc_ci(*_sample(640, 1), n_boot=1000)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_bootstrap_needs_both_outcomes():
    with pytest.raises(ValueError, match="both outcomes"):
        bootstrap_auroc_ci([1, 1, 1], [0.2, 0.3, 0.4])


# ---------------------------------------------------------------- corrected resampled t


def test_corrected_t_hand_computed_example():
    # d = (0.04, 0.02, 0.06, 0.00): mean 0.03, sample variance 0.02/3 * 0.1 = 6.6667e-4;
    # 2 x 2-fold CV of 40 patients: 20 train, 20 test per fold, ratio 1.
    d = [0.04, 0.02, 0.06, 0.00]
    res = corrected_resampled_t(d, n_train=20, n_test=20)
    var = sum((x - 0.03) ** 2 for x in d) / 3
    assert var == pytest.approx(0.002 / 3)
    se = math.sqrt((1 / 4 + 1) * var)
    assert res.se == pytest.approx(se)
    assert res.t == pytest.approx(0.03 / se) and res.df == 3
    assert res.p_value == pytest.approx(2 * stats.t.sf(0.03 / se, 3))
    half = stats.t.ppf(0.975, 3) * se
    assert (res.ci_low, res.ci_high) == pytest.approx((0.03 - half, 0.03 + half))


@pytest.mark.parametrize("k,r", [(5, 6), (10, 10), (2, 3)])
def test_corrected_t_matches_an_independent_computation(k, r):
    """Nadeau & Bengio (2003) / Bouckaert & Frank (2004), written from the formula."""
    rng = np.random.default_rng(k * 100 + r)
    a = rng.normal(0.78, 0.09, k * r)
    b = a - rng.normal(0.03, 0.05, k * r)
    n = 163
    n_test = n / k
    n_train = n - n_test
    res = corrected_resampled_t(a, b, n_train=n_train, n_test=n_test)
    d = a - b
    j = k * r
    t_ref = d.mean() / math.sqrt((1 / j + 1 / (k - 1)) * d.var(ddof=1))
    assert res.test_train_ratio == pytest.approx(1 / (k - 1))
    assert res.t == pytest.approx(t_ref, rel=1e-12)
    assert res.df == j - 1
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t_ref), j - 1), rel=1e-10)
    # the correction only ever widens: the naive paired t-test is more confident
    naive = stats.ttest_rel(a, b)
    assert abs(res.t) < abs(float(naive.statistic)) and res.p_value > float(naive.pvalue)


def test_corrected_t_without_spread_and_with_too_few_folds():
    same = corrected_resampled_t([0.7, 0.8, 0.75], [0.7, 0.8, 0.75], n_train=8, n_test=2)
    assert same.p_value == 1.0 and same.t == 0.0
    shifted = corrected_resampled_t([0.75, 1.0], [0.5, 0.75], n_train=8, n_test=2)
    assert shifted.p_value == 0.0 and shifted.mean_difference == 0.25
    with pytest.raises(ValueError, match="two paired folds"):
        corrected_resampled_t([0.1], n_train=8, n_test=2)
    with pytest.raises(ValueError, match="NaN"):
        corrected_resampled_t([0.1, float("nan")], n_train=8, n_test=2)
