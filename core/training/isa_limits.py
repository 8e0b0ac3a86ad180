"""The instruction-set limits a process runs under (torch-free).

benchmarks/avx2.sh sets all three to emulate an AVX2-only CPU on a newer one: oneDNN
(convolutions), MKL (matrix products) and ATen's own kernels each pick their vector
instructions themselves, so limiting one of them emulates no real CPU.
"""

from __future__ import annotations

import os

ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def isa_limits() -> dict[str, str]:
    """Those of ISA_LIMIT_VARIABLES set in the environment, so that a benchmark's
    figures say what they ran as."""
    return {k: os.environ[k] for k in ISA_LIMIT_VARIABLES if os.environ.get(k)}
