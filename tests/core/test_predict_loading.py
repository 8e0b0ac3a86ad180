"""`bpd predict` loads a run's fold models lazily, mmap'd and without random
initialisation, and still computes exactly what the fold models compute."""

from __future__ import annotations

import torch

from core.predict.models import FoldModels, _no_weight_init, load_predictor
from core.runs.folder import RunFolder
from tests.core.runfolder_factory import make_run_folder


def _run_with_models(tmp_path):
    from core.models.registry import build_model

    path = make_run_folder(tmp_path / "run", repeats=1, folds=2, init="random")
    run = RunFolder(path)
    for i, f in enumerate(run.finished_folds()):
        torch.manual_seed(i)
        f.folder.save_model(build_model("random", dropout=0.1).state_dict())
    return run


def test_fold_models_load_one_at_a_time_and_score_as_the_originals(tmp_path):
    run = _run_with_models(tmp_path)
    predictor = load_predictor(run.path)
    models = predictor.models
    assert isinstance(models, FoldModels) and len(models) == 2
    x = torch.randn(2, 1, 64, 64) * 400
    for (name, fast), fid in zip(models, models.names, strict=True):
        assert name == fid
        reference = run.fold_model(fid)  # the plain way: random init, then copy
        fast_state, ref_state = fast.state_dict(), reference.state_dict()
        assert all(torch.equal(fast_state[k], ref_state[k]) for k in ref_state)
        assert not fast.training
        with torch.no_grad():
            assert torch.equal(fast(x), reference(x))
        assert len(models._loaded) == 1  # the previous model was dropped
    expected = torch.stack([torch.sigmoid(run.fold_model(f)(x)) for f in models.names]).mean(0)
    with torch.no_grad():
        assert torch.allclose(predictor.probabilities(x), expected, atol=0, rtol=0)
    predictor.keep_models_loaded()
    list(predictor.models)
    assert len(models._loaded) == 2


def test_no_weight_init_is_undone_after_loading():
    before = torch.nn.init.kaiming_uniform_
    with _no_weight_init():
        t = torch.zeros(3)
        assert torch.nn.init.constant_(t, 5.0) is t and t.sum() == 0
    assert torch.nn.init.kaiming_uniform_ is before
    t = torch.zeros(3)
    torch.nn.init.constant_(t, 5.0)
    assert t.sum() == 15.0
