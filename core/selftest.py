"""`bpd self-test` (`bpd-studio --self-test`): does this installation work, offline?

Made for a site that installed the bundle (docs/packaging.md), and for the bundle's own
build test. Each check runs the code path the app and the CLI use, on real data, and
prints one line: name, OK / FAILED / SKIPPED, seconds, what it saw.

  dicom        a JPEG 2000 DICOM through core's reader (core.cohort.dicom), with
               pylibjpeg's decoders found through their package entry points (a bundle
               without that package metadata decodes no compressed DICOM)
  cli-child    `bpd env --json` in a child process started as the app starts its jobs
               (cli_command(): the frozen executable in CLI mode): its JSON read back
  mp-children  a child in each multiprocessing context core uses, loading what it runs:
               a fold worker (core.runs.workers: the training engine) and an image
               decoder (core.cohort.prepare). Frozen, each re-runs the executable,
               whose freeze_support() must take it (bpd_gui.launcher)
  training     8 demo radiographs imported at 64 px (core.cohort), a random-init
               ResNet-50 (core.models), one epoch of the fold trainer
               (core.training.loop): a finite loss and weights that moved
  grad-cam     one Grad-CAM (core.explain) of that model: finite and not flat
  weights      the pretrained inits' libraries load (torchxrayvision, torchvision: a
               bundle that misses a module of theirs fails every pretrained run) and
               each weights file found on this machine loads into the ResNet-50; a
               missing file is not a failure (bpd weights import brings one)
  report       2-fold cross-validation of those patients (a linear probe at 32 px) by
               the runner (core.runs), then report.html (core.evaluation): not empty

Exit 0 only when every check passed. Everything is written into a temporary folder that
is removed afterwards; nothing is downloaded, the user's cache and runs are not touched.

Data: SELFTEST_DATA, folders under core.paths.resources_dir() that a bundle must carry:
resources/selftest/ (the DICOM, the 8-patient table) and resources/demo_cohort/ (the
radiographs that table names).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import paths
from core.errors import BPDError

log = logging.getLogger(__name__)

SELFTEST_DATA = ("selftest", "demo_cohort")  # relative to core.paths.resources_dir()
DICOM_NAME = "dx256_jpeg2000.dcm"
TABLE_NAME = "cohort.csv"
RESOLUTION = 64  # layer4 has 2 x 2 cells: a Grad-CAM map with some structure
REPORT_RESOLUTION = 32
BATCH_SIZE = 4
CHILD_TIMEOUT_S = 120.0  # a cold child imports torch: seconds, more on a slow disk
# pylibjpeg's decoders the project depends on (pyproject: pylibjpeg-openjpeg, -libjpeg)
JPEG2000_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.80")  # baseline, JPEG-LS


class CheckFailed(Exception):
    """A check saw something wrong; the message says what."""


@dataclass
class CheckResult:
    name: str
    status: str  # "OK" | "FAILED" | "SKIPPED"
    seconds: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == "OK"

    def line(self) -> str:
        return f"{self.name:<12} {self.status:<7} {self.seconds:6.1f} s  {self.detail}"


@dataclass
class _State:
    """What the checks hand on: the prepared images, the recipe and the trained model."""

    tmp: Path
    dicom: Path
    prepared: Any = None
    data: Any = None
    cfg: Any = None
    model: Any = None


def selftest_dir() -> Path:
    return paths.resources_dir() / "selftest"


def bundled_dicom() -> Path:
    return selftest_dir() / DICOM_NAME


def cli_command() -> list[str]:
    """Program + leading arguments that run this installation's `bpd` command line in a
    child process: the frozen executable in CLI mode (bpd_gui.launcher), else this
    interpreter. The app starts its jobs with it (bpd_gui.jobs.job_client.base_command),
    so the cli-child check starts a child exactly as the app does."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--cli"]
    return [sys.executable, "-m", "core.cli.main"]


