#!/usr/bin/env bash
# Smoke run: start the gateway on the quick-start file with the demo upstream, proxy one request, stop it.
# Usage: scripts/smoke.sh [node command, default "node"]
set -euo pipefail
cd "$(dirname "$0")/.."
# Resolve the real binary (npx wraps it in a launcher that would not pass signals on).
NODE=$(${1:-node} -p process.execPath)
work=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$NODE" --version
"$NODE" bin/gatehouse.js validate examples/quickstart.yaml

port=$(( 20000 + RANDOM % 20000 ))
status=$(( port + 1 ))
GATEHOUSE_PROXY_HTTP=$port GATEHOUSE_PROXY_HTTPS=-1 GATEHOUSE_STATUS_PORT=$status GATEHOUSE_WORKERS=1 \
  "$NODE" bin/gatehouse.js gateway --file examples/quickstart.yaml --demo-upstream >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$status/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
body=$(curl -fsS "http://127.0.0.1:$port/users/42") || { echo "smoke: request failed"; cat "$work/log"; exit 1; }
echo "$body" | grep -q '"url": "/users/42"' || { echo "smoke: unexpected answer: $body"; cat "$work/log"; exit 1; }
kill -TERM "$pid"
wait "$pid"
echo "smoke: ok ($("$NODE" --version))"
