"""The HTML report in a real browser engine (QtWebEngine, offscreen; a test-only
dependency of the dev extra): its plots and Grad-CAM images are present and drawn, and
nothing is wider than a 760 px window.

The engine runs in a child process (this file run as a script): Chromium and torch in
one process crash, and a crash there must not take the test session with it. The
child alone gets QTWEBENGINE_DISABLE_SANDBOX (CI containers have no user namespaces).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

WIDTH = 760

# What the page holds and what sticks out: every element's right edge against the
# window, except inside a div.scroll (a wide table scrolls in its own box, by design).
PAGE_CHECK = """(() => {
  const w = window.innerWidth;
  const over = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.scroll') && !el.classList.contains('scroll')) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 0.5) over.push(el.tagName + ' ' + Math.round(r.right));
  }
  const imgs = [...document.images];
  const svgs = [...document.querySelectorAll('svg')];
  return JSON.stringify({
    width: w, page_width: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight, overflowing: over.slice(0, 10),
    images: imgs.length,
    images_drawn: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.width > 50).length,
    plots: svgs.map(s => s.getAttribute('aria-label')),
    plots_drawn: svgs.filter(s => s.getBoundingClientRect().width > 200
                               && s.querySelector('polyline')).length,
    scroll_boxes: document.querySelectorAll('div.scroll').length,
  });
})()"""


def _render_in_this_process(html: str, screenshot: str) -> dict:
    """Load the report at WIDTH px, run PAGE_CHECK, save a full-page screenshot; adds
    whether the screenshot has painted (non-white) pixels."""
    from PySide6.QtCore import QEventLoop, QTimer, QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    view = QWebEngineView()
    view.resize(WIDTH, 900)
    view.show()
    loop, out = QEventLoop(), {}

    def wait(ms: int) -> None:
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    view.loadFinished.connect(lambda ok: (out.__setitem__("loaded", ok), loop.quit()))
    view.load(QUrl.fromLocalFile(html))
    wait(60_000)
    view.page().runJavaScript(PAGE_CHECK, 0, lambda v: (out.__setitem__("page", v), loop.quit()))
    wait(20_000)
    page = json.loads(out["page"])
    view.resize(WIDTH, min(page["height"], 16_000))  # the whole page in one picture
    wait(1500)
    image = view.grab().toImage()
    page["loaded"] = out.get("loaded")
    page["saved"] = image.save(screenshot)
    page["painted"] = any(
        min(c.red(), c.green(), c.blue()) < 200
        for c in (image.pixelColor(x, y)
                  for y in range(0, image.height(), 11) for x in range(0, image.width(), 7))
    )  # fmt: skip
    del view, app
    return page


def render(html: Path, screenshot: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1")
    proc = subprocess.run(
        [sys.executable, __file__, str(html), str(screenshot)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # run by render(), or by hand to retake the README picture
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    print(json.dumps(_render_in_this_process(sys.argv[1], sys.argv[2])))
    sys.stdout.flush()
    os._exit(0)  # skip Chromium's slow, noisy teardown
else:
    import pytest

    from core.evaluation.report import write_report
    from tests.core.report_run import explained_run
    from tests.core.runfolder_factory import make_run_folder

    pytestmark = pytest.mark.skipif(
        importlib.util.find_spec("PySide6.QtWebEngineWidgets") is None,
        reason="QtWebEngine (PySide6-Addons, the dev extra) is not installed",
    )

    def test_report_plots_render_and_fit_a_760px_window(tmp_path):
        run = make_run_folder(tmp_path / "run", repeats=2, folds=3, n_patients=30, n_positive=12)
        page = render(write_report(run), tmp_path / "report.png")
        assert page["loaded"] and page["saved"] and page["painted"], page
        assert page["width"] == WIDTH and page["page_width"] <= WIDTH, page
        assert page["overflowing"] == [], page
        assert page["plots"] == [
            "ROC curve (out-of-fold)", "Precision-recall (out-of-fold)",
            "Calibration (reliability)", "Training loss", "Test-fold AUROC per epoch",
        ]  # fmt: skip
        assert page["plots_drawn"] == 5 and page["scroll_boxes"] > 5
        assert page["images"] == 0  # no maps yet: the report says how to add them

    @pytest.mark.slow  # trains the tiny Review run once per session, then explains it
    def test_report_gradcam_thumbnails_render(tmp_path):
        run = explained_run(tmp_path / "run")
        html = write_report(run)
        n_thumbs = html.read_text(encoding="utf-8").count('<img src="data:image/jpeg;base64,')
        page = render(html, tmp_path / "report.png")
        assert page["loaded"] and page["saved"] and page["painted"], page
        assert n_thumbs > 0 and page["images"] == page["images_drawn"] == n_thumbs, page
        assert page["overflowing"] == [] and page["page_width"] <= WIDTH, page
        assert page["plots_drawn"] == 5
