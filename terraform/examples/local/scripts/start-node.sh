#!/usr/bin/env bash
# Starts one `meridian server` in the background (its configuration is the
# MERIDIAN_* environment terraform passes) and waits until its region has a
# leader. NODE_DIR holds its pid file and log.
set -euo pipefail
: "${NODE_DIR:?}" "${MERIDIAN_BIN:?}" "${NODE_API:?}"
mkdir -p "$NODE_DIR"
if [[ -f "$NODE_DIR/pid" ]] && kill -0 "$(cat "$NODE_DIR/pid")" 2>/dev/null; then
	echo "node in $NODE_DIR already running (pid $(cat "$NODE_DIR/pid"))"
	exit 0
fi
setsid "$MERIDIAN_BIN" server </dev/null >>"$NODE_DIR/log" 2>&1 &
echo $! >"$NODE_DIR/pid"
for _ in $(seq 1 120); do
	if ! kill -0 "$(cat "$NODE_DIR/pid")" 2>/dev/null; then
		echo "meridian server in $NODE_DIR exited; its log:" >&2
		tail -n 30 "$NODE_DIR/log" >&2
		exit 1
	fi
	# A leader known to the node: its region formed (or it was added to it).
	if "$MERIDIAN_BIN" status --json --endpoint "http://$NODE_API" --timeout 1s 2>/dev/null | grep -q '"leader": *"[^"]'; then
		echo "node $MERIDIAN_REGION/$MERIDIAN_NODE_ID up on $NODE_API (pid $(cat "$NODE_DIR/pid"))"
		exit 0
	fi
	sleep 0.5
done
echo "node $MERIDIAN_REGION/$MERIDIAN_NODE_ID on $NODE_API knew no leader after 60 s; its log:" >&2
tail -n 30 "$NODE_DIR/log" >&2
exit 1
