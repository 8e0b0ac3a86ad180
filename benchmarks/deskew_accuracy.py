"""How well the screen/film border is found (core.cohort.deskew.find_border).

1. Corner error: real demo radiographs (every STEP-th image of the demo table) and the
   real chest DICOMs of tests/data, each "photographed" into a random quad on a dark
   (monitor) and a bright (light box) surround with uneven lighting, blur and noise
   (tests/core/photographs.py); the distance of each found corner from the true one, in
   photo pixels, and how many borders were missed.
2. False positives: every image of the demo table, untouched (digital radiographs: a
   border found there would warp a good image), and the readable images of tests/data.

    python benchmarks/deskew_accuracy.py [--step 10] [--size 480 560] [--json FILE]

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import paths
from core.cohort.deskew import find_border, is_upright
from core.cohort.images import read_image
from core.errors import BPDError
from tests.core.photographs import corner_errors, photograph, random_quad

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def demo_files() -> list[Path]:
    table = paths.demo_cohort_table()
    with open(table, encoding="utf-8", newline="") as fh:
        return [table.parent / r["image"] for r in csv.DictReader(fh)]


def readable(files) -> list[tuple[str, np.ndarray]]:
    out = []
    for f in files:
        try:
            out.append((f.name, read_image(f).pixels))
        except BPDError:
            continue  # files the test data keeps to be refused (a CT, a rib series)
    return out


def corners(step: int, size: tuple[int, int]) -> dict:
    sources = readable(demo_files()[::step])
    sources += readable(sorted((DATA / "dicom").glob("nih_dx_no_finding.dcm")))
    sources += readable(sorted((DATA / "dicom").glob("rsna_cr_*.dcm")))
    rng = np.random.default_rng(0)
    errors, missed, seconds = [], [], []
    for i, (name, pixels) in enumerate(sources):
        for surround in ("dark", "bright"):
            quad = random_quad(rng, size)
            blur, lighting = rng.uniform(0.7, 2.0), rng.uniform(0.0, 0.3)
            photo = photograph(pixels, quad, size, surround=surround, seed=i, blur=blur,
                               lighting=lighting)  # fmt: skip
            start = time.perf_counter()
            border = find_border(photo)
            seconds.append(time.perf_counter() - start)
            if border is None:  # an upright quad is left alone by design: said apart
                upright = " (upright within 1.5%: left alone)" if is_upright(quad) else ""
                missed.append(f"{name} ({surround}){upright}")
            else:
                errors.append(corner_errors(border.quad, quad))
    e = np.concatenate(errors) if errors else np.array([np.nan])
    return {"photos": 2 * len(sources), "images": len(sources), "missed": missed,
            "corner_error_px": {"mean": float(e.mean()), "median": float(np.median(e)),
                                "p95": float(np.percentile(e, 95)), "max": float(e.max())},
            "photo_size": list(size), "seconds_per_photo": float(np.mean(seconds))}  # fmt: skip


def false_positives() -> dict:
    demo = readable(demo_files())
    found = [name for name, pixels in demo if find_border(pixels) is not None]
    test_files = [*sorted((DATA / "dicom").glob("*.dcm")), *sorted((DATA / "images").glob("*"))]
    other = readable(test_files)
    found_other = [name for name, pixels in other if find_border(pixels) is not None]
    return {
        "demo_images": len(demo),
        "demo_false_positives": found,
        "test_data_images": len(other),
        "test_data_false_positives": found_other,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=int, default=10, help="every STEP-th demo image")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 560), metavar=("H", "W"))
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    result = {"corners": corners(args.step, tuple(args.size)), **false_positives(),
              "machine": platform.processor() or platform.machine()}  # fmt: skip
    c = result["corners"]
    upright = sum("left alone" in m for m in c["missed"])
    print(f"photographed: {c['photos']} photos of {c['images']} radiographs, "
          f"{len(c['missed'])} borders not found ({upright} of them upright within 1.5%, "
          "left alone by design)")  # fmt: skip
    err = c["corner_error_px"]
    print(f"corner error (px): mean {err['mean']:.2f}, median {err['median']:.2f}, "
          f"95th percentile {err['p95']:.2f}, max {err['max']:.2f}; "
          f"{c['seconds_per_photo'] * 1000:.0f} ms per {c['photo_size'][1]} x "
          f"{c['photo_size'][0]} photo")  # fmt: skip
    print(f"false borders: {len(result['demo_false_positives'])} of {result['demo_images']} "
          f"demo images, {len(result['test_data_false_positives'])} of "
          f"{result['test_data_images']} test-data images")  # fmt: skip
    text = json.dumps(result)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
