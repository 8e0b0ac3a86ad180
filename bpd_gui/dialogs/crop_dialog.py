"""Crop tool: draw or adjust each image's chest box and rotation, keyboard-fast.

Drag on the radiograph to draw a box; the spin boxes adjust it and the rotation. Keys:
N or → next image, P or ← previous, A accept (the box is used by training; an
automatic suggestion accepted unchanged is stored as "accepted", anything drawn or
changed as "manual"), C copy the previous image's box (scaled to this image), Delete
removes the box. Every accept writes the sidecar (TABLE.crops.csv) at once. Boxes are
numbers in core.cohort.crops' sidecar (docs/method.md, "Crops").

A radiograph photographed from a monitor or a light box can be stood upright (deskew,
off until a person keeps it): D looks for its four-sided border (core.cohort.deskew, a
classical search of a fraction of a second), or a suggestion of `bpd cohort deskew` is
shown; the border is drawn on the photo beside the upright preview, A keeps it (the
image is then shown upright and the box is drawn on that) and X discards it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QGraphicsPixmapItem,
    QGraphicsPolygonItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from bpd_gui.widgets.image_viewer import gray_qimage
from core.cohort.crops import Crop, CropEntry, CropTable, file_sha256, read_sidecar, write_sidecar
from core.cohort.deskew import Border, deskew, find_border

MARKS = {"manual": "✓", "accepted": "✓", "auto": "?"}


class BoxView(QGraphicsView):
    """The radiograph with its box drawn (turned by the rotation); drag to draw a new box."""

    box_drawn = Signal(float, float, float, float)  # x0, y0, x1, y1 on the image's grid

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.pixmap = QGraphicsPixmapItem()
        self.scene().addItem(self.pixmap)
        self.rect = QGraphicsRectItem()
        self.rect.setPen(QPen(QColor(255, 200, 0), 0))
        self.rect.setBrush(QBrush(QColor(255, 200, 0, 40)))
        self.rect.setZValue(1)
        self.scene().addItem(self.rect)
        self.quad = QGraphicsPolygonItem()  # a screen/film border found, not yet kept
        self.quad.setPen(QPen(QColor(0, 220, 255), 0))
        self.quad.setBrush(QBrush(QColor(0, 220, 255, 30)))
        self.quad.setZValue(2)
        self.quad.setVisible(False)
        self.scene().addItem(self.quad)
        self._start: QPointF | None = None
        self.setMinimumSize(320, 320)

    def set_image(self, pixels01: np.ndarray) -> None:
        self.pixmap.setPixmap(QPixmap.fromImage(gray_qimage(pixels01, 0.5, 1.0)))
        self.scene().setSceneRect(QRectF(self.pixmap.pixmap().rect()))
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def show_box(self, crop: Crop | None) -> None:
        self.rect.setVisible(crop is not None)
        if crop is None:
            return
        w, h = crop.x1 - crop.x0, crop.y1 - crop.y0
        self.rect.setRect(QRectF(-w / 2, -h / 2, w, h))
        self.rect.setPos((crop.x0 + crop.x1) / 2, (crop.y0 + crop.y1) / 2)
        self.rect.setRotation(crop.rotation)  # Qt turns clockwise on screen, as Crop does

    def show_quad(self, quad: tuple[float, ...] | None) -> None:
        self.quad.setVisible(quad is not None)
        if quad is not None:
            points = [QPointF(quad[i], quad[i + 1]) for i in range(0, 8, 2)]
            self.quad.setPolygon(QPolygonF(points))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._start = self.mapToScene(event.position().toPoint())

    def mouseReleaseEvent(self, event) -> None:
        if self._start is None:
            return
        end = self.mapToScene(event.position().toPoint())
        rect = self.scene().sceneRect()
        xs = sorted(min(max(v, rect.left()), rect.right()) for v in (self._start.x(), end.x()))
        ys = sorted(min(max(v, rect.top()), rect.bottom()) for v in (self._start.y(), end.y()))
        self._start = None
        if xs[1] - xs[0] >= 2 and ys[1] - ys[0] >= 2:
            self.box_drawn.emit(round(xs[0]), round(ys[0]), round(xs[1]), round(ys[1]))


class CropDialog(QDialog):
    """`images`: (reference as the table writes it, file) per image; `sidecar`: the
    crop table read at start (if it exists) and written on every accept."""

    def __init__(self, images: list[tuple[str, Path]], sidecar: str | Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Crop boxes")
        self.images = list(images)
        self.sidecar = Path(sidecar)
        self.table = read_sidecar(self.sidecar) if self.sidecar.exists() else CropTable()
        self._shas: dict[int, str] = {}
        self.index = 0
        self.shape: tuple[int, int] = (0, 0)
        self.box: Crop | None = None  # what is drawn now (not yet accepted)
        self.previous: tuple[Crop, tuple[int, int]] | None = None  # last accepted, its grid
        self.pixels: np.ndarray | None = None  # the image shown, as read (the photo)
        self.pending: Border | None = None  # a border shown for review, not yet kept
        self._shown: tuple | None = None  # what the view holds: (index, quad or None)
        self._upright: tuple[tuple, np.ndarray] | None = None  # (quad, upright image) cache

        self.view = BoxView()
        self.view.box_drawn.connect(self._drawn)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._row_chosen)
        # long paths lose their middle, not the file name that tells images apart
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setMinimumWidth(240)
        self.spins = {k: self._spin(0, 1e5, 0) for k in ("x0", "y0", "x1", "y1")}
        self.spins["rotation"] = self._spin(-180, 180, 1)
        self.preview = QLabel()  # the upright (deskewed) image of a border under review
        self.preview.setObjectName("deskew_preview")
        self.preview.setFixedWidth(260)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setVisible(False)
        self.progress = QLabel()
        self.progress.setObjectName("crop_progress")
        self.status = QLabel()
        self.status.setWordWrap(True)

        controls = QHBoxLayout()
        for name, spin in self.spins.items():
            controls.addWidget(QLabel(name))
            controls.addWidget(spin)
        buttons = QHBoxLayout()
        for text, slot in (("Previous (P)", self.previous_image), ("Accept (A)", self.accept_box),
                           ("Copy previous box (C)", self.copy_previous),
                           ("Next (N)", self.next_image),
                           ("Detect screen border (D)", self.detect_border),
                           ("Discard border (X)", self.discard_border),
                           ("Close", self.close)):  # fmt: skip
            button = QPushButton(text)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the dialog
            button.clicked.connect(slot)
            buttons.addWidget(button)
        right = QWidget()
        layout = QVBoxLayout(right)
        pictures = QHBoxLayout()
        pictures.addWidget(self.view, 1)
        pictures.addWidget(self.preview)
        layout.addLayout(pictures, 1)
        layout.addLayout(controls)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([280, 720])
        outer = QVBoxLayout(self)
        outer.addWidget(self.progress)
        outer.addWidget(splitter, 1)
        self.resize(1000, 720)
        for ref, _ in self.images:
            self.list.addItem(QListWidgetItem(ref))
        self._refresh_list()
        if self.images:
            self.list.setCurrentRow(0)

    # --- state ---------------------------------------------------------------------------
    def sha(self, i: int) -> str:
        if i not in self._shas:
            self._shas[i] = file_sha256(self.images[i][1])
        return self._shas[i]

    def entry(self, i: int) -> CropEntry | None:
        return self.table.entry(self.sha(i))

    def n_done(self) -> int:
        return sum(1 for i in range(len(self.images)) if (e := self.entry(i)) and e.crop.used)

    def _refresh_list(self) -> None:
        for i, (ref, _) in enumerate(self.images):
            e = self.entry(i)
            mark = MARKS.get(e.crop.source, "") if e else ""
            self.list.item(i).setText(f"{mark or ' '}  {ref}")
        auto = sum(1 for e in self.table.entries if e.crop.source == "auto")
        self.progress.setText(
            f"{self.n_done()} of {len(self.images)} images have a box"
            + (f" ({auto} automatic suggestions to review)" if auto else "")
        )

    # --- navigation ------------------------------------------------------------------------
    def _row_chosen(self, row: int) -> None:
        if 0 <= row < len(self.images):
            self.show_image(row)

    def show_image(self, i: int) -> None:
        from core.cohort.images import read_image
        from core.errors import ImageError

        self.index = i
        ref, path = self.images[i]
        try:
            pixels = read_image(path).pixels
        except ImageError as exc:
            self.status.setText(f"{ref}: {exc.detail}")
            return
        self.shape = pixels.shape
        self.pixels = pixels
        self._end_review()
        self._shown = None
        e = self.entry(i)
        if e is not None and e.crop.quad is not None and not e.crop.used:
            # a suggestion of `bpd cohort deskew`: the border on the photo, for review
            self._set_box(None)
            self._review(Border(e.crop.quad, float("nan")), "Suggested screen border")
        else:
            self._set_box(e.crop if e else None)
            source = e.crop.source if e else None
            self.status.setText(
                {"auto": "Automatic suggestion: A accepts it, or draw a better one.",
                 "manual": "Box drawn by a person (used).", "accepted": "Accepted (used).",
                 None: "No box: drag on the image, or C copies the previous one."}[source]
                + (" Shown upright (deskewed)." if e and e.crop.quad else "")
            )  # fmt: skip
        if self.list.currentRow() != i:
            self.list.setCurrentRow(i)

    def next_image(self) -> None:
        if self.index + 1 < len(self.images):
            self.show_image(self.index + 1)

    def previous_image(self) -> None:
        if self.index > 0:
            self.show_image(self.index - 1)

    # --- editing ---------------------------------------------------------------------------
    def _spin(self, lo: float, hi: float, decimals: int) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setDecimals(decimals)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(self._spun)
        return spin

    def _set_box(self, crop: Crop | None) -> None:
        self.box = crop
        for name, spin in self.spins.items():
            spin.blockSignals(True)
            spin.setValue(getattr(crop, name) if crop else 0.0)
            spin.blockSignals(False)
        self._show_grid(crop.quad if crop is not None else None)
        self.view.show_box(crop)

    def _show_grid(self, quad: tuple[float, ...] | None) -> None:
        """The photo, or (a kept border) its upright image: the grid the box is drawn on."""
        if self.pixels is None or self._shown == (self.index, quad):
            return
        self._shown = (self.index, quad)
        self.view.show_quad(None)
        self.view.set_image(self.pixels if quad is None else self._upright_image(quad))

    def _upright_image(self, quad: tuple[float, ...]) -> np.ndarray:
        if self._upright is None or self._upright[0] != (self.index, quad):
            self._upright = ((self.index, quad), deskew(self.pixels, quad))
        return self._upright[1]

    def _quad_now(self) -> tuple[float, ...] | None:
        return self.box.quad if self.box is not None else None

    def _drawn(self, x0: float, y0: float, x1: float, y1: float) -> None:
        rotation = self.box.rotation if self.box else 0.0
        self._set_box(Crop(x0, y0, x1, y1, rotation, source="manual", quad=self._quad_now()))

    def _spun(self) -> None:
        values = {k: s.value() for k, s in self.spins.items()}
        try:
            crop = Crop(**values, source="manual", quad=self._quad_now())
        except Exception as exc:  # an InputError: say why, keep the last good box
            self.status.setText(str(exc))
            return
        self._set_box(crop)

    def copy_previous(self) -> None:
        """The last accepted box, scaled from its image's size to this one's."""
        if self.previous is None:
            self.status.setText("No box accepted yet to copy.")
            return
        crop, (ph, pw) = self.previous
        quad = self._quad_now()  # this image's own border, if kept; never the previous one's
        h, w = self.box.grid_shape(self.shape) if self.box is not None else self.shape
        sx, sy = w / pw, h / ph
        self._set_box(Crop(crop.x0 * sx, crop.y0 * sy, crop.x1 * sx, crop.y1 * sy,
                           crop.rotation, source="manual", quad=quad))  # fmt: skip

    def accept_box(self) -> None:
        if self.pending is not None:
            self.keep_border()
            return
        if self.box is None:
            self.status.setText("Draw a box first (drag on the image), or C to copy one.")
            return
        try:
            self.box.check_fits(self.shape)
        except Exception as exc:
            self.status.setText(str(exc))
            return
        current = self.entry(self.index)
        crop = self.box
        if crop.source == "auto" or (current and current.crop.geometry() == crop.geometry()
                                     and current.crop.source != "manual"):  # fmt: skip
            crop = Crop(**crop.geometry(), source="accepted")
        self.table = self.table.with_entry(CropEntry(self.images[self.index][0],
                                                     self.sha(self.index), crop))  # fmt: skip
        write_sidecar(self.sidecar, self.table)
        self.previous = (crop, crop.grid_shape(self.shape))
        self._refresh_list()
        self.next_image()

    # --- deskew ----------------------------------------------------------------------------
    def detect_border(self) -> None:
        """D: look for a screen or film border; shown for review, nothing is kept yet."""
        if self.pixels is None:
            return
        border = find_border(self.pixels)
        if border is None:
            self.status.setText("No screen or film border found (an ordinary digital "
                                "radiograph has none): nothing to deskew.")  # fmt: skip
            return
        self._review(border, f"Screen border found (confidence {border.confidence:.2f})")

    def _review(self, border: Border, what: str) -> None:
        """The border drawn on the photo and the upright image beside it."""
        self.pending = border
        self._show_grid(None)
        self.view.show_box(None)
        self.view.show_quad(border.quad)
        upright = QPixmap.fromImage(gray_qimage(self._upright_image(border.quad), 0.5, 1.0))
        fit = (Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(upright.scaled(self.preview.width(), 400, *fit))
        self.preview.setVisible(True)
        self.status.setText(f"{what}: the photo is shown with the border, the upright "
                            "image on the right. A keeps the deskew (then draw the box on "
                            "the upright image), X discards it.")  # fmt: skip

    def _end_review(self) -> None:
        self.pending = None
        self.preview.setVisible(False)
        self.preview.clear()
        self.view.show_quad(None)

    def keep_border(self) -> None:
        """A on a border under review: stored at once (source accepted, the box = the whole
        upright image); the tool stays on this image so a box can be drawn on it."""
        border = self.pending
        if border is None:
            return
        crop = border.crop("accepted")
        try:
            crop.check_fits(self.shape)
        except Exception as exc:
            self.status.setText(str(exc))
            return
        self._end_review()
        self.table = self.table.with_entry(CropEntry(self.images[self.index][0],
                                                     self.sha(self.index), crop))  # fmt: skip
        write_sidecar(self.sidecar, self.table)
        self._set_box(crop)
        self._refresh_list()
        self.status.setText("Deskew kept (used): the image is shown upright. Draw the chest "
                            "box on it and A, or N for the next image.")  # fmt: skip

    def discard_border(self) -> None:
        """X: the border under review is dropped (and a stored suggestion with it)."""
        if self.pending is None:
            return
        self._end_review()
        current = self.entry(self.index)
        if current is not None and current.crop.quad is not None and not current.crop.used:
            self.table = self.table.without(current.sha256)
            write_sidecar(self.sidecar, self.table)
            self._refresh_list()
        self._set_box(current.crop if current is not None and current.crop.used else None)
        self.status.setText("Border discarded: the image stays as it is.")

    def keyPressEvent(self, event) -> None:
        key = event.key()
        actions = {Qt.Key.Key_N: self.next_image, Qt.Key.Key_Right: self.next_image,
                   Qt.Key.Key_P: self.previous_image, Qt.Key.Key_Left: self.previous_image,
                   Qt.Key.Key_A: self.accept_box, Qt.Key.Key_C: self.copy_previous,
                   Qt.Key.Key_D: self.detect_border, Qt.Key.Key_X: self.discard_border,
                   Qt.Key.Key_Delete: lambda: self._set_box(None)}  # fmt: skip
        if key == Qt.Key.Key_Escape and self.pending is not None:
            self.discard_border()  # Esc drops the border under review, not the whole tool
            return
        if key in actions:
            actions[key]()
            return
        super().keyPressEvent(event)


def save_screenshot(app, images: list[tuple[str, Path]], path: str | Path) -> Path:
    """crop.png for the README: the tool on the demo cohort with automatic suggestions
    (a scratch sidecar; nothing is written beside the demo table), two of them accepted."""
    import tempfile

    from core.cohort.chest_box import autobox_images

    with tempfile.TemporaryDirectory() as tmp:
        sidecar = Path(tmp) / "demo.crops.csv"
        write_sidecar(sidecar, autobox_images(images[:12], CropTable()).table)
        dialog = CropDialog(images, sidecar)
        dialog.show()
        app.processEvents()
        dialog.accept_box()
        dialog.accept_box()
        app.processEvents()
        dialog.grab().save(str(path))
        dialog.close()
    return Path(path)
