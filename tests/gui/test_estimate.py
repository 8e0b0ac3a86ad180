"""The app reads `bpd bench train`'s work units per second (the estimate itself is core's:
tests/core/test_estimate.py) and shows core's estimate for the form's recipe."""

from bpd_gui.jobs.estimate import parse_bench_output
from bpd_gui.jobs.run_progress import format_duration
from core import paths
from core.training.estimate import estimate_seconds


def test_bench_output_last_json_line():
    text = 'loading...\nstep 1\n{"images_per_s": 4.0, "work_units_per_s": 12.0}\n'
    assert parse_bench_output(text) == 12.0
    assert parse_bench_output("no json here") is None
    assert parse_bench_output('{"work_units_per_s": -1}') is None
    assert parse_bench_output('{"images_per_s": 4.0}') is None  # not the unit estimated in


def test_train_view_shows_cores_estimate_for_the_form(window, qtbot):
    window.session.open_with_guesses(str(paths.demo_cohort_table()))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    train.form.load_preset("cpu-fast")
    train._on_measured(300.0)
    cohort = window.session.cohort
    secs = estimate_seconds(train.form.config(), cohort.n_patients, cohort.n_images, 300.0)
    text = train.estimate_label.text()
    assert "300 work units/s" in text
    assert format_duration(secs) in text
    train.form.repeats.setValue(2)  # the recipe changed: a different estimate, same speed
    assert format_duration(2 * secs) in train.estimate_label.text()



def test_train_view_says_the_path_and_counts_workers(window, qtbot):
    window.session.open_with_guesses(str(paths.demo_cohort_table()))
    qtbot.waitUntil(lambda: window.session.cohort is not None, timeout=20000)
    train = window.pages["train"]
    train.form.load_preset("cpu-fast")
    path = "fp32: this CPU (AVX2) has no bf16 (no AVX512-BF16/AMX)"
    train.bench.last_result = {"work_units_per_s": 300.0, "path": path, "workers": 2}
    train._on_measured(300.0)
    cohort = window.session.cohort
    secs = estimate_seconds(train.form.config(), cohort.n_patients, cohort.n_images, 300.0,
                            workers=2)  # fmt: skip
    text = train.estimate_label.text()
    assert path in text and "2 folds at once" in text
    assert format_duration(secs) in text
