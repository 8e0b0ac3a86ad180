"""The report's Grad-CAM gallery, PR curve and narrow-page layout."""

from __future__ import annotations

import base64
import io
import re
from html import unescape

import pytest

from core.evaluation.report import write_report
from core.explain.batch import run_explanations
from core.explain.overlay import outcome_class
from tests.core.report_run import explained_run
from tests.core.runfolder_factory import make_run_folder

HOSTILE = "<img src=x onerror=alert(1)>"  # a folder name may hold it (no slash)


def test_a_run_without_maps_says_how_to_add_them(tmp_path):
    run = make_run_folder(tmp_path / HOSTILE, n_patients=20, n_positive=8)
    html = write_report(run).read_text(encoding="utf-8")
    gallery = html.split("most confident errors and successes</h2>")[1].split("<h2>")[0]
    assert "No Grad-CAM maps in this run folder yet" in gallery
    assert "bpd explain " in gallery and " --all\nbpd report " in gallery
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in gallery


def test_every_table_scrolls_inside_its_own_box(tmp_path):
    # the 760 px layout: a table wider than the page scrolls in a div.scroll, never the page
    run = make_run_folder(tmp_path / "run", repeats=2, folds=3, n_patients=30, n_positive=12)
    html = write_report(run).read_text(encoding="utf-8")
    assert html.count("<table>") == html.count("<div class=scroll><table>") > 5
    assert "svg{max-width:100%;height:auto}" in html and 'name="viewport"' in html


def test_pr_curve_reports_average_precision(tmp_path):
    from sklearn.metrics import average_precision_score

    from core.evaluation.run_data import load_run

    run = make_run_folder(tmp_path / "run", n_patients=30, n_positive=12)
    html = write_report(run).read_text(encoding="utf-8")
    oof = load_run(run).oof
    ap = average_precision_score(oof.labels, oof.probs)
    assert f"average precision <b>{ap:.3f}</b>; 12 of 30 infants positive" in html
    assert "precision 0.400 (dashed)" in html


def _thumbnails(html: str) -> dict[str, str]:
    """patient id -> its thumbnail's data URI, in page order, per class heading."""
    out = {}
    for uri, pid in re.findall(
        r'<img src="(data:image/jpeg;base64,[A-Za-z0-9+/=]+)"[^>]*>'
        r"<figcaption><b>([^<]+)</b>",
        html,
    ):
        out[pid] = uri
    return out


@pytest.mark.slow  # trains the tiny Review run once per session, then explains it
def test_gallery_shows_the_most_confident_errors_and_successes(tmp_path):
    from PIL import Image

    run = explained_run(tmp_path / "run")
    cached = run_explanations(run)
    threshold = float(cached.settings["threshold"])
    html = write_report(run).read_text(encoding="utf-8")
    gallery = html.split("most confident errors and successes</h2>")[1].split("<h2>")[0]
    # expected picks, computed here from the cache's index
    by_class: dict[str, list[tuple[float, str]]] = {}
    for pid, row in cached.rows.items():
        p = float(row["oof_prob"])
        by_class.setdefault(outcome_class(int(row["label"]), p, threshold), []).append((p, pid))
    sections = re.split(r"<h4>", gallery)[1:]
    assert [s.split(",")[0] for s in sections] == [
        "False positives", "False negatives", "True positives", "True negatives"
    ]  # fmt: skip
    for cls, section in zip(("FP", "FN", "TP", "TN"), sections, strict=True):
        highest_first = cls in ("FP", "TP")  # errors and successes the model was surest of
        key = (lambda t: (-t[0], t[1])) if highest_first else (lambda t: t)
        members = sorted(by_class.get(cls, []), key=key)
        expected = [pid for _, pid in members[:3]]
        shown = re.findall(r"<figcaption><b>([^<]+)</b>", section)
        assert shown == expected, cls
    thumbs = _thumbnails(gallery)
    assert len(thumbs) == sum(min(3, len(v)) for v in by_class.values()) > 0
    for pid, uri in thumbs.items():  # a real small JPEG of that infant's overlay
        img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert img.format == "JPEG" and img.width <= 220 and img.height <= 320
        full = Image.open(cached.overlay_png(pid))
        assert abs(img.width / img.height - full.width / full.height) < 0.02
    empties = [pid for pid, r in cached.rows.items() if r["empty"] == "1" and pid in thumbs]
    assert gallery.count("<b>empty map</b>") == len(empties)
    assert "one scale over the run" in gallery  # bpd explain's default shared scaling
    # self-contained: every image is inline
    assert re.findall(r'src="(?!data:)', html) == []