def child_environment() -> dict[str, str]:
    """The environment of a `bpd` child process (the app's jobs, the cli-child check).
    From source, `-m core.cli.main` needs the folder holding `core` on the path. Frozen,
    PYINSTALLER_RESET_ENVIRONMENT makes the child a new instance of the app (PyInstaller
    6.10+), not a sub-process of this one: a job may outlive the app that started it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if getattr(sys, "frozen", False):
        env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    else:
        root = str(Path(__file__).resolve().parent.parent)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = root + (os.pathsep + old if old else "")
    return env


# ----- the checks ------------------------------------------------------------------------
def check_dicom(state: _State) -> str:
    from core.cohort.images import read_image

    decoders = _pylibjpeg_decoders()
    missing = [uid for uid in (*JPEG2000_SYNTAXES, *JPEG_SYNTAXES) if uid not in decoders]
    if missing:
        raise CheckFailed(
            f"pylibjpeg has no decoder for transfer syntax(es) {', '.join(missing)}: the "
            "entry points of pylibjpeg-openjpeg / pylibjpeg-libjpeg were not found "
            "(a bundle must carry their package metadata)"
        )
    syntax, plugins = _transfer_syntax(state.dicom)
    if plugins and "pylibjpeg" not in plugins:  # pydicom would fall back to another one
        raise CheckFailed(
            f"pydicom does not offer pylibjpeg for {syntax} (only {', '.join(plugins)})"
        )
    image = read_image(state.dicom)  # raises ImageError naming the file and the problem
    pixels = image.pixels
    if image.format != "dicom" or pixels.ndim != 2:
        raise CheckFailed(f"{state.dicom}: read as {image.format} {pixels.shape}, not a DICOM")
    _require_finite_varied(pixels, f"{state.dicom}: decoded pixels")
    return (
        f"{state.dicom.name}: {syntax}, {pixels.shape[1]}x{pixels.shape[0]} decoded by "
        f"core.cohort.dicom (pydicom plugins: {', '.join(plugins) or 'none needed'}); "
        f"pylibjpeg decoders for {len(decoders)} transfer syntaxes"
    )


def check_training(state: _State) -> str:
    import torch

    from core.cohort.cache import ImageCache
    from core.cohort.loader import load_source
    from core.cohort.prepare import prepare_images
    from core.models.registry import create_model
    from core.training.data import TrainingData
    from core.training.folds import make_folds
    from core.training.loop import FoldTrainer
    from core.training.runtime import resolve_runtime

    cohort = load_source(selftest_source())
    state.cfg = cfg = selftest_config()
    state.prepared = prepared = prepare_images(
        cohort, _preprocess(cfg), cache=ImageCache(state.tmp / "cache"), workers=1
    )
    bad = [p.message for p in prepared.cohort.problems if p.severity == "error"]
    if bad or len(prepared.cohort.patients) != len(cohort.patients):
        raise CheckFailed("demo radiographs did not import: " + "; ".join(bad[:3]))
    state.data = data = TrainingData.from_prepared(prepared)
    fold = make_folds(data.labels, cfg.cv_folds, 1, cfg.seed, cfg.cv_scheme)[0]
    model = create_model(cfg.init, dropout=cfg.dropout, seed=cfg.seed)
    runtime = resolve_runtime(cfg)
    head = [p.detach().clone() for p in model.head.parameters()]
    trainer = FoldTrainer(data, fold, cfg, runtime, model, emit=_no_event)
    trainer.train_epochs()
    loss = float(trainer.history[-1]["train_loss"])
    if not math.isfinite(loss):
        raise CheckFailed(f"the training loss is {loss}")
    moved = any(
        not torch.equal(a, b.detach().cpu())
        for a, b in zip(head, trainer.model.head.parameters(), strict=True)
    )
    if not moved:
        raise CheckFailed("the optimizer step left the head's weights unchanged")
    state.model = trainer.model
    return (
        f"{data.n_images} radiographs at {RESOLUTION} px; ResNet-50 ({cfg.init} init), "
        f"{trainer.n_steps} step(s) of batch {cfg.batch_size} on {runtime.device.type} "
        f"{runtime.precision}: loss {loss:.3f}"
    )


def check_gradcam(state: _State) -> str:
    import numpy as np

    from core.explain.gradcam import explain_with_peak

    image = int(np.flatnonzero(state.data.image_rank == 0)[0])
    x = state.data.model_input(np.array([image]), next(state.model.parameters()).device)
    cam, peak = explain_with_peak(state.model, x)
    if cam.shape != (RESOLUTION, RESOLUTION):
        raise CheckFailed(f"the map is {cam.shape}, not the image's {RESOLUTION}x{RESOLUTION}")
    _require_finite_varied(cam, "the Grad-CAM map")
    low, high = float(cam.min()), float(cam.max())
    return f"{cam.shape[1]}x{cam.shape[0]} map in [{low:.2f}, {high:.2f}], peak {peak:.3g}"


def check_cli_child(state: _State) -> str:
    command = [*cli_command(), "env", "--json"]
    shown = " ".join([Path(command[0]).name, *command[1:]])
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
            env=child_environment(), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"`{shown}` did not finish within {CHILD_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        raise CheckFailed(f"`{shown}` exited {done.returncode}: {done.stderr.strip()[-500:]}")
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
        device, torch_version = report["device"], report["torch"]
    except (ValueError, IndexError, KeyError, TypeError):
        raise CheckFailed(f"`{shown}` printed no machine report: {done.stdout[-300:]!r}") from None
    preset = report.get("suggested_preset")
    return f"`{shown}`: torch {torch_version}, device {device}, suggested preset {preset}"


def check_weights(state: _State) -> str:
    from core.models.weights import PRETRAINED_INITS, find_weights, load_backbone

    seen = []
    for init in PRETRAINED_INITS:
        file = find_weights(init)  # imports the library that names the file
        if file is None:
            seen.append(f"{init}: library loads, no weights file (bpd weights import)")
            continue
        load_backbone(init, allow_download=False)
        seen.append(f"{init}: {file.name} loads")
    return "; ".join(seen)


def check_mp_children(state: _State) -> str:
    from core.cohort.prepare import pool_context
    from core.runs.workers import worker_context

    seen = []
    for role, context, engine in (
        ("fold worker", worker_context(), "core.runs.runner"),  # what a worker trains with
        ("image decoder", pool_context(), "core.cohort.prepare"),
    ):
        pid = _start_child(context, engine)
        seen.append(f"{role} ({context.get_start_method()}, pid {pid}) loaded {engine}")
    return "; ".join(seen)


def check_report(state: _State) -> str:
    from core.cohort.cache import ImageCache
    from core.cohort.prepare import prepare_images
    from core.evaluation.report import write_report
    from core.runs.folder import RunFolder, now_iso, package_versions
    from core.runs.run_config import RunConfig, RunOptions
    from core.runs.runner import run_cv
    from core.runs.workers import InitModelFactory
    from core.training.data import TrainingData

    # The report needs a run, not a good one (the training check trained the backbone):
    # a linear probe on features computed once, at half the side, costs a few forward
    # passes instead of backward passes and optimizer steps over 25M parameters.
    cfg = state.cfg.replace(resolution=REPORT_RESOLUTION, strategy="probe", probe_epochs=1)
    prepared = prepare_images(
        state.prepared.cohort, _preprocess(cfg), cache=ImageCache(state.tmp / "cache"), workers=1
    )
    run_config = RunConfig(cfg, selftest_source(), RunOptions(workers=1))
    run_config = run_config.replace(versions=package_versions(), created=now_iso())
    run = RunFolder.create(state.tmp / "run", run_config.to_json(), prepared.cohort.to_json())
    with run.lock():
        summary = run_cv(
            run, TrainingData.from_prepared(prepared), cfg,
            InitModelFactory(cfg.init, cfg.dropout), patients=prepared.cohort.patients,
            workers=1,
        )  # fmt: skip
    html = write_report(run.path)
    size = html.stat().st_size if html.is_file() else 0
    if size == 0 or b"<html" not in html.read_bytes()[:4096]:
        raise CheckFailed(f"{html} is missing or empty")
    return (
        f"{summary.get('n_folds')} folds of {summary.get('n_patients')} patients ({cfg.strategy}"
        f" at {cfg.resolution} px) by the runner; {html.name} {size / 1024:.0f} KB"
    )


# The child processes go first: if torch cannot load in this installation (a native
# crash takes the whole process down), their lines already say so, with the child's error.
CHECKS: tuple[tuple[str, Callable[[_State], str], tuple[str, ...]], ...] = (
    ("dicom", check_dicom, ()),
    ("cli-child", check_cli_child, ()),
    ("mp-children", check_mp_children, ()),
    ("training", check_training, ()),
    ("grad-cam", check_gradcam, ("training",)),
    ("weights", check_weights, ()),
    ("report", check_report, ("training",)),
)


def run_self_test(
    dicom: str | Path | None = None, on_result: Callable[[CheckResult], None] | None = None
) -> list[CheckResult]:
    """Every check in order; a check that needs one that did not pass is SKIPPED. `dicom`:
    a DICOM file to decode instead of the bundled JPEG 2000 one."""
    results: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="bpd-self-test-") as tmp:
        state = _State(Path(tmp), Path(dicom) if dicom else bundled_dicom())
        for name, check, needs in CHECKS:
            passed = {r.name for r in results if r.passed}
            missing = [n for n in needs if n not in passed]
            if missing:
                result = CheckResult(name, "SKIPPED", 0.0, f"needs {', '.join(missing)}")
            else:
                result = _timed(name, check, state)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def _timed(name: str, check: Callable[[_State], str], state: _State) -> CheckResult:
    t0 = time.perf_counter()
    try:
        detail, status = check(state), "OK"
    except Exception as exc:  # any failure is this check's result, and the next one runs
        log.debug("self-test check %s failed", name, exc_info=True)  # bpd -v self-test
        detail, status = _describe(exc), "FAILED"
    return CheckResult(name, status, time.perf_counter() - t0, detail)


def _describe(exc: Exception) -> str:
    """Our own errors say what is wrong in their message; anything else is named too."""
    text = " ".join(str(exc).split())[:500]
    if isinstance(exc, CheckFailed | BPDError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----- helpers ---------------------------------------------------------------------------
def selftest_source():
    from core.cohort.source import CohortSource, OutcomeSpec

    return CohortSource(
        str(selftest_dir() / TABLE_NAME),
        OutcomeSpec("diagnosis", ("PNEUMONIA",), ("NORMAL",)),
        images_root=str(paths.resources_dir() / "demo_cohort"),
    )


def selftest_config():
    """The smallest real recipe: random init (no weights to find), one epoch of full
    fine-tuning, 2 folds; device and precision as this machine's `auto` resolves them."""
    from core.training.config import TrainConfig

    return TrainConfig(
        init="random", resolution=RESOLUTION, strategy="full", epochs=1,
        batch_size=BATCH_SIZE, cv_folds=2, cv_repeats=1, eval_every_epoch=False,
    )  # fmt: skip


