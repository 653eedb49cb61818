# Sourced by the scripts here: start_region3 BIN DIR starts one region of 3
# `meridian server` processes on 127.0.0.1 (API 17001-17003, Raft
# 17101-17103) with their data under DIR, appends their PIDs to the array
# `pids` (the caller stops them), waits for a leader, sets `leader` to its
# API URL and warms it up with 2 s of appends. Returns 1 without a leader.
start_region3() {
  local bin=$1 dir=$2 i b
  local peers="n1=127.0.0.1:17101=127.0.0.1:17001,n2=127.0.0.1:17102=127.0.0.1:17002,n3=127.0.0.1:17103=127.0.0.1:17003"
  for i in 1 2 3; do
    b=""; [ $i = 1 ] && b="--bootstrap"
    "$bin" server --region r1 --node-id n$i --data-dir "$dir/n$i" --api-addr 127.0.0.1:1700$i \
      --raft-addr 127.0.0.1:1710$i --peers "$peers" $b --log-level warn >"$dir/n$i.log" 2>&1 & pids+=($!)
  done
  for _ in $(seq 1 100); do "$bin" status --endpoint http://127.0.0.1:17001 2>/dev/null | grep -q Leader && break; sleep 0.2; done
  leader=$("$bin" status --endpoint http://127.0.0.1:17001,http://127.0.0.1:17002,http://127.0.0.1:17003 2>/dev/null | awk '$4=="Leader"{print $1; exit}')
  [ -n "$leader" ] || { echo "region3: no leader; the servers' logs are in $dir" >&2; return 1; }
  "$bin" bench --endpoint "$leader" --duration 2s --clients 8 --prefix warm- >/dev/null 2>&1
}
