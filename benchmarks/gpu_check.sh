#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md: `bpd bench train` at 512 and 224 px and a short
# `paper`-preset cross-validation on the demo cohort, each with its wall time: once
# with one fold at a time and once with 4 folds at once on the one GPU (issue 12).
# One JSON object per line goes to $OUT/gpu.jsonl (the human-readable log to stdout).
#
#   OUT=/some/dir PYTHONPATH=. bash benchmarks/gpu_check.sh
#
# Took under 4 minutes on an H100 with 2 folds one at a time; the two 4-fold runs add
# more (not timed yet). Overrides (to try it on a CPU with tiny sizes):
#   DEVICE=cuda  RESOLUTIONS="512 224"  STEPS=30  BATCH=8  PYTHON=python3
#   PAPER_RES=512  PAPER_FOLDS=4  PAPER_EPOCHS=4  PAPER_PROBE=2  PAPER_WORKERS="1 4"
#   TABLE=resources/demo_cohort/cohort.csv
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
RESOLUTIONS="${RESOLUTIONS-512 224}"  # set it empty to skip the bench
STEPS="${STEPS:-30}"
BATCH="${BATCH:-8}"
PAPER_RES="${PAPER_RES:-512}"
PAPER_FOLDS="${PAPER_FOLDS:-4}"
PAPER_WORKERS="${PAPER_WORKERS:-1 4}"  # folds at once on the one device, each a run
PAPER_EPOCHS="${PAPER_EPOCHS:-4}"
PAPER_PROBE="${PAPER_PROBE:-2}"
TABLE="${TABLE:-resources/demo_cohort/cohort.csv}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
export BPD_STUDIO_HOME="$OUT/studio-home"   # empty image cache: import is timed too
mkdir -p "$OUT" "$BPD_STUDIO_HOME"
JSONL="$OUT/gpu.jsonl"
: > "$JSONL"

elapsed() { "$PYTHON" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$2"; }

# append one JSON line: record KIND SECONDS EXIT_CODE [file whose last JSON line to merge]
record() {
  "$PYTHON" - "$@" >> "$JSONL" <<'PY'
import json, sys
kind, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
row = {"check": kind, "wall_s": round(seconds, 2), "exit_code": code}
if len(sys.argv) > 4:
    lines = [l for l in open(sys.argv[4], encoding="utf-8", errors="replace").read().splitlines() if l.strip()]
    for line in reversed(lines):
        try:
            row["result"] = json.loads(line)
            break
        except ValueError:
            continue
    else:
        row["tail"] = lines[-5:]
print(json.dumps(row))
PY
}

"$PYTHON" - >> "$JSONL" <<'PY'
import json, platform, torch
info = {"check": "machine", "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    info["gpu"] = torch.cuda.get_device_name(0)
    info["bf16"] = torch.cuda.is_bf16_supported()
print(json.dumps(info))
PY

for RES in $RESOLUTIONS; do
  for PREC in auto fp32; do
    echo "== bench train ${RES} px, ${PREC}" >&2
    LOG="$OUT/bench-${RES}-${PREC}.log"
    START=$(date +%s.%N)
    "$PYTHON" -m core.cli.main bench train --resolution "$RES" --batch-size "$BATCH" \
      --steps "$STEPS" --warmup 5 --device "$DEVICE" --precision "$PREC" > "$LOG" 2>&1
    CODE=$?
    END=$(date +%s.%N)
    tail -n 2 "$LOG" >&2
    record "bench_train_${RES}_${PREC}" "$(elapsed "$START" "$END")" "$CODE" "$LOG"
  done
done

for W in $PAPER_WORKERS; do
echo "== paper preset, ${PAPER_FOLDS} folds x 1, ${PAPER_PROBE}+${PAPER_EPOCHS} epochs, ${PAPER_RES} px, ${W} worker(s)" >&2
LOG="$OUT/paper-w${W}.log"
START=$(date +%s.%N)
"$PYTHON" -m core.cli.main train "$TABLE" --outcome diagnosis --positive PNEUMONIA \
  --negative NORMAL --preset paper --init random --device "$DEVICE" --repeats 1 --folds "$PAPER_FOLDS" \
  --epochs "$PAPER_EPOCHS" --probe-epochs "$PAPER_PROBE" --resolution "$PAPER_RES" \
  --workers "$W" --out "$OUT/paper-run-w${W}" --quiet > "$LOG" 2>&1
CODE=$?
END=$(date +%s.%N)
tail -n 12 "$LOG" >&2
# the run's own timings: seconds per epoch by phase, from fold.json histories
"$PYTHON" - "$OUT/paper-run-w${W}" "$(elapsed "$START" "$END")" "$CODE" "$W" >> "$JSONL" <<'PY'
import json, sys, glob, statistics
run, wall, code, workers = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
row = {"check": "paper_preset_short", "workers": workers, "wall_s": round(wall, 2), "exit_code": code}
try:
    row["summary_auroc"] = json.load(open(f"{run}/summary.json"))["auroc"]
    row["config"] = {k: json.load(open(f"{run}/config.json"))["train"][k]
                     for k in ("resolution", "epochs", "probe_epochs", "cv_folds", "cv_repeats",
                               "batch_size", "device", "precision")}
    by_phase = {}
    for path in sorted(glob.glob(f"{run}/folds/*/fold.json")):
        for h in json.load(open(path))["history"]:
            by_phase.setdefault(h["phase"], []).append(h["seconds"])
    row["epoch_seconds_median"] = {k: statistics.median(v) for k, v in by_phase.items()}
    row["epoch_seconds"] = by_phase
    events = [json.loads(l) for l in open(f"{run}/events.jsonl")]
    started = [e for e in events if e["type"] == "run_started"]
    row["runtime"] = started[0].get("runtime") if started else None
except (OSError, KeyError, ValueError) as exc:
    row["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(row))
PY
done
echo "results: $JSONL" >&2
cat "$JSONL"
