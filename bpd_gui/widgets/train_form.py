"""The run settings form. It opens on the preset that fits the machine (the Train page
asks `bpd env`); each tooltip says where a value comes from (docs/method.md) and takes
its numbers from core's presets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from core.runs.run_config import RunOptions
from core.training.config import (
    CV_SCHEMES,
    DEVICES,
    INITS,
    PRESETS,
    STRATEGIES,
    THRESHOLD_METHODS,
    TrainConfig,
    preset,
)


def _preset_tip() -> str:
    """From the presets themselves, so the tooltip cannot disagree with the code."""
    fast = preset("cpu-fast")
    return (
        "paper: the published recipe as the authors' code runs it (docs/method.md): the "
        "probe on augmented batches with BatchNorm on batch statistics, the authors' 1:1 "
        "test folds.\n"
        f"cpu-fast: {fast.resolution} px, {fast.cv_folds} folds × {fast.cv_repeats} "
        f"({fast.cv_scheme}), a {fast.probe_epochs}-epoch probe on features computed once "
        "(not the paper's augmented probe: faster, a different method), then "
        f"{fast.epochs} fine-tuning epochs, batch {fast.batch_size} — minutes on a CPU "
        "(docs/method.md, cpu-fast)."
    )


_PAPER = preset("paper")
TIPS = {
    "cv_scheme": "docs/method.md, Evaluation. paper: the authors' 1:1 test folds (each "
    "fold's positives with as many negatives; leftover negatives are never tested, the "
    "report counts them), as in the paper's table. stratified: every patient tested once "
    "per repeat, at the cohort's own prevalence (F1 and precision then differ from the "
    "paper's 50 %).",
    "preset": _preset_tip(),
    "init": "docs/method.md, Model: in-domain torchxrayvision resnet50-res512-all (xrv, adult "
    "chest X-rays) vs ImageNet IMAGENET1K_V2; random as a control. Paper: xrv "
    "(AUROC 0.783 vs 0.717).",
    "strategy": "docs/method.md, Progressive layer freezing / Linear probing: the best "
    f"configuration is a {_PAPER.probe_epochs}-epoch linear probe, then progressive "
    f"unfreezing (layer4 at {_PAPER.unfreeze_layer4}·E, layer3 at {_PAPER.unfreeze_layer3}·E, "
    f"layer2 at {_PAPER.unfreeze_layer2}·E) with discriminative learning rates.",
    "cutmix": f"docs/method.md, Augmentation: CutMix per batch with p {_PAPER.cutmix_finetune.p}, "
    f"alpha {_PAPER.cutmix_finetune.alpha:g}, during fine-tuning only (the probe runs without it).",
    "folds": f"docs/method.md, Evaluation: {_PAPER.cv_folds}-fold cross-validation split by "
    "patient.",
    "repeats": f"docs/method.md, Evaluation: the {_PAPER.cv_folds}-fold split is repeated "
    f"{_PAPER.cv_repeats} times ({_PAPER.cv_repeats} × {_PAPER.cv_folds} = "
    f"{_PAPER.cv_repeats * _PAPER.cv_folds} folds).",
    "epochs": f"docs/method.md: {_PAPER.epochs} fine-tuning epochs after a "
    f"{_PAPER.probe_epochs}-epoch linear probe. No early stopping: the last epoch's model is "
    "scored.",
    "resolution": f"docs/method.md, Preprocessing: {_PAPER.resolution} × {_PAPER.resolution}, "
    "the adult-CXR backbone's training resolution. Smaller is much faster (compute grows with "
    "pixels).",
    "device": "auto picks CUDA, then Apple MPS, then CPU. Mixed precision on GPU and on CPUs "
    "with bfloat16.",
    "batch_size": f"docs/method.md: batch size {_PAPER.batch_size}.",
    "name": "The run folder is <date>-<time>-<name> under the runs folder.",
    "threshold": "docs/method.md, Evaluation (threshold): fixed = predicted positive at "
    f"probability {_PAPER.threshold:g} (the paper's). youden = each fold's threshold "
    f"maximises Youden's J in an inner {_PAPER.threshold_inner_folds}-fold "
    "cross-validation on its training patients only (costs about that many extra "
    "trainings per fold).",
    "final_model": "After the cross-validation, train one more model on every patient "
    "with the same recipe (RUN_DIR/final_model, docs/run-folder.md): the model Predict "
    "uses for new infants. The cross-validated numbers describe it; it adds about one "
    "fold's time.",
}


class TrainForm(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.init = QComboBox()
        self.init.addItems(list(INITS))
        self.strategy = QComboBox()
        self.strategy.addItems(list(STRATEGIES))
        self.cutmix = QCheckBox("CutMix during fine-tuning")
        self.folds = _spin(2, 20)
        self.repeats = _spin(1, 20)
        self.cv_scheme = QComboBox()
        self.cv_scheme.addItems(list(CV_SCHEMES))
        self.epochs = _spin(1, 500)
        self.probe_note = QLabel()
        self.probe_note.setObjectName("probe_note")
        self.resolution = _spin(32, 1024, step=32)
        self.batch_size = _spin(1, 256)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.threshold = QComboBox()
        self.threshold.addItems(list(THRESHOLD_METHODS))
        self.final_model = QCheckBox("Final model on all patients")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. xrv-lp-cutmix")
        # whether the init's pretrained weights are on this machine (the Train page fills it)
        self.init_status = QLabel()  # one short line; the details in its tooltip
        self.init_status.setObjectName("init_status")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        rows = [
            ("Preset", "preset"), ("Initialisation", "init"), ("Strategy", "strategy"),
            ("", "cutmix"), ("Folds", "folds"), ("Repeats", "repeats"),
            ("Test folds", "cv_scheme"),
            ("Fine-tuning epochs", "epochs"), ("", "probe_note"), ("Resolution (px)", "resolution"),
            ("Batch size", "batch_size"), ("Device", "device"), ("Threshold", "threshold"),
            ("", "final_model"), ("Run name", "name"),
        ]  # fmt: skip
        for label, key in rows:
            widget = getattr(self, key)
            widget.setObjectName(f"form_{key}")
            if key in TIPS:
                widget.setToolTip(TIPS[key])
            if key == "init":  # its weights' status beside it, on the same line
                row = QHBoxLayout()
                row.addWidget(widget, 1)
                row.addWidget(self.init_status)
                form.addRow(label, row)
                continue
            form.addRow(label, widget)
        # any change a widget signals (load_config blocks them) is the user's own choice
        self.user_edited = False
        self.preset.currentTextChanged.connect(self.load_preset)
        for w in (self.init, self.strategy, self.device, self.threshold, self.cv_scheme):
            w.currentTextChanged.connect(self._edited)
        self.final_model.toggled.connect(self._edited)
        for w in (self.folds, self.repeats, self.epochs, self.resolution, self.batch_size):
            w.valueChanged.connect(self._edited)
        self.cutmix.toggled.connect(self._edited)
        self.load_config(preset("cpu-fast"), "cpu-fast")  # runs anywhere; see the Train page

    def _edited(self, *_: Any) -> None:
        self.user_edited = True
        self._changed()

    def load_preset(self, name: str) -> None:
        """A preset chosen (by the user, or a test): the machine's default no longer
        replaces it."""
        self.user_edited = True
        self.load_config(preset(name), name)

    def load_config(
        self, cfg: TrainConfig, preset_name: str | None = None, options: RunOptions | None = None
    ) -> None:
        """Show a recipe: a preset's, or an earlier run's ("Run again with these
        settings"); settings the form has no field for are kept as they are in `cfg`."""
        self._config = cfg
        blockers = [w.blockSignals(True) for w in self._inputs()]
        if preset_name is not None:
            self.preset.setCurrentText(preset_name)
        self.init.setCurrentText(cfg.init)
        self.strategy.setCurrentText(cfg.strategy)
        self.cutmix.setChecked(cfg.cutmix_finetune.enabled)
        self.folds.setValue(cfg.cv_folds)
        self.repeats.setValue(cfg.cv_repeats)
        self.cv_scheme.setCurrentText(cfg.cv_scheme)
        self.epochs.setValue(cfg.epochs)
        self.resolution.setValue(cfg.resolution)
        self.batch_size.setValue(cfg.batch_size)
        self.device.setCurrentText(cfg.device)
        self.threshold.setCurrentText(cfg.threshold_method)
        if options is not None:
            self.final_model.setChecked(options.final_model)
        for w, was in zip(self._inputs(), blockers, strict=True):
            w.blockSignals(was)
        self._changed()

    def _inputs(self) -> list[QWidget]:
        return [self.preset, self.init, self.strategy, self.cutmix, self.folds, self.repeats,
                self.epochs, self.resolution, self.batch_size, self.device, self.threshold,
                self.final_model, self.cv_scheme]  # fmt: skip

    def _changed(self, *_: Any) -> None:
        probe = self.strategy.currentText().startswith("probe")
        self.probe_note.setText(
            f"plus a {self._config.probe_epochs}-epoch linear probe first" if probe else ""
        )
        self.epochs.setEnabled(self.strategy.currentText() != "probe")
        self.changed.emit()

    def config(self) -> TrainConfig:
        """The settings as a TrainConfig: the recipe of the RunConfig a run starts from
        (and of the duration estimate)."""
        cfg = self._config.replace(
            init=self.init.currentText(),
            strategy=self.strategy.currentText(),
            cv_folds=self.folds.value(),
            cv_repeats=self.repeats.value(),
            cv_scheme=self.cv_scheme.currentText(),
            epochs=self.epochs.value(),
            resolution=self.resolution.value(),
            batch_size=self.batch_size.value(),
            device=self.device.currentText(),
            cutmix_finetune=replace(self._config.cutmix_finetune, enabled=self.cutmix.isChecked()),
            threshold_method=self.threshold.currentText(),
        )
        return cfg

    def options(self) -> RunOptions:
        """What the run does beyond the recipe (the RunConfig's options)."""
        return RunOptions(final_model=self.final_model.isChecked())

    def set_init_status(self, text: str, ok: bool | None, details: str = "") -> None:
        colour = {True: "#2e7d32", False: "#c62828", None: "#555"}[ok]
        self.init_status.setText(f"<span style='color:{colour}'>{text}</span>" if text else "")
        self.init_status.setToolTip(details or text)

    def run_name(self) -> str:
        return self.name.text().strip() or (
            f"{self.init.currentText()}-{self.strategy.currentText().replace('+', '-')}"
        )


def _spin(lo: int, hi: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    return box
