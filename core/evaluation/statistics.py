"""Paired tests and confidence intervals for comparing and reporting AUROCs.

- `wilcoxon_signed_rank`: exact two-sided Wilcoxon signed-rank test for paired samples
  (the paper's p = 0.031 is 2/64: six pairs, all in one direction).
- `delong_test`: DeLong's test for two correlated AUROCs on the same patients, in the
  fast midrank form of Sun & Xu (2014), with the AUROC covariance, z, p and a 95% CI
  of the difference.
- `bootstrap_auroc_ci`: stratified percentile bootstrap CI for one AUROC.
- `corrected_resampled_t`: Nadeau & Bengio's corrected resampled t-test over the folds
  of repeated k-fold CV (the variance inflated by n_test / n_train, df = k * r - 1),
  which the overlap of the folds' training patients demands.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm, rankdata

# Up to this many non-zero pairs the null distribution is counted exactly (2**50 sign
# patterns still fit int64 counts; 6 x 5 = 30 paired folds stay exact). Above it the
# normal approximation with tie and continuity correction is accurate.
EXACT_MAX_N = 50


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # min(R+, R-): the smaller signed-rank sum
    r_plus: float  # sum of ranks of positive differences (a > b)
    r_minus: float
    p_value: float  # two-sided
    n: int  # pairs used (non-zero differences)
    n_zero: int  # pairs dropped because both sides were equal
    method: str  # "exact" or "normal"
    median_difference: float  # median of a - b over all pairs

    def to_json(self) -> dict:
        return asdict(self)


def wilcoxon_signed_rank(a, b=None) -> WilcoxonResult:
    """Exact two-sided Wilcoxon signed-rank test of a - b (or of `a` alone).

    Zeros (a == b) are dropped before ranking (Wilcoxon's original rule, scipy's
    default zero_method="wilcox"): an unchanged pair says nothing about direction.
    Ties among |a - b| get midranks, and the null distribution is counted over the
    2**n sign patterns of exactly those midranks, so the p-value stays exact with
    ties (scipy's method="exact" uses the tie-free table instead; without ties the two
    agree). The count is a dynamic programme over rank sums, not a 2**n loop.
    """
    a = np.asarray(a, dtype=float)
    d = a if b is None else a - np.asarray(b, dtype=float)
    if d.ndim != 1:
        raise ValueError("paired samples must be one-dimensional")
    if np.isnan(d).any():
        raise ValueError("paired samples contain NaN")
    median_diff = float(np.median(d)) if len(d) else float("nan")
    nonzero = d[d != 0]
    n_zero = int(len(d) - len(nonzero))
    n = len(nonzero)
    if n == 0:
        return WilcoxonResult(0.0, 0.0, 0.0, 1.0, 0, n_zero, "exact", median_diff)
    ranks = rankdata(np.abs(nonzero))  # midranks for ties
    r_plus = float(ranks[nonzero > 0].sum())
    r_minus = float(ranks[nonzero < 0].sum())
    if n <= EXACT_MAX_N:
        p = _exact_two_sided_p(ranks, r_plus)
        method = "exact"
    else:
        p = _normal_two_sided_p(ranks, r_plus)
        method = "normal"
    return WilcoxonResult(min(r_plus, r_minus), r_plus, r_minus, p, n, n_zero, method, median_diff)


def _exact_two_sided_p(ranks: np.ndarray, r_plus: float) -> float:
    # Midranks are multiples of 1/2: double them to count integer sums exactly.
    doubled = np.rint(ranks * 2).astype(int)
    total = int(doubled.sum())
    # counts[s] = number of sign patterns whose doubled R+ equals s.
    counts = np.zeros(total + 1, dtype=np.int64)
    counts[0] = 1
    for r in doubled:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: total + 1 - r]
        counts = counts + shifted
    observed = round(r_plus * 2)
    n_patterns = 2 ** len(ranks)
    lower = int(counts[: observed + 1].sum())  # patterns with R+ <= observed
    upper = int(counts[observed:].sum())  # patterns with R+ >= observed
    return min(1.0, 2 * min(lower, upper) / n_patterns)


def _normal_two_sided_p(ranks: np.ndarray, r_plus: float) -> float:
    n = len(ranks)
    mean = n * (n + 1) / 4
    _, tie_counts = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - (tie_counts**3 - tie_counts).sum() / 48
    if var <= 0:
        return 1.0
    z = (abs(r_plus - mean) - 0.5) / math.sqrt(var)  # continuity correction
    return float(min(1.0, 2 * norm.sf(max(z, 0.0))))


@dataclass(frozen=True)
class DelongResult:
    auc_a: float
    auc_b: float
    var_a: float
    var_b: float
    covariance: float
    difference: float  # auc_a - auc_b
    se_difference: float
    z: float
    p_value: float  # two-sided
    ci_low: float  # 95% CI of the difference
    ci_high: float
    n_positive: int
    n_negative: int

    def to_json(self) -> dict:
        return asdict(self)


def delong_covariance(y_true, scores_list) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs of several scores on the same patients and their DeLong covariance.

    Sun & Xu (2014): with midranks of positives among positives (tx), negatives
    among negatives (ty) and both together (tz), the structural components are
    V10 = (tz_pos - tx) / n and V01 = 1 - (tz_neg - ty) / m, and
    S = cov(V10) / m + cov(V01) / n.
    """
    y = np.asarray(y_true).astype(int)
    scores = np.atleast_2d(np.asarray(scores_list, dtype=float))
    if scores.shape[1] != len(y):
        raise ValueError("every score vector needs one value per patient")
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two patients of each outcome")
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.hstack([pos, neg]), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(y_true, scores_a, scores_b, confidence: float = 0.95) -> DelongResult:
    """DeLong's test of AUROC(scores_a) == AUROC(scores_b) on the same patients."""
    y = np.asarray(y_true).astype(int)
    aucs, cov = delong_covariance(y, [scores_a, scores_b])
    diff = float(aucs[0] - aucs[1])
    var_diff = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = math.sqrt(max(var_diff, 0.0))
    zq = float(norm.ppf(0.5 + confidence / 2))
    if se > 0:
        z = diff / se
        p = float(2 * norm.sf(abs(z)))
    else:  # identical rankings: no evidence of a difference
        z, p = 0.0, 1.0
    return DelongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        var_a=float(cov[0, 0]),
        var_b=float(cov[1, 1]),
        covariance=float(cov[0, 1]),
        difference=diff,
        se_difference=se,
        z=float(z),
        p_value=p,
        ci_low=diff - zq * se,
        ci_high=diff + zq * se,
        n_positive=int((y == 1).sum()),
        n_negative=int((y == 0).sum()),
    )


