#!/usr/bin/env bash
# Scripted check of the public API with the tools users already have: grpcurl (list,
# describe, ListNodes, GetNode NotFound / InvalidArgument, WatchEvents seeing a join and a
# leave), grpc_health_probe, and the Node.js example. Runs real `node agent` processes on
# loopback and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=${NODE:-bin/node}
GRPCURL=${GRPCURL:-grpcurl}
PROBE=${PROBE:-grpc-health-probe}
BASE=${API_CHECK_PORT:-4571}
A=127.0.0.1:$BASE B=127.0.0.1:$((BASE + 1))
LOGS=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$LOGS"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$LOGS"/*; do echo "--- $f"; cat "$f"; done; exit 1; }
pass() { echo "ok: $*"; }

"$NODE" agent --name apia --host 127.0.0.1 --port "$BASE" --heartbeat-interval 1s >"$LOGS/apia.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$PROBE" -addr "$A" >/dev/null 2>&1 && break; sleep 0.1; done

"$PROBE" -addr "$A" 2>&1 | grep -q SERVING || fail "grpc_health_probe should report SERVING"
pass "grpc_health_probe -addr $A"

# Readiness: the first node by configuration (no seed) is ready alone.
for _ in $(seq 50); do "$PROBE" -addr "$A" -service meshnode.readiness >/dev/null 2>&1 && break; sleep 0.1; done
"$PROBE" -addr "$A" -service meshnode.readiness 2>&1 | grep -q SERVING || fail "grpc_health_probe -service meshnode.readiness should report SERVING"
pass "grpc_health_probe -addr $A -service meshnode.readiness"

services=$("$GRPCURL" -plaintext "$A" list)
for s in cluster.v1.MembershipService cluster.v1.PeerService grpc.health.v1.Health; do
  grep -qx "$s" <<<"$services" || fail "grpcurl list should show $s, got: $services"
done
pass "grpcurl list"

"$GRPCURL" -plaintext "$A" describe cluster.v1.MembershipService | grep -q "rpc WatchEvents" || fail "describe should show WatchEvents"
pass "grpcurl describe cluster.v1.MembershipService"

# WatchEvents in the background, then a node joins and leaves.
"$GRPCURL" -plaintext -d '{"snapshot": true}' "$A" cluster.v1.MembershipService/WatchEvents >"$LOGS/watch.json" 2>&1 &
watcher=$!
pids+=($watcher)
for _ in $(seq 50); do grep -q snapshot "$LOGS/watch.json" && break; sleep 0.1; done
grep -q snapshot "$LOGS/watch.json" || fail "WatchEvents should send the snapshot first"

"$NODE" agent --name apib --host 127.0.0.1 --port $((BASE + 1)) --seeds "apia@$A" --heartbeat-interval 1s >"$LOGS/apib.log" 2>&1 &
b=$!
pids+=($b)
for _ in $(seq 50); do
  "$GRPCURL" -plaintext -d '{"connected_only": true}' "$A" cluster.v1.MembershipService/ListNodes 2>/dev/null | grep -q "apib@$B" && break
  sleep 0.1
done
"$GRPCURL" -plaintext -d '{"connected_only": true}' "$A" cluster.v1.MembershipService/ListNodes | grep -q "NODE_STATUS_CONNECTED" || fail "ListNodes should list apib connected"
pass "grpcurl ListNodes"

"$GRPCURL" -plaintext -d "{\"id\": \"apib@$B\"}" "$A" cluster.v1.MembershipService/GetNode | grep -q "\"name\": \"apib\"" || fail "GetNode apib"
out=$("$GRPCURL" -plaintext -d '{"id": "ghost@127.0.0.1:1"}' "$A" cluster.v1.MembershipService/GetNode 2>&1 || true)
grep -q "NotFound" <<<"$out" || fail "GetNode of an unknown id should be NotFound, got: $out"
out=$("$GRPCURL" -plaintext -d '{"id": "1bad@h:1"}' "$A" cluster.v1.MembershipService/GetNode 2>&1 || true)
grep -q "InvalidArgument" <<<"$out" && grep -q "name must start with a letter" <<<"$out" || fail "GetNode of a malformed id should be InvalidArgument, got: $out"
pass "grpcurl GetNode (found, NotFound, InvalidArgument)"

# The Node.js example follows the next two events: apib leaves, apic joins.
(cd examples/nodejs && timeout 20 node watch.js "$A" --max-events 1 >"$LOGS/nodejs.out" 2>&1) &
js=$!
for _ in $(seq 50); do grep -q "registered" "$LOGS/nodejs.out" 2>/dev/null && break; sleep 0.1; done

kill -TERM "$b"
for _ in $(seq 50); do grep -q GRACEFUL_SHUTDOWN "$LOGS/watch.json" && break; sleep 0.1; done
grep -q '"nodeUp"' "$LOGS/watch.json" || fail "WatchEvents should show apib joining"
grep -q 'NODE_DOWN_REASON_GRACEFUL_SHUTDOWN' "$LOGS/watch.json" || fail "WatchEvents should show apib leaving"
pass "grpcurl WatchEvents saw the join and the graceful leave"

wait "$js" || fail "the Node.js example failed"
grep -q "apib@$B (NODE_DOWN_REASON_GRACEFUL_SHUTDOWN)" "$LOGS/nodejs.out" || fail "the Node.js example should print apib's leave"
pass "Node.js example (@grpc/grpc-js + @grpc/proto-loader) listed nodes and followed events:"
sed 's/^/    /' "$LOGS/nodejs.out"
echo "api-check: all passed"
