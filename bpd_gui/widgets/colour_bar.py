"""The heat map's colour bar: the same jet colours the overlay files use (core), top = 1."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QWidget

from core.explain.overlay import jet


class ColourBar(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("colour_bar")
        ramp = np.linspace(1.0, 0.0, 256, dtype=np.float32)[:, None].repeat(4, axis=1)
        rgb = np.ascontiguousarray(jet(ramp))
        self._image = QImage(rgb.data, 4, 256, 12, QImage.Format.Format_RGB888).copy()
        self.setMinimumWidth(46)
        self.setToolTip("Grad-CAM colour scale: red = 1 (the scaling is named under the image)")

    def sizeHint(self) -> QSize:
        return QSize(48, 240)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        fm = p.fontMetrics()
        top, bottom = fm.height() // 2 + 2, self.height() - fm.height() // 2 - 2
        bar = QRect(2, top, 14, max(2, bottom - top))
        p.drawImage(bar, self._image)
        p.setPen(self.palette().windowText().color())
        for text, y in (("1.0", top), ("0.5", (top + bottom) // 2), ("0", bottom)):
            p.drawText(QRect(20, y - fm.height() // 2, self.width() - 20, fm.height()),
                       Qt.AlignLeft | Qt.AlignVCenter, text)  # fmt: skip
        p.end()
