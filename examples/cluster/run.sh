#!/usr/bin/env bash
# Cluster mode on one machine, on loopback ports: etcd, Redis, one control plane and two gateways.
# Needs etcd and redis-server on the PATH (Debian: apt-get install etcd-server redis-server) and a built
# Gatehouse (npm ci). Everything runs from a temporary directory and stops with Ctrl-C.
#
#   examples/cluster/run.sh
#
# Then: admin API http://127.0.0.1:9180/api/v1 (user admin, password below), gateways on :9080 and :9082,
# their status ports on :9091 and :9093.
set -euo pipefail
cd "$(dirname "$0")/../.."
GH="node $PWD/bin/gatehouse.js"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

etcd --name gh --data-dir "$work/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster gh=http://127.0.0.1:2380 >"$work/etcd.log" 2>&1 &
pids+=($!)
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
sleep 1

export GATEHOUSE_CONFIG_PROVIDER_TYPE=etcd
export GATEHOUSE_CONFIG_PROVIDER_ENDPOINTS=http://127.0.0.1:2379
export GATEHOUSE_CONFIG_PROVIDER_PREFIX=/gatehouse
export GATEHOUSE_ADMIN_PASSWORD=${GATEHOUSE_ADMIN_PASSWORD:-change-me-cluster-demo}

GATEHOUSE_DATA_DIR="$work/cp" $GH control-plane >"$work/control-plane.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  GATEHOUSE_DATA_DIR="$work/gw$i" GATEHOUSE_INSTANCE_ID="gw-$i" GATEHOUSE_WORKERS=1 \
  GATEHOUSE_PROXY_HTTP=$((9078 + 2 * i)) GATEHOUSE_PROXY_HTTPS=-1 GATEHOUSE_STATUS_PORT=$((9089 + 2 * i)) \
    $GH gateway >"$work/gw$i.log" 2>&1 &
  pids+=($!)
done

echo "control plane: http://127.0.0.1:9180/api/v1  (admin / $GATEHOUSE_ADMIN_PASSWORD)"
echo "gateways:      http://127.0.0.1:9080  http://127.0.0.1:9082   status :9091 :9093"
echo "logs:          $work/*.log"
echo "Ctrl-C stops everything."
wait