@dataclass(frozen=True)
class BootstrapCI:
    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    seed: int

    def to_json(self) -> dict:
        return asdict(self)


def _auroc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each row of (pos, neg) resamples via the Mann-Whitney rank sum."""
    m, n = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.hstack([pos, neg]), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def bootstrap_auroc_ci(
    y_true, scores, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> BootstrapCI:
    """Percentile bootstrap CI for the AUROC, resampling positives and negatives
    separately (stratified) so every resample has both outcomes at the cohort's balance."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("a bootstrap AUROC needs patients of both outcomes")
    estimate = float(_auroc_rows(pos[None, :], neg[None, :])[0])
    rng = np.random.default_rng(seed)
    boots = []
    for start in range(0, n_boot, 500):  # chunks keep memory flat for big cohorts
        k = min(500, n_boot - start)
        bp = pos[rng.integers(0, len(pos), size=(k, len(pos)))]
        bn = neg[rng.integers(0, len(neg), size=(k, len(neg)))]
        boots.append(_auroc_rows(bp, bn))
    values = np.concatenate(boots)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return BootstrapCI(estimate, float(low), float(high), confidence, n_boot, seed)


@dataclass(frozen=True)
class CorrectedTResult:
    """Nadeau & Bengio's corrected resampled t-test of paired per-fold differences."""

    mean_difference: float  # mean of a - b over the folds
    sd_difference: float  # sample SD (ddof 1) of a - b
    n_folds: int  # J = k * r paired folds
    test_train_ratio: float  # n_test / n_train of a fold (1 / (k - 1) for k-fold CV)
    se: float  # sqrt((1 / J + n_test / n_train) * variance)
    t: float
    df: int  # J - 1
    p_value: float  # two-sided
    ci_low: float  # 95% CI of the mean difference, with the corrected SE
    ci_high: float

    def to_json(self) -> dict:
        return asdict(self)


def corrected_resampled_t(
    a, b=None, *, n_train: float, n_test: float, confidence: float = 0.95
) -> CorrectedTResult:
    """Corrected resampled t-test over the J = k x r folds of repeated k-fold CV.

    Folds share training patients, so their differences are correlated and the plain
    paired t-test (variance / J) is far too confident. Nadeau & Bengio (Machine Learning
    52:239-281, 2003), as applied to repeated CV by Bouckaert & Frank (2004), inflate the
    variance: t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)), with J - 1 degrees of
    freedom. `n_train`, `n_test`: patients per fold (the mean over folds when they vary).
    """
    from scipy.stats import t as student_t

    a = np.asarray(a, dtype=float)
    d = a if b is None else a - np.asarray(b, dtype=float)
    if d.ndim != 1:
        raise ValueError("paired samples must be one-dimensional")
    if np.isnan(d).any():
        raise ValueError("paired samples contain NaN")
    if len(d) < 2:
        raise ValueError("the corrected t-test needs at least two paired folds")
    if n_train <= 0 or n_test <= 0:
        raise ValueError("n_train and n_test must be positive")
    j = len(d)
    ratio = float(n_test) / float(n_train)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    se = math.sqrt((1.0 / j + ratio) * sd**2)
    df = j - 1
    tq = float(student_t.ppf(0.5 + confidence / 2, df))
    if se > 0:
        t = mean / se
        p = float(2 * student_t.sf(abs(t), df))
    else:  # every fold differs by exactly the same amount: no spread to test against
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    return CorrectedTResult(
        mean_difference=mean,
        sd_difference=sd,
        n_folds=j,
        test_train_ratio=ratio,
        se=se,
        t=float(t),
        df=df,
        p_value=p,
        ci_low=mean - tq * se,
        ci_high=mean + tq * se,
    )
