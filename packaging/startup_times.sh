#!/usr/bin/env bash
# Start-up times of a built bundle (docs/packaging.md): `--cli --help`, the self-test
# and the app's main window, cold (page cache dropped: needs root) and warm.
# Usage: bash packaging/startup_times.sh [dist/bpd-studio/bpd-studio]
set -u
exe=$(realpath "${1:-dist/bpd-studio/bpd-studio}")
tmp=$(mktemp -d /tmp/bpd-startup.XXXXXX)
export BPD_STUDIO_HOME="$tmp/home" QT_QPA_PLATFORM=offscreen

cold() { sync && echo 3 >/proc/sys/vm/drop_caches; }
seconds_since() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.2f s'; }
timed() {
  local start rc
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  rc=$?
  echo "$(seconds_since "$start") (exit $rc)"
}
# The app's main window is built when it has read its last page icon (settings.svg):
# strace reports that moment; the app is then ended.
window() {
  local log="$tmp/strace.txt" start app
  rm -f "$log"
  start=$(date +%s.%N)
  strace -f -qq -e trace=openat -o "$log" "$exe" --no-restore >/dev/null 2>&1 &
  local tracer=$!
  for _ in $(seq 1 1200); do
    grep -q 'icons/settings.svg' "$log" 2>/dev/null && break
    sleep 0.05
  done
  seconds_since "$start"
  app=$(head -n1 "$log" | cut -d' ' -f1)
  kill "$app" 2>/dev/null
  wait "$tracer" 2>/dev/null
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "before: $(uptime)"
echo "--cli --help  cold: $(cold; timed "$exe" --cli --help)"
echo "--cli --help  warm: $(timed "$exe" --cli --help)"
echo "--cli --help  warm: $(timed "$exe" --cli --help)"
echo "main window   cold: $(cold; window)"
echo "main window   warm: $(window)"
echo "main window   warm: $(window)"
echo "--self-test   cold: $(cold; timed "$exe" --self-test)"
echo "--self-test   warm: $(timed "$exe" --self-test)"
echo "after: $(uptime)"
rm -rf "$tmp"
