"""`bpd bench train`: the real final-stage training step, timed; last line JSON."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli.main import main
from core.training.bench import bench_config, bench_train


def test_bench_times_the_final_progressive_stage():
    torch.set_num_threads(1)
    cfg = bench_config(32, 2, device="cpu", precision="fp32")
    result = bench_train(cfg, steps=2, warmup=1)
    assert result["images_per_s"] > 0 and len(result["step_s"]) == 2
    assert result["trainable"] == ["head", "layer4", "layer3", "layer2"]
    assert result["precision"] == "fp32" and result["device"] == "cpu"
    assert 0 <= result["data_share"] < 1
    assert result["peak_rss_mb"] > 100  # a ResNet-50 and torch are in memory


def test_bench_cli_last_line_is_json(capsys):
    args = "bench train --resolution 32 --batch-size 2 --steps 1 --warmup 0 --device cpu"
    code = main([*args.split(), "--threads", "1", "--frozen-bn", "eval"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(last)
    assert data["images_per_s"] > 0
    # the unit of the work model the app estimates with: a trained image is 3 units
    assert data["work_units_per_s"] == pytest.approx(3 * data["images_per_s"], rel=1e-3)
    assert data["resolution"] == 32 and data["batch_size"] == 2 and data["threads"] == 1
    assert data["frozen_bn_train_mode"] is False
    assert {"device", "precision", "channels_last", "torch"} <= set(data)


def test_bench_cli_rejects_bad_sizes(capsys):
    assert main(["bench", "train", "--resolution", "0"]) == 2
    assert "resolution" in capsys.readouterr().err


def test_bench_says_which_path_ran_and_why(capsys):
    args = "bench train --resolution 32 --batch-size 2 --steps 1 --warmup 0 --device cpu"
    assert main([*args.split(), "--threads", "1", "--precision", "fp32"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out.strip().splitlines()[-1])
    assert data["path"].startswith("fp32") and "--precision fp32 asked for" in data["path"]
    assert data["workers"] >= 1 and data["threads"] == 1
    assert f"path: {data['path']}" in captured.err  # the human line goes to stderr


def test_auto_precision_names_the_cpu_feature(monkeypatch):
    from core.training import runtime
    from core.training.config import TrainConfig

    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: [])
    rt = runtime.resolve_runtime(TrainConfig(device="cpu"))
    assert rt.precision == "fp32"
    assert "has no bf16 (no AVX512-BF16/AMX)" in rt.path and rt.to_json()["path"] == rt.path
    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: ["AMX"])
    rt = runtime.resolve_runtime(TrainConfig(device="cpu"))
    assert rt.path == "bf16 autocast + channels_last: this CPU has AMX"


def test_fp32_runs_channels_last_where_the_convolutions_are_x86_onednn(monkeypatch):
    from core.training import runtime
    from core.training.config import TrainConfig

    monkeypatch.setattr(runtime, "cpu_bf16_features", lambda: [])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an AVX2-only CPU, emulated
    rt = runtime.resolve_runtime(TrainConfig(device="cpu"))
    assert rt.channels_last and rt.path.startswith("fp32 + channels_last: this CPU (AVX2)")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(runtime, "cpu_isa", lambda: "AVX512")
    assert runtime.resolve_runtime(TrainConfig(device="cpu")).channels_last
    monkeypatch.setattr(runtime, "cpu_isa", lambda: "AVX2")
    assert runtime.resolve_runtime(TrainConfig(device="cpu")).channels_last
    monkeypatch.setattr(runtime, "cpu_isa", lambda: "DEFAULT")  # e.g. ARM: unmeasured
    assert not runtime.resolve_runtime(TrainConfig(device="cpu")).channels_last
