#!/usr/bin/env bash
# `make bundle-test`: build the bundle from a clean checkout of HEAD and run it.
#
# 1. git clone of the current commit into a temp folder (uncommitted work is not in it),
#    a fresh venv there with the project + the bundle extra (pip's cache is reused),
#    `make bundle` (build time and peak memory from /usr/bin/time -v);
# 2. bpd-studio --self-test (DICOM JPEG 2000, model, training step, Grad-CAM, report,
#    child processes); `weights status` (torchxrayvision imports); `federate` says
#    Flower is not in the bundle;
# 3. a short cpu-fast training run of the demo cohort through the frozen executable,
#    with --workers 2 so the frozen spawn children run the folds; its summary.json;
# 4. the frozen app, offscreen: bpd-studio --screenshots DIR (it also trains a live run
#    through the frozen job process and computes Grad-CAM in the Review tab).
# Env: VARIANT=cpu|gpu (default cpu), BUNDLE_TEST_DIR (default: a new /tmp folder).
set -euo pipefail

src=$(git rev-parse --show-toplevel)
commit=$(git -C "$src" rev-parse HEAD)
work=${BUNDLE_TEST_DIR:-$(mktemp -d /tmp/bpd-bundle-test.XXXXXX)}
variant=${VARIANT:-cpu}
name=bpd-studio
[ "$variant" = gpu ] && name=bpd-studio-gpu
say() { printf '\n== bundle-test: %s\n' "$*"; }
seconds() { local start=$1; echo $(( $(date +%s) - start )); }

say "commit $commit, variant $variant, in $work"
git clone --quiet "$src" "$work/src"
git -C "$work/src" checkout --quiet --detach "$commit"
cd "$work/src"

say "build venv and bundle (log: $work/build.log)"
python3 -m venv .venv
t0=$(date +%s)
if ! /usr/bin/time -v -o "$work/build-time.txt" make bundle VENV=.venv VARIANT="$variant" \
    >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  echo "bundle-test: FAILED: make bundle (log: $work/build.log)" >&2
  exit 1
fi
grep -E "Elapsed|Maximum resident" "$work/build-time.txt"
echo "venv + build: $(seconds "$t0") s; bundle size: $(du -sh "dist/$name" | cut -f1)"

exe="$work/src/dist/$name/bpd-studio"
export BPD_STUDIO_HOME="$work/home"  # the frozen app's runs, cache and settings
export QT_QPA_PLATFORM=offscreen

say "self-test"
t0=$(date +%s)
"$exe" --self-test
echo "self-test: $(seconds "$t0") s"

say "weights status (imports torchxrayvision, as every xrv run does)"
"$exe" weights status

say "federate: left out of the bundle, and says so"
if "$exe" federate simulate --site A=x --site B=y --outcome d --positive P \
    2>"$work/federate.err"; then
  echo "bundle-test: FAILED: federate ran in a bundle without Flower" >&2
  exit 1
fi
grep "not in this installed bundle" "$work/federate.err"

say "cpu-fast training run through the frozen executable (--workers 2)"
run="$BPD_STUDIO_HOME/runs/bundle-test-train"
cohort="$work/src/dist/$name/_internal/resources/demo_cohort/cohort.csv"
t0=$(date +%s)
"$exe" train "$cohort" --outcome diagnosis --positive PNEUMONIA --negative NORMAL \
  --preset cpu-fast --init random --resolution 64 --epochs 1 --probe-epochs 2 --folds 2 \
  --workers 2 --out "$run" --quiet
echo "training run: $(seconds "$t0") s"
if [ ! -s "$run/summary.json" ]; then
  echo "bundle-test: FAILED: no summary.json in $run" >&2
  exit 1
fi
"$work/src/.venv/bin/python" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print("summary.json: AUROC %.3f +- %.3f over %d patients" % (
    s["auroc"]["mean"], s["auroc"]["sd"], s["n_patients"]))' "$run/summary.json"

say "frozen app, offscreen screenshots"
shots="$work/screenshots"
t0=$(date +%s)
"$exe" --screenshots "$shots"
echo "screenshots: $(seconds "$t0") s"
ls "$shots"/*.png >/dev/null
say "PASSED; screenshots in $shots, bundle in $work/src/dist/$name"
