#!/usr/bin/env bash
# Sustained appends against a fresh 3-process region: server CPU and minor
# page faults per append over a whole run long enough for Badger to flush
# memtables (docs/PERFORMANCE.md, "Sustained load"). Binds 127.0.0.1:17001-17003
# and 17101-17103; stops what it started.
# Usage: tests/perf/sustained.sh MERIDIAN_BIN [CLIENTS] [SECONDS]
# The servers inherit the environment (e.g. MERIDIAN_STATE_COMPRESSION=snappy).
set -u
bin=$1; clients=${2:-64}; dur=${3:-60}
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
. "$(dirname "$0")/region3.sh"
start_region3 "$bin" "$work" || exit 1
snap() { for p in "${pids[@]}"; do awk '{print $10, $14+$15}' "/proc/$p/stat"; done; }
before=$(snap)
out=$("$bin" bench --endpoint "$leader" --duration "${dur}s" --clients "$clients" --prefix b- --json 2>/dev/null)
after=$(snap)
n=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["appends"]["ok"])')
ps=$(echo "$out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["appends"]["per_s"]))')
paste <(echo "$before") <(echo "$after") | awk -v n="$n" -v ps="$ps" -v tck="$(getconf CLK_TCK)" '
  {f=$3-$1; c=($4-$2)/tck*1e6; tf+=f; tc+=c; printf "node%d faults/append %.2f cpu-us/append %.0f\n", NR, f/n, c/n}
  END {printf "total faults/append %.2f cpu-us/append %.0f appends/s %d\n", tf/n, tc/n, ps}'
