#!/usr/bin/env bash
# CPU per write at 64 clients for NATS JetStream, etcd and a Meridian region,
# one after the other on this machine (docs/PERFORMANCE.md, issue 14): the
# three server processes' CPU from /proc/<pid>/stat around the load, the load
# generator's from /usr/bin/time, and how busy the whole machine was.
# Same deployments and clients as ../shared/peerbench/run.sh (3 processes each,
# fsync on every commit, 1 KiB values); the peers must be installed as its
# README says. Binds 127.0.0.1 ports 14222-14224, 16222-16224, 12379-12399,
# 17001-17003 and 17101-17103; stops what it started.
# Usage: tests/perf/peercpu.sh MERIDIAN_BIN [SECONDS] [PEERBENCH_DIR]
# PEERCPU_SYSTEMS (default "jetstream etcd meridian") picks the systems; with
# "meridian" alone no peer is needed, which suits an A/B of two binaries.
set -u
mbin=$1; dur=${2:-10}; peerbench=${3:-$(dirname "$0")/../../../shared/peerbench}
gobin=$(go env GOPATH)/bin
systems=${PEERCPU_SYSTEMS:-jetstream etcd meridian}
want() { [[ " $systems " == *" $1 "* ]]; }
need=""; want jetstream && need="nats-server"; want etcd && need="$need etcd benchmark"
for b in $need; do
  [ -x "$gobin/$b" ] || { echo "peercpu: $gobin/$b not installed (see $peerbench/README.md)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "peercpu: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
if want jetstream; then
  (cd "$peerbench" && go build -o "$work/jsbench" ./jsbench) || { echo "peercpu: cannot build $peerbench/jsbench" >&2; exit 2; }
fi
. "$(dirname "$0")/region3.sh"
tck=$(getconf CLK_TCK)
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$s"; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 2; pids=(); }
# measure NAME OPS_COMMAND -- LOAD_COMMAND...: runs the load, then OPS_COMMAND
# (reading the load's output on stdin) prints how many writes succeeded.
measure() {
  local name=$1 ops_cmd=$2; shift 3
  local m0 s0 m1 s1 ops
  m0=$(busy); s0=$(ticks "${pids[@]}")
  /usr/bin/time -f "%U %S %e" -o "$work/time" "$@" >"$work/out" 2>&1
  s1=$(ticks "${pids[@]}"); m1=$(busy)
  ops=$(bash -c "$ops_cmd" <"$work/out")
  [ -n "$ops" ] && [ "$ops" -gt 0 ] || { echo "peercpu: $name: no writes counted; its output:" >&2; tail -5 "$work/out" >&2; return 1; }
  echo "$name $ops $((s1 - s0)) $(cat "$work/time") $m0 $m1" | awk -v tck="$tck" '
    {ops=$2; srv=$3/tck; cli=$4+$5; d=$6; b=$9-$7; i=$10-$8
     printf "%-10s writes %7d  %6.0f/s  servers %4.0f us/write  client %4.0f us/write  total %4.0f  machine busy %3.0f%%\n",
       $1, ops, ops/d, srv*1e6/ops, cli*1e6/ops, (srv+cli)*1e6/ops, 100*b/(b+i)}'
}

# NATS JetStream: 3 servers, file store, sync_interval always.
run_jetstream() {
  for i in 0 1 2; do
    mkdir -p "$work/nats$i"
    cat >"$work/nats$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((14222 + i))
jetstream { store_dir: "$work/nats$i", sync_interval: always }
cluster { name: bench, listen: 127.0.0.1:$((16222 + i)), routes: [nats-route://127.0.0.1:16222, nats-route://127.0.0.1:16223, nats-route://127.0.0.1:16224] }
CONF
    "$gobin/nats-server" -c "$work/nats$i.conf" >"$work/nats$i.log" 2>&1 & pids+=($!)
  done
  sleep 4
  measure jetstream "sed -n 's/.* ops=\([0-9]*\) .*/\1/p'" -- "$work/jsbench" -mode expect -c 64 -d "${dur}s"
  stop_all
}

# etcd: 3 members, puts through the leader (as peerbench runs it).
run_etcd() {
  ic="e0=http://127.0.0.1:12380,e1=http://127.0.0.1:12381,e2=http://127.0.0.1:12382"
  for i in 0 1 2; do
    "$gobin/etcd" --name e$i --data-dir "$work/etcd$i" --listen-client-urls http://127.0.0.1:$((12379 + i * 10)) \
      --advertise-client-urls http://127.0.0.1:$((12379 + i * 10)) --listen-peer-urls http://127.0.0.1:$((12380 + i)) \
      --initial-advertise-peer-urls http://127.0.0.1:$((12380 + i)) --initial-cluster $ic --initial-cluster-state new \
      --initial-cluster-token bench --log-level warn >"$work/etcd$i.log" 2>&1 & pids+=($!)
  done
  sleep 5
  # A fixed count sized to take about as long as the other runs here.
  total=$((dur * 3800))
  measure etcd "awk '/Requests\\/sec/{r=1} END{if (r) print $total}'" -- \
    "$gobin/benchmark" --endpoints=127.0.0.1:12379,127.0.0.1:12389,127.0.0.1:12399 --target-leader --precise \
    --conns=16 --clients=64 put --key-size=16 --val-size=1024 --total=$total --sequential-keys
  stop_all
}

# Meridian: one region of 3 `meridian server` processes, `meridian bench` at its leader.
run_meridian() {
  start_region3 "$mbin" "$work" || exit 1
  measure meridian "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"appends\"][\"ok\"])'" -- \
    "$mbin" bench --endpoint "$leader" --duration "${dur}s" --clients 64 --prefix b- --json
}

for sys in jetstream etcd meridian; do
  if want $sys; then run_$sys; fi
done
