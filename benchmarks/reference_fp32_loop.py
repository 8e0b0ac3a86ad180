"""The reference for `bpd bench train`: a plain fp32 PyTorch training loop, no tricks.

    python benchmarks/reference_fp32_loop.py --resolution 512 --batch-size 8 --steps 5

Same model as the engine (ResNet-50, 1-channel stem, Dropout + Linear(2048, 1) head),
same trainable layers as the final progressive stage (layer2-4 + head; conv1, bn1 and
layer1 frozen by requires_grad=False, their BatchNorm in train mode like the engine's
default, or in eval mode with `--frozen-bn eval`, METHOD.md's other option), AdamW
(torch defaults), BCE with logits, batch 8 of in-memory uint16 images.
No mixed precision, no channels_last, no augmentation, default threads and optimizer
implementation. The last line of output is JSON {"images_per_s": ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F

from core.cohort.preprocess import to_model_input
from core.models.registry import build_model

FROZEN_PREFIXES = ("backbone.conv1.", "backbone.bn1.", "backbone.layer1.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--frozen-bn", choices=("train", "eval"), default="train")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model = build_model("random", seed=0)
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(FROZEN_PREFIXES))
    model.train()
    if args.frozen_bn == "eval":  # frozen modules in eval mode: BN uses running statistics
        for module in (model.backbone.conv1, model.backbone.bn1, model.backbone.layer1):
            module.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    rng = np.random.default_rng(0)
    n = 4 * args.batch_size
    pixels = rng.integers(0, 65536, size=(n, args.resolution, args.resolution), dtype=np.uint16)
    labels = torch.as_tensor(np.arange(n) % 2, dtype=torch.float32)

    times = []
    for step in range(args.warmup + args.steps):
        idx = rng.choice(n, args.batch_size)
        t0 = time.perf_counter()
        x = to_model_input(pixels[idx])[:, None]
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    result = {
        "images_per_s": round(args.batch_size / step_s, 3),
        "step_s_median": round(step_s, 4),
        "step_s": [round(t, 4) for t in times],
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "precision": "fp32",
        "frozen_bn_train_mode": args.frozen_bn == "train",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
