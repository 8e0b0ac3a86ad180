"""Cohort import throughput: first import (empty cache) and cached re-import.

    python benchmarks/bench_import.py KERMANY_DIR [--resolution 224] [--repeats 3]

KERMANY_DIR holds manifest.csv (image, patient_id, diagnosis) and the images. Each
repeat uses a fresh cache folder: load_cohort + prepare_images twice. The last line of
output is JSON (images per second, median over repeats, plus every run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cohort.cache import ImageCache
from core.cohort.loader import load_cohort
from core.cohort.prepare import prepare_images
from core.cohort.preprocess import PreprocessConfig


def timed_import(table: Path, root: Path, cfg: PreprocessConfig, cache_dir: Path):
    start = time.perf_counter()
    cohort = load_cohort(
        table,
        images_root=root,
        outcome_column="diagnosis",
        positive=["PNEUMONIA"],
        negative=["NORMAL"],
    )
    prepared = prepare_images(cohort, cfg, ImageCache(cache_dir))
    return time.perf_counter() - start, prepared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kermany_dir", type=Path)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    root = args.kermany_dir.resolve()
    cfg = PreprocessConfig(resolution=args.resolution)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bpd-bench-import-") as tmp:
        table = Path(tmp) / "cohort.csv"
        table.write_bytes((root / "manifest.csv").read_bytes())
        for repeat in range(args.repeats):
            cache_dir = Path(tmp) / f"cache-{repeat}"
            first_s, first = timed_import(table, root, cfg, cache_dir)
            cached_s, cached = timed_import(table, root, cfg, cache_dir)
            n = first.cohort.n_images
            assert cached.n_decoded == 0 and cached.cohort.n_images == n
            run = {
                "n_images": n,
                "first_s": round(first_s, 3),
                "first_images_per_s": round(n / first_s, 1),
                "cached_s": round(cached_s, 3),
                "cached_images_per_s": round(n / cached_s, 1),
                "decoded_first": first.n_decoded,
            }
            runs.append(run)
            print(f"repeat {repeat}: {json.dumps(run)}", flush=True)
    result = {
        "benchmark": "cohort_import",
        "resolution": args.resolution,
        "n_images": runs[0]["n_images"],
        "n_patients": first.cohort.n_patients,
        "cpu_count": os.cpu_count(),
        "first_import_images_per_s": statistics.median(r["first_images_per_s"] for r in runs),
        "cached_import_images_per_s": statistics.median(r["cached_images_per_s"] for r in runs),
        "runs": runs,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
