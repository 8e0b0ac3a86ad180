"""`bpd-gui`: start the desktop app (or render every view to PNG with --screenshots DIR)."""

from __future__ import annotations

import argparse
import logging
import sys

from core import paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpd-gui",
        description="BPD Studio desktop app. Research use only; not a medical device.",
    )
    parser.add_argument(
        "--screenshots",
        metavar="DIR",
        help="render every view (with the demo cohort and a finished demo run) as PNG "
        "files into DIR, then exit",
    )
    parser.add_argument("--no-restore", action="store_true", help="do not reopen the last cohort")
    return parser


def create_app(argv: list[str]):
    from PySide6.QtWidgets import QApplication

    from bpd_gui.gui_thread_gc import collect_garbage_on_gui_thread
    from bpd_gui.icons import app_icon
    from bpd_gui.qt_compat import guard_none_refcount

    app = QApplication.instance() or QApplication(argv)
    guard_none_refcount()
    collect_garbage_on_gui_thread(app)
    app.setApplicationName("BPD Studio")
    app.setOrganizationName("BPD Studio")
    app.setWindowIcon(app_icon())
    qss = paths.resources_dir() / "style.qss"
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    return app


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    app = create_app([sys.argv[0]])
    if args.screenshots:
        from bpd_gui.screenshots import render_all

        return render_all(app, args.screenshots)

    from bpd_gui.main_window import MainWindow
    from bpd_gui.messages import install_excepthook

    install_excepthook()
    window = MainWindow()
    if args.no_restore:
        window.settings.setValue("reopen_last_cohort", False)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
