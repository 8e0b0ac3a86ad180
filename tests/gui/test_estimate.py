"""Duration estimate from a measured speed, and parsing `bpd bench train` output."""

from bpd_gui.jobs.estimate import RunShape, estimate_seconds, images_processed, parse_bench_output


def test_estimate_scales_with_folds_repeats_and_epochs():
    shape = RunShape(n_images=200, n_patients=100, folds=5, repeats=1, epochs=10,
                     probe_epochs=0, eval_every_epoch=False)  # fmt: skip
    # per fold: 160 training images x 10 epochs + 20 test patients / 3 once
    per_fold = 160 * 10 + 20 / 3
    assert abs(images_processed(shape) - 5 * per_fold) < 1e-6
    assert abs(estimate_seconds(shape, 100.0) - 5 * per_fold / 100) < 1e-6
    six = RunShape(**{**shape.__dict__, "repeats": 6})
    assert abs(estimate_seconds(six, 100.0) - 6 * estimate_seconds(shape, 100.0)) < 1e-6


def test_bench_output_last_json_line():
    text = 'loading...\nstep 1\n{"images_per_s": 42.5, "device": "cpu"}\n'
    assert parse_bench_output(text) == 42.5
    assert parse_bench_output("no json here") is None
    assert parse_bench_output('{"images_per_s": -1}') is None
