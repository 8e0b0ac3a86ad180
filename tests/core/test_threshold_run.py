"""`bpd train --threshold youden`: each fold's threshold comes from an inner
cross-validation of its training patients; test patients never reach the choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.scoring.metrics import binary_metrics
from tests.core.test_final_model import train_tiny

pytestmark = pytest.mark.slow  # a real training run with inner CVs (CI runs it too)


def test_youden_threshold_never_sees_the_test_fold(tmp_path, studio_home, monkeypatch):
    import core.runs.inner_threshold as inner
    import core.training.context as context
    from core.training.loop import FoldTrainer

    seen = []  # every (train, test) patient set a model was trained / scored on
    chosen = []

    class SpyTrainer(FoldTrainer):
        def __init__(self, data, fold, *args, **kwargs):
            super().__init__(data, fold, *args, **kwargs)
            ids = data.patient_ids
            if fold.fold >= inner.INNER_FOLD_OFFSET:  # the inner models only
                seen.append(({ids[i] for i in fold.train}, {ids[i] for i in fold.test}))

    real_threshold = inner.fold_threshold

    def spy_threshold(method, labels, scores, *, train_ids, test_ids):
        chosen.append((set(train_ids), set(test_ids)))
        return real_threshold(method, labels, scores, train_ids=train_ids, test_ids=test_ids)

    monkeypatch.setattr(inner, "fold_threshold", spy_threshold)
    monkeypatch.setattr(context, "FoldTrainer", SpyTrainer)  # every trainer of the run
    run = train_tiny(tmp_path, "--threshold", "youden")

    folds = [json.loads(p.read_text()) for p in sorted(run.glob("folds/*/fold.json"))]
    assert len(chosen) == 2 and len(seen) == 2 * 3  # 3 inner models per outer fold
    for info, (scored, test_ids) in zip(folds, chosen, strict=True):
        outer_test = set(info["test_patients"])
        assert test_ids == outer_test
        assert scored == set(info["train_patients"])  # every training patient, out-of-fold
        inner_sets = seen[3 * info["fold"] : 3 * info["fold"] + 3]
        for train, test in inner_sets:
            assert not (train | test) & outer_test
        choice = info["threshold_choice"]
        assert choice["method"] == "youden" and choice["inner_folds"] == 3
        assert info["threshold"] == choice["value"] == info["metrics"]["threshold"]
        # the fold's metrics are those at its own threshold
        rows = [r.split(",") for r in (run / "folds" / info["fold_id"] / "predictions.csv")
                .read_text().splitlines()[1:]]  # fmt: skip
        y = np.array([int(r[1]) for r in rows])
        p = np.array([float(r[2]) for r in rows])
        expected = binary_metrics(y, p, info["threshold"])
        assert info["metrics"]["tp"] == expected["tp"] and info["metrics"]["fp"] == expected["fp"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["threshold"]["method"] == "youden"
    assert 0 < summary["threshold"]["for_new_patients"] < 1
    html = (run / "report.html").read_text(encoding="utf-8")  # the report shows them
    if len({f["threshold"] for f in folds}) > 1:
        assert "Folds used their own thresholds" in html
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["threshold_method"] == "youden"
