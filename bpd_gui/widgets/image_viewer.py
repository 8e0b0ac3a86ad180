"""A radiograph viewer: zoom (wheel, +/-), pan (drag), window/level (right-drag or
presets), fit, and a heat-map overlay at the radiograph's own resolution.

The image is kept as float grey values in [0, 1] (core.cohort.images), so window/level
works on the full bit depth of a 12/16-bit DICOM, not on an 8-bit copy.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

# (name, centre, width) on the [0, 1] grey scale
WINDOW_PRESETS = (
    ("Full range", 0.5, 1.0),
    ("Lung", 0.35, 0.6),
    ("Soft tissue", 0.6, 0.5),
    ("Bone", 0.75, 0.45),
)


def gray_qimage(pixels01: np.ndarray, centre: float, width: float) -> QImage:
    lo = centre - width / 2.0
    scaled = (np.asarray(pixels01, dtype=np.float32) - lo) / max(width, 1e-6)
    gray = np.ascontiguousarray((np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    h, w = gray.shape
    return QImage(gray.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def rgba_qimage(rgba: np.ndarray) -> QImage:
    data = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = data.shape[:2]
    return QImage(data.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class ImageViewer(QGraphicsView):
    window_changed = Signal(float, float)  # centre, width

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("image_viewer")
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(Qt.black)
        self.setRenderHint(QPainter.SmoothPixmapTransform, True)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.base = QGraphicsPixmapItem()
        self.base.setTransformationMode(Qt.SmoothTransformation)
        self.heat = QGraphicsPixmapItem()
        self.heat.setTransformationMode(Qt.SmoothTransformation)
        self.scene().addItem(self.base)
        self.scene().addItem(self.heat)
        self.pixels: np.ndarray | None = None
        self.centre, self.width = 0.5, 1.0
        self._overlay_opacity = 0.4
        self._wl_drag: QPointF | None = None
        self._fit = True

    # --- content --------------------------------------------------------------------
    def set_image(self, pixels01: np.ndarray | None) -> None:
        self.pixels = None if pixels01 is None else np.asarray(pixels01, dtype=np.float32)
        self.heat.setPixmap(QPixmap())
        if self.pixels is None:
            self.base.setPixmap(QPixmap())
            return
        self._redraw()
        h, w = self.pixels.shape
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        if self._fit:
            self.fit()

    def set_picture(self, image: QImage | None) -> None:
        """A finished picture (e.g. an overlay PNG core wrote) instead of a radiograph."""
        self.pixels = None
        self.heat.setPixmap(QPixmap())
        self.base.setPixmap(QPixmap() if image is None else QPixmap.fromImage(image))
        if image is not None:
            self.scene().setSceneRect(QRectF(0, 0, image.width(), image.height()))
            if self._fit:
                self.fit()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """A uint8 RGBA heat map of the image's own size (None removes it)."""
        self.heat.setPixmap(QPixmap() if rgba is None else QPixmap.fromImage(rgba_qimage(rgba)))
        self.heat.setOpacity(self._overlay_opacity)

    def set_overlay_visible(self, visible: bool) -> None:
        self.heat.setVisible(visible)

    def overlay_visible(self) -> bool:
        return self.heat.isVisible() and not self.heat.pixmap().isNull()

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay_opacity = float(opacity)
        self.heat.setOpacity(self._overlay_opacity)

    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    # --- window / level -------------------------------------------------------------
    def set_window(self, centre: float, width: float) -> None:
        self.centre = float(np.clip(centre, -0.5, 1.5))
        self.width = float(np.clip(width, 0.01, 2.0))
        self._redraw()
        self.window_changed.emit(self.centre, self.width)

    def windowed_pixels(self) -> np.ndarray | None:
        """The image as shown: grey values after window/level, in [0, 1]."""
        if self.pixels is None:
            return None
        lo = self.centre - self.width / 2.0
        return np.clip((self.pixels - lo) / self.width, 0.0, 1.0)

    def _redraw(self) -> None:
        if self.pixels is not None:
            self.base.setPixmap(
                QPixmap.fromImage(gray_qimage(self.pixels, self.centre, self.width))
            )

    # --- zoom / pan -----------------------------------------------------------------
    def fit(self) -> None:
        self._fit = True
        if not self.base.pixmap().isNull():
            self.fitInView(self.base, Qt.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self._fit = False
        current = self.transform().m11()
        factor = float(np.clip(current * factor, 0.02, 40.0)) / max(current, 1e-9)
        self.scale(factor, factor)

    def zoom_level(self) -> float:
        return self.transform().m11()

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.RightButton:  # right-drag: window (x) and level (y)
            self._wl_drag = event.position()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._wl_drag is not None:
            delta = event.position() - self._wl_drag
            self._wl_drag = event.position()
            self.set_window(self.centre - delta.y() / 400.0, self.width + delta.x() / 400.0)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.RightButton and self._wl_drag is not None:
            self._wl_drag = None
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        self.fit()
