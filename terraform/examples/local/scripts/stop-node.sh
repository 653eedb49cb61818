#!/usr/bin/env bash
# Stops the node started in NODE_DIR: SIGTERM, then SIGKILL after 30 s.
set -euo pipefail
: "${NODE_DIR:?}"
[[ -f "$NODE_DIR/pid" ]] || exit 0
pid=$(cat "$NODE_DIR/pid")
if kill -TERM "$pid" 2>/dev/null; then
	for _ in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$NODE_DIR/pid"
