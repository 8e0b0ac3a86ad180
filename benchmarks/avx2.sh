#!/usr/bin/env bash
# Run a command as it would run on an AVX2-only CPU (no AVX-512), on a newer CPU:
#
#   benchmarks/avx2.sh bpd demo --workers 1 --init random --quiet --no-report --out DIR
#   benchmarks/avx2.sh python benchmarks/bench_train_speed.py --resolutions 512
#
# Each of the three libraries that picks its own vector instructions is limited to AVX2:
# oneDNN (convolutions), MKL (matrix products: F.linear, mm) and ATen's own kernels
# (BatchNorm, elementwise ops, the optimizer). Limiting oneDNN alone, as figures before
# 2026-11-30 did, leaves MKL's AVX-512 GEMMs in place (measured 252 GFLOP/s against
# 121 with AVX2, 2 threads, this Xeon): a faster machine than any AVX2 CPU.
export ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
exec "$@"