def _preprocess(cfg):
    from core.cohort.preprocess import PreprocessConfig

    return PreprocessConfig(resolution=cfg.resolution)


def _no_event(*_args: Any, **_fields: Any) -> None:
    return None


def _require_finite_varied(values, what: str) -> None:
    import numpy as np

    if not np.isfinite(values).all():
        raise CheckFailed(f"{what} are not all finite")
    if float(np.ptp(values)) <= 1e-6:
        raise CheckFailed(f"{what} are constant ({float(values.flat[0]):.3g} everywhere)")


def _pylibjpeg_decoders() -> dict[str, Any]:
    """{transfer syntax UID: decoder} as pylibjpeg finds them, through entry points."""
    from pylibjpeg.utils import get_pixel_data_decoders

    return dict(get_pixel_data_decoders())


def _transfer_syntax(path: Path) -> tuple[str, tuple[str, ...]]:
    """The file's transfer syntax, and the pydicom plugins that can decode it (empty for
    an uncompressed one)."""
    import pydicom
    from pydicom.pixels import get_decoder

    try:
        uid = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta.TransferSyntaxUID
    except Exception:  # the reader's own check says what is wrong with the file
        return "an unknown transfer syntax", ()
    try:
        plugins = tuple(get_decoder(uid).available_plugins) if uid.is_compressed else ()
    except NotImplementedError:  # no pydicom decoder at all: the reader says so
        plugins = ()
    return str(uid.name), plugins


def _child_answer(answers, module: str) -> None:
    """In the child: load the code the child exists for, then say who it is."""
    importlib.import_module(module)
    answers.put(os.getpid())


def _start_child(context, module: str) -> int:
    """Start a child in `context` that loads `module`; its pid once it answered. A child
    that dies first (a crash while loading) fails at once, with its exit code."""
    answers = context.Queue()
    child = context.Process(target=_child_answer, args=(answers, module), daemon=True)
    child.start()
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        pid = _answer(answers, child, deadline)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
    if pid is None:
        how = (
            f"did not answer within {CHILD_TIMEOUT_S:.0f} s"
            if time.monotonic() >= deadline
            else f"ended without answering (exit code {child.exitcode})"
        )
        raise CheckFailed(f"a {context.get_start_method()} child loading {module} {how}")
    if pid != child.pid:  # an answer from this process would prove nothing
        raise CheckFailed(f"the answer came from process {pid}, not the child {child.pid}")
    return pid


def _answer(answers, child, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        try:
            return answers.get(timeout=0.5)
        except queue.Empty:
            if not child.is_alive():  # what it sent before it ended is in the pipe by now
                try:
                    return answers.get(timeout=1.0)
                except queue.Empty:
                    return None
    return None
