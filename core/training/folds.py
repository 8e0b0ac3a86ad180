"""Cross-validation folds by patient, and which images each side of a fold uses.

Folds are built on patients (never images), so a patient's images are all on one side.
- "stratified" (default): stratified k-fold over patients, reshuffled per repeat.
- "paper": the authors' scheme: positives shuffled into k chunks; each test fold pairs a
  chunk with as many negatives (1:1); negatives left over are never tested.
Training uses every image of a training patient; testing uses each test patient's first
image ("first") or all of them, scored by the mean probability ("mean").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from core.errors import InputError


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray  # patient indices
    test: np.ndarray  # patient indices

    @property
    def fold_id(self) -> str:
        return f"r{self.repeat}-f{self.fold}"


def fold_seed(seed: int, repeat: int, fold: int) -> int:
    """One independent seed per (seed, repeat, fold), the same on every machine."""
    return int(np.random.SeedSequence([seed, repeat, fold]).generate_state(1)[0])


def repeat_seed(seed: int, repeat: int) -> int:
    """The shuffle of one cross-validation repeat (fits sklearn's 32-bit random_state)."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0] % (2**31))


def make_folds(
    labels: np.ndarray, n_folds: int, n_repeats: int, seed: int, scheme: str = "stratified"
) -> list[Fold]:
    labels = np.asarray(labels).astype(int)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if min(n_pos, n_neg) < n_folds:
        raise InputError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} patients of each outcome; "
            f"the cohort has {n_pos} positive and {n_neg} negative. Use fewer folds."
        )
    folds: list[Fold] = []
    for r in range(n_repeats):
        rseed = repeat_seed(seed, r)
        if scheme == "stratified":
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=rseed)
            for f, (tr, te) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
                folds.append(Fold(r, f, np.sort(tr), np.sort(te)))
        elif scheme == "paper":
            folds.extend(_paper_folds(labels, n_folds, r, rseed))
        else:
            raise InputError(f"unknown cross-validation scheme {scheme!r}")
    return folds


def _paper_folds(labels: np.ndarray, n_folds: int, repeat: int, seed: int) -> list[Fold]:
    rng = np.random.default_rng(seed)
    pos = rng.permutation(np.flatnonzero(labels == 1))
    neg = rng.permutation(np.flatnonzero(labels == 0))
    everyone = np.arange(len(labels))
    folds = []
    start = 0
    for f, chunk in enumerate(np.array_split(pos, n_folds)):
        negs = neg[start : start + len(chunk)]
        start += len(chunk)
        test = np.sort(np.concatenate([chunk, negs]))
        train = np.setdiff1d(everyone, test)
        folds.append(Fold(repeat, f, train, test))
    return folds


def training_images(image_patient: np.ndarray, patients: np.ndarray) -> np.ndarray:
    """Indices of every image of the given patients."""
    return np.flatnonzero(np.isin(image_patient, patients))


def scored_images(
    image_patient: np.ndarray, image_rank: np.ndarray, patients: np.ndarray, mode: str
) -> np.ndarray:
    """Images scored for the given patients: each one's first image ("first"; the lowest
    rank present, in case the very first was unreadable) or all of them ("mean")."""
    chosen = np.flatnonzero(np.isin(image_patient, patients))
    if mode != "first":
        return chosen
    first: dict[int, int] = {}
    for i in chosen:
        p = int(image_patient[i])
        if p not in first or image_rank[i] < image_rank[first[p]]:
            first[p] = int(i)
    return np.array(sorted(first.values()), dtype=np.int64)