def _write_explanations(run, threshold: float = 0.5) -> dict[str, float]:
    """An explanations folder as `bpd explain --all` leaves it (batch's own index and
    settings writers, real overlays of demo radiographs), without training a model:
    each infant's map is a blob whose strength follows its probability."""
    import numpy as np

    from core import paths
    from core.atomic import atomic_write_json
    from core.cohort.images import read_image
    from core.csv_cells import write_csv
    from core.evaluation.run_data import load_run
    from core.explain.batch import FIELDS, INDEX, SETTINGS
    from core.explain.overlay import Caption, write_overlay
    from core.runs.folder import RunFolder

    data = load_run(run)
    out = RunFolder(run).explanations_dir
    out.mkdir()
    image = sorted((paths.demo_cohort_table().parent / "images" / "NORMAL").iterdir())[0]
    pixels = read_image(image).pixels
    fold_of = {p: f.fold_id for f in data.folds if f.repeat == 0 for p in f.test_patients}
    rows, probs = [], {}
    for i, (pid, y) in enumerate(zip(data.oof.patient_ids, data.oof.labels, strict=True)):
        p = float(data.oof.repeat_probs[i, 0])
        yy, xx = np.mgrid[0:8, 0:8]
        cam = np.exp(-((yy - 3) ** 2 + (xx - 4) ** 2) / 4.0).astype(np.float32)
        peak = 0.0 if i % 5 == 0 else p  # every fifth map all zero, as real runs have
        cam = cam * (peak > 0)
        png, npy = f"{i + 1:04d}_cam.png", f"{i + 1:04d}_cam.npy"
        write_overlay(out / png, pixels, cam / max(cam.max(), 1e-9), peak,
                      caption=Caption(infant=pid, prob=p, threshold=threshold, label=int(y)),
                      shared_peak=1.0)  # fmt: skip
        np.save(out / npy, cam)
        rows.append({"patient_id": pid, "label": int(y), "oof_prob": p, "model_prob": p,
                     "fold_id": fold_of[pid], "image": str(image), "peak": peak,
                     "empty": int(peak <= 0), "png": png, "npy": npy})  # fmt: skip
        probs[pid] = p
    write_csv(out / INDEX, rows, FIELDS)
    atomic_write_json(out / SETTINGS, {"repeat": 0, "scaling": "image", "opacity": 0.4,
                                       "shared_peak": 1.0, "threshold": threshold})  # fmt: skip
    return probs


def test_gallery_escapes_ids_and_picks_by_confidence(tmp_path):
    ids = [HOSTILE, "<script>x()</script>"] + [f"P{i}" for i in range(2, 20)]
    run = make_run_folder(tmp_path / "run", patient_ids=ids, n_positive=8, repeats=1)
    probs = _write_explanations(run)
    html = write_report(run).read_text(encoding="utf-8")
    gallery = html.split("most confident errors and successes</h2>")[1].split("<h2>")[0]
    assert "<script" not in html and "<img src=x" not in html  # ids are text, not markup
    assert "each map is scaled to its own maximum" in gallery.lower()
    # false positives: negatives above the threshold, the highest probability first
    cached = run_explanations(run)
    negatives = [pid for pid, r in cached.rows.items() if r["label"] == "0"]
    fp = sorted((pid for pid in negatives if probs[pid] >= 0.5), key=lambda pid: -probs[pid])
    section = gallery.split("<h4>False positives")[1].split("<h4>")[0]
    shown = [unescape(s) for s in re.findall(r"<figcaption><b>([^<]+)</b>", section)]
    assert shown == fp[:3] and len(shown) > 0
    n_imgs = gallery.count('<img src="data:image/jpeg;base64,')
    assert n_imgs == len(re.findall(r"<figcaption>", gallery)) > 0
    # an all-zero map is said to be one
    everyone = {unescape(s) for s in re.findall(r"<figcaption><b>([^<]+)</b>", gallery)}
    empty = {pid for pid, r in cached.rows.items() if r["empty"] == "1"}
    assert gallery.count("<b>empty map</b>") == len(everyone & empty) > 0


def test_a_damaged_cache_or_overlay_never_stops_the_report(tmp_path):
    from core.explain.batch import SETTINGS
    from core.runs.folder import RunFolder

    run = make_run_folder(tmp_path / "run", n_patients=20, n_positive=8, repeats=1)
    _write_explanations(run)
    cache = RunFolder(run).explanations_dir
    for png in cache.glob("*.png"):  # overlays damaged by hand
        png.write_bytes(b"not a png")
    html = write_report(run).read_text(encoding="utf-8")
    figures = html.count("<figure class=cam>")
    assert figures > 0 and html.count("overlay not readable (UnidentifiedImageError)") == figures
    assert '<img src="data:image/jpeg' not in html
    (cache / SETTINGS).write_text("{not json", encoding="utf-8")  # the settings damaged
    html = write_report(run).read_text(encoding="utf-8")
    assert "The Grad-CAM cache could not be read" in html and "--all --force" in html
