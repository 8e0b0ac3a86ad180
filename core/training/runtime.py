"""Where and in which precision training runs; cancellation; progress accounting.

Device "auto": CUDA, then Apple MPS, then CPU. Precision "auto": on CUDA bf16 where the
GPU supports it, else fp16 with a GradScaler; on a CPU with native bfloat16
(AVX512-BF16 / AMX) bf16 autocast with channels_last; fp32 otherwise (and on MPS).
fp32 on a CPU runs channels_last too where it pays: x86 CPUs, AVX2 or AVX-512
(fp32_channels_last; measured: docs/benchmarks.md). `Runtime.path` says in one line
which path runs and why.
On a CPU, freed memory stays in the process (core.training.allocator).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass

import torch

from core.errors import InputError
from core.training.allocator import keep_freed_memory
from core.training.config import TrainConfig


def cpu_bf16_features() -> list[str]:
    """The native bfloat16 instructions this CPU has: "AMX", "AVX512-BF16" (or none)."""
    checks = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    return [name for name, fn in checks if bool(getattr(torch.cpu, fn, lambda: False)())]


def cpu_has_bf16() -> bool:
    return bool(cpu_bf16_features())


def cpu_isa() -> str:
    """The vector instruction set PyTorch's CPU kernels use: "AVX512", "AVX2", ..."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def fp32_channels_last() -> bool:
    """channels_last (and the fast path's 1x1-as-GEMM that goes with it) for fp32 on this
    CPU? Where the convolutions are oneDNN's x86 kernels (AVX2 or AVX-512). In-process
    A/B of the real training step (benchmarks/bench_channels_last.py, 2 threads, quiet
    machine): AVX-512 without bf16 1.11x at 128 px batch 16 (0.574 vs 0.639 s/step),
    1.13x at 224 px, 1.31x at 512 px batch 8; AVX2 (benchmarks/avx2.sh) 1.11x at 128 px.
    (An earlier "no gain on AVX-512", 0.98x and 0.75x, was measured at load 7-18.)
    Elsewhere (ARM and others) unmeasured, so NCHW."""
    return kernel_isa() in ("AVX2", "AVX512")


def kernel_isa() -> str:
    """The vector ISA the convolutions run with: oneDNN's limit ONEDNN_MAX_CPU_ISA=AVX2
    (set by benchmarks/avx2.sh, which emulates an AVX2-only CPU on a newer one) or else
    the CPU's."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2"):
        return "AVX2"
    return cpu_isa().upper()


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    channels_last: bool
    keeps_freed_memory: bool = False  # core.training.allocator (CPU training)
    why: str = ""  # why this precision: "this CPU has no bf16 (...)", "asked for", ...

    @property
    def path(self) -> str:
        """e.g. "fp32: this CPU has no bf16 (no AVX512-BF16/AMX)", "bf16 autocast +
        channels_last: this CPU has AMX" (`bpd bench train`, run_started)."""
        what = self.precision + (" autocast" if self.autocast_dtype is not None else "")
        if self.channels_last:
            what += " + channels_last"
        return f"{what}: {self.why}" if self.why else what

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def to_json(self) -> dict:
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "keeps_freed_memory": self.keeps_freed_memory,
            "path": self.path,
        }


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    device = _resolve_device(cfg.device)
    precision, why = cfg.precision, f"--precision {cfg.precision} asked for"
    if precision == "auto":
        precision, why = _auto_precision(device)
    if precision == "fp16" and device.type == "cpu":
        raise InputError("precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    cpu = device.type == "cpu"
    channels_last = device.type == "cuda" or (
        cpu and (precision == "bf16" or (precision == "fp32" and fp32_channels_last()))
    )
    keeps_freed = cpu and keep_freed_memory()
    return Runtime(device, precision, channels_last, keeps_freed, why)


def _auto_precision(device: torch.device) -> tuple[str, str]:
    """Precision "auto" on this device, and why."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return "bf16", f"the GPU ({name}) supports bf16"
        return "fp16", f"the GPU ({name}) has no bf16 (fp16 with loss scaling)"
    if device.type == "cpu":
        features = cpu_bf16_features()
        if features:
            return "bf16", f"this CPU has {features[0]}"
        return "fp32", f"this CPU ({kernel_isa()}) has no bf16 (no AVX512-BF16/AMX)"
    return "fp32", f"{device.type} trains in fp32"


def _resolve_device(name: str) -> torch.device:
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise InputError("device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not mps:
        raise InputError("device mps was asked for, but Apple MPS is not available")
    return torch.device(name)


class CancelToken:
    """Set from a signal handler or another thread; the loop checks it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled by the user"

    def cancel(self, reason: str | None = None) -> None:
        if reason:
            self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Progress:
    """Work units done/total over the whole run and an ETA from the measured rate."""

    def __init__(self, total: float, done: float = 0.0, min_interval_s: float = 1.0):
        self.total = max(total, 1e-9)
        self.done = done
        self._start_done = done
        self._t0 = time.monotonic()
        self._last_emit = 0.0
        self.min_interval_s = min_interval_s

    def advance(self, units: float) -> None:
        self.done = min(self.total, self.done + units)

    def eta_s(self) -> float | None:
        elapsed = time.monotonic() - self._t0
        worked = self.done - self._start_done
        if worked <= 0 or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / worked

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last_emit >= self.min_interval_s:
            self._last_emit = now
            return True
        return False

    def fields(self) -> dict:
        eta = self.eta_s()
        return {
            "done": round(self.done, 3),
            "total": round(self.total, 3),
            "eta_s": None if eta is None else round(eta, 1),
        }
