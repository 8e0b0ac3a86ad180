"""Time one Grad-CAM explanation of a ResNet-50 BPD model on the CPU.

Target (issue 4): at most 1.5 s per explanation at 512 px. Random initialisation is
enough for timing (the work is the same with pretrained weights). Last line of output:
JSON with the median of --repeats timed runs (after one warm-up); when the precision
is not float32, float32 is timed too and the two maps are compared.

    python -m benchmarks.bench_gradcam [--image FILE] [--resolution 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image

from core.explain.gradcam import explain
from core.models.registry import create_model

TARGET_S = 1.5


def _input(image: str | None, resolution: int) -> torch.Tensor:
    if image:
        gray = Image.open(image).convert("L").resize((resolution, resolution))
        x01 = np.asarray(gray, dtype=np.float32) / 255.0
    else:
        x01 = np.random.default_rng(0).random((resolution, resolution), dtype=np.float32)
    return torch.from_numpy((x01 * 2.0 - 1.0) * 1024.0)[None, None]


def _time(model, x, precision: str, repeats: int) -> tuple[list[float], np.ndarray]:
    cam = explain(model, x, precision=precision)  # warm-up: allocator, oneDNN kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cam = explain(model, x, precision=precision)
        times.append(time.perf_counter() - start)
        print(f"{precision}: {times[-1]:.3f} s")
    return times, cam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="a radiograph to explain (default: seeded noise)")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = create_model("random", seed=0).eval()
    x = _input(args.image, args.resolution)
    used = args.precision
    times, cam = _time(model, x, used, args.repeats)
    result = {
        "benchmark": "gradcam",
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "resolution": args.resolution,
        "precision": used,
        "repeats": args.repeats,
        "seconds": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4),
        "target_s": TARGET_S,
        "meets_target": statistics.median(times) <= TARGET_S,
        "cam_shape": list(cam.shape),
        "torch": torch.__version__,
    }
    if used != "float32":  # the reference: how long float32 takes, how close the map is
        ref_times, ref = _time(model, x, "float32", args.repeats)
        result["float32_median_s"] = round(statistics.median(ref_times), 4)
        result["map_max_abs_diff_vs_float32"] = round(float(np.abs(cam - ref).max()), 4)
        result["map_mean_abs_diff_vs_float32"] = round(float(np.abs(cam - ref).mean()), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
