"""Federated fine-tuning (core.federated): what is exchanged, FedProx, and a real Flower
federation of two demo-cohort sites, checked at the server's side of the wire."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli.main import build_parser, main
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, write_sidecar
from core.cohort.source import CohortSource, OutcomeSpec
from core.errors import InputError
from core.federated.exchange import (
    ALL_GROUPS,
    ProximalTerm,
    apply_incoming,
    batchnorm_keys,
    exchanged_keys,
    outgoing,
)
from core.models.registry import build_model
from core.runs.folder import RunFolder
from core.training.config import TrainConfig

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo_cohort"


@pytest.fixture(scope="module")
def model():
    return build_model("random", seed=0)


def test_batchnorm_never_exchanged_downsample_included(model):
    bn = batchnorm_keys(model)
    assert "backbone.layer4.0.downsample.1.running_mean" in bn  # found by module type
    assert "backbone.layer4.0.downsample.1.weight" in bn
    sent = exchanged_keys(model, ("head", "layer4"))
    assert not set(sent) & bn
    assert "backbone.layer4.0.downsample.0.weight" in sent  # the downsample conv trains
    assert "head.1.weight" in sent and "head.1.bias" in sent
    assert not any(k.startswith(("backbone.layer3", "backbone.conv1")) for k in sent)
    # every parameter of the groups is either sent or a BatchNorm parameter
    layer4 = {f"backbone.layer4.{n}" for n, _ in model.backbone.layer4.named_parameters()}
    assert layer4 <= set(sent) | bn


def test_apply_incoming_refuses_batchnorm_and_unknown_names(model):
    arrays = outgoing(model, ("head",))
    apply_incoming(model, arrays)
    bad = {"backbone.layer4.0.bn1.running_mean": np.zeros(512, np.float32)}
    with pytest.raises(ValueError, match="non-exchangeable"):
        apply_incoming(model, bad)


def test_proximal_term_adds_mu_times_distance_to_the_gradient():
    lin = torch.nn.Linear(3, 1)
    model = torch.nn.Module()
    model.head = lin
    prox = ProximalTerm(model, ["head.weight"], mu=0.5)
    with torch.no_grad():
        lin.weight.add_(1.0)  # one unit away from the anchor
    lin.weight.grad = None
    (lin.weight.sum() * 0.0).backward()
    assert torch.allclose(lin.weight.grad, torch.full_like(lin.weight, 0.5))
    prox.remove()
    lin.weight.grad = None
    (lin.weight.sum() * 0.0).backward()
    assert torch.allclose(lin.weight.grad, torch.zeros_like(lin.weight))


def test_missing_flower_is_a_clear_input_error(monkeypatch):
    import sys

    from core.federated import require_flwr

    monkeypatch.setitem(sys.modules, "flwr", None)
    with pytest.raises(InputError, match=r"bpd-studio\[federated\]"):
        require_flwr()


def test_bundle_without_flower_says_where_federated_runs(monkeypatch):
    # the hospital bundle leaves Flower out: pip install is no advice inside a bundle
    import sys

    from core.federated import require_flwr

    monkeypatch.setitem(sys.modules, "flwr", None)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(InputError, match=r"not in this installed bundle.*\[federated\]"):
        require_flwr()


def test_simulate_needs_two_sites(tmp_path, capsys):
    table = _split_demo(tmp_path, {"A": (6, 4)})["A"]
    code = main(
        [
            "federate",
            "simulate",
            "--site",
            f"A={table}",
            "--images-root",
            str(DEMO),
            "--outcome",
            "diagnosis",
            "--positive",
            "PNEUMONIA",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "at least two sites" in capsys.readouterr().err


def test_serve_and_join_name_the_missing_file(tmp_path, capsys):
    (tmp_path / "certs").mkdir()
    code = main(
        [
            "federate",
            "serve",
            "--certs",
            str(tmp_path / "certs"),
            "--site-key",
            "a.pub",
            "--site-key",
            "b.pub",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "ca.crt" in capsys.readouterr().err
    table = _split_demo(tmp_path, {"A": (3, 3)})["A"]
    code = main(
        [
            "federate",
            "join",
            str(table),
            "--site",
            "A",
            "--server",
            "127.0.0.1:1",
            "--ca-cert",
            str(tmp_path / "missing.crt"),
            "--site-key",
            "k",
            "--outcome",
            "diagnosis",
            "--positive",
            "PNEUMONIA",
        ]
    )
    assert code == 2
    assert "missing.crt" in capsys.readouterr().err


def test_site_outcome_flags_are_the_train_commands(tmp_path):
    """--negative names the negatives; without it (or --negative-rest) a value named in
    neither list excludes its patient, as in `bpd train`: never "every other value"."""
    from core.cli.federate_cmd import config_from_args, outcome_from_args, parse_site

    table = _split_demo(tmp_path, {"A": (3, 3)})["A"]
    base = ["federate", "simulate", "--site", f"A={table}", "--outcome", "diagnosis"]
    parse = build_parser().parse_args

    args = parse([*base, "--positive", "PNEUMONIA", "--negative", "NORMAL", "--rounds", "2"])
    site = parse_site(args.site[0], str(DEMO), outcome_from_args(args))
    assert site.cohort.outcome == OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",), False)
    assert site.cohort.table == str(table.resolve())
    assert site.cohort.images_root == str(DEMO)
    cfg = config_from_args(args)
    assert cfg.epochs == 2 and cfg.cv_repeats == 1 and cfg.probe_epochs == 4

    rest = outcome_from_args(parse([*base, "--positive", "PNEUMONIA", "--negative-rest"]))
    assert rest.negative_rest and not rest.negative
    only = outcome_from_args(parse([*base, "--positive", "PNEUMONIA"]))
    assert not only.negative_rest and not only.negative
    assert OutcomeSpec.from_json(only.to_json()) == only  # recorded: not "the rest"


def test_simulate_without_negatives_excludes_them_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    tables = _split_demo(tmp_path, {"A": (3, 3), "B": (3, 3)})
    argv = ["federate", "simulate", "--site", f"A={tables['A']}", "--site", f"B={tables['B']}",
            "--images-root", str(DEMO), "--outcome", "diagnosis", "--positive", "PNEUMONIA",
            "--init", "random", "--resolution", "32", "--folds", "2",
            "--out", str(tmp_path / "r"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "site A" in err and "0 negative" in err, err


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _split_demo(folder: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """Site tables from the demo cohort: each site takes the next (negatives, positives)
    patients in table order; every image row of a patient goes with it."""
    rows = _rows(DEMO / "cohort.csv")
    order = list(dict.fromkeys(r["patient_id"] for r in rows))
    label = {r["patient_id"]: r["diagnosis"] for r in rows}
    neg = [p for p in order if label[p] == "NORMAL"]
    pos = [p for p in order if label[p] == "PNEUMONIA"]
    out = {}
    for name, (n_neg, n_pos) in sizes.items():
        mine = set(neg[:n_neg] + pos[:n_pos])
        neg, pos = neg[n_neg:], pos[n_pos:]
        path = folder / f"{name}.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["patient_id", "image", "diagnosis"])
            w.writeheader()
            w.writerows(r for r in rows if r["patient_id"] in mine)
        out[name] = path
    return out


@pytest.mark.slow
def test_two_site_federation_through_flower(tmp_path, monkeypatch, model):
    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    tables = _split_demo(tmp_path, {"north": (6, 4), "south": (5, 4)})
    # north cuts its images to its own crop boxes, south uses whole images
    north_images = [r["image"] for r in _rows(tables["north"])]
    boxes = CropTable(tuple(CropEntry(i, file_sha256(DEMO / i), Crop(16, 24, 208, 216))
                            for i in north_images))  # fmt: skip
    north_crops = write_sidecar(tmp_path / "north.crops.csv", boxes)
    # one fine-tuning round in which head and layer4 train (layer4's BatchNorms included)
    cfg = TrainConfig(
        init="random",
        resolution=64,
        strategy="progressive",
        epochs=1,
        unfreeze_layer3=1.0,
        unfreeze_layer2=1.0,
        batch_size=8,
        cv_folds=2,
        cv_repeats=1,
    )
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_json()), encoding="utf-8")
    out = tmp_path / "run"
    argv = [
        "federate",
        "simulate",
        "--site",
        f"north={tables['north']}",
        "--site",
        f"south={tables['south']}",
        "--site-crops",
        f"north={north_crops}",
        "--images-root",
        str(DEMO),
        "--outcome",
        "diagnosis",
        "--positive",
        "PNEUMONIA",
        "--negative",
        "NORMAL",
        "--config",
        str(tmp_path / "cfg.json"),
        "--compare",
        "none",
        "--no-loso",
        "--proximal-mu",
        "0.01",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0

    run = RunFolder.existing(out)
    assert run.state()["status"] == "finished"
    record = run.federation()
    assert record["status"] == "finished" and record["strategy"] == "FedProx"
    assert set(record["sites"]) == {"north", "south"}

    # What the server received: only non-BatchNorm parameters, each the shape of the
    # model's parameter (no image tensor), numbers, and the site names.
    allowed = set(exchanged_keys(model, ALL_GROUPS))
    bn = batchnorm_keys(model)
    params = dict(model.named_parameters())
    received_arrays = 0
    for entry in record["received"]:
        for arrays in entry["arrays"].values():
            for name, (dtype, shape) in arrays.items():
                assert name in allowed and name not in bn, name
                assert "float32" in dtype
                assert shape == list(params[name].shape), name
                received_arrays += 1
        for values in entry["metrics"].values():
            assert all(v is None or isinstance(v, int | float) for v in values.values())
        for values in entry["configs"].values():
            assert all(v in ("north", "south", "manual", "none") for v in values.values())
    assert received_arrays > 0
    # each site's boxes stay in its folder; the server heard a method and a count
    assert len(RunFolder.existing(out / "sites" / "north").crops()) == len(north_images)
    assert not len(RunFolder.existing(out / "sites" / "south").crops())
    assert record["sites"]["north"]["crops"] == "manual"
    assert record["sites"]["north"]["crop-boxes"] == len(north_images)
    assert record["sites"]["south"]["crops"] == "none"
    assert record["crops"]["same"] is False and "differently" in record["crops"]["note"]
    wire = json.dumps(record["received"])
    patient_ids = {r["patient_id"] for t in tables.values() for r in _rows(t)}
    assert not [p for p in patient_ids if p in wire]
    for fragment in (str(tmp_path), str(DEMO), ".csv", ".jpeg", "images/"):
        assert fragment not in wire

    # FedBN: after the round both sites hold the same exchanged weights and their own
    # BatchNorm (statistics and affine parameters of layer4, downsample included).
    north = RunFolder.existing(out / "sites" / "north").fold("fed-f0").model_state()
    south = RunFolder.existing(out / "sites" / "south").fold("fed-f0").model_state()
    layer4 = [k for k in allowed if k.startswith(("backbone.layer4", "head"))]
    assert all(torch.equal(north[k], south[k]) for k in layer4)
    for k in (
        "backbone.layer4.0.downsample.1.running_mean",
        "backbone.layer4.2.bn3.weight",
        "backbone.layer1.0.bn1.running_var",
    ):
        assert not torch.equal(north[k], south[k]), k

    summary = run.summary()
    assert summary["n_patients"] == 19 and summary["n_folds"] == 4
    table = summary["federated"]["table"]
    assert set(table["rows"]) == {"north", "south", "all sites"}
    assert table["arms"] == ["federated"]
    assert summary["federated"]["crops"]["sites"] == {"north": "manual", "south": "none"}
    assert len(run.predictions()) == 19


def test_left_out_site_reestimates_batchnorm_on_its_fold_training_images(
    tmp_path, monkeypatch, model
):
    """Leave-one-site-out: per fold, BatchNorm statistics from the fold's training
    images only, then the fold's test patients scored and kept at the site."""
    import core.federated.site as site_mod
    from core.federated.site import Site, site_config, site_train_config
    from core.training.folds import training_images

    monkeypatch.setenv("BPD_STUDIO_HOME", str(tmp_path / "home"))
    table = _split_demo(tmp_path, {"west": (5, 4)})["west"]
    cfg = TrainConfig(init="random", resolution=32, cv_folds=2, cv_repeats=1, batch_size=4)
    source = CohortSource(
        str(table), OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)), images_root=str(DEMO)
    )
    RunFolder.create(tmp_path / "west", site_config("west", 0, source, cfg), {})
    # a simulated site's folder is a run config of its own (recipe and cohort)
    assert RunFolder.existing(tmp_path / "west").run_config().cohort == source
    site = Site.load(str(tmp_path / "west"), site_train_config(cfg.to_json(), threads=1))

    seen: list[set[int]] = []
    original = site_mod.recalibrate_bn

    def spy(m, batches, autocast, after):
        batches = list(batches)
        seen.append({int(i) for idx, _ in batches for i in idx})
        original(m, batches, autocast, after)

    monkeypatch.setattr(site_mod, "recalibrate_bn", spy)
    scores = site.score_left_out("loso-west", outgoing(site.starting_model(), ("head",)))
    assert len(scores) == 2 == len(seen)
    for k, fold in enumerate(site.folds):
        assert seen[k] == set(training_images(site.data.image_patient, fold.train).tolist())
        rows = site.run.fold(f"loso-west-f{k}").read_predictions()
        assert {r["patient_id"] for r in rows} == {site.data.patient_ids[i] for i in fold.test}
        assert scores[k]["n-test"] == len(fold.test)
