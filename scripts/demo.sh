#!/usr/bin/env bash
# The seed's three-node example as real processes on loopback: seed1; worker1 seeding seed1;
# worker2 seeding only worker1 (it meets seed1 through gossip). Shows each node's members,
# stops worker2 gracefully while seed1 is watched, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=bin/node
BASE=${DEMO_PORT:-4471}
S1=127.0.0.1:$BASE W1=127.0.0.1:$((BASE + 1)) W2=127.0.0.1:$((BASE + 2))
LOGS=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${DEMO_KEEP_LOGS:-}" ] && cp -r "$LOGS" "$DEMO_KEEP_LOGS"; rm -rf "$LOGS"
}
trap cleanup EXIT

agent() { # name port seeds
  "$NODE" agent --name "$1" --host 127.0.0.1 --port "$2" --seeds "$3" --heartbeat-interval 1s ${DEMO_AGENT_FLAGS:-} >"$LOGS/$1.log" 2>&1 &
  pids+=($!)
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting seed1 ($S1), worker1 ($W1, seeds seed1), worker2 ($W2, seeds worker1 only)"
agent seed1 "$BASE" ""
for _ in $(seq 50); do "$NODE" members --addr "$S1" >/dev/null 2>&1 && break; sleep 0.1; done
agent worker1 $((BASE + 1)) "seed1@$S1"
agent worker2 $((BASE + 2)) "$W1"

# Wait (at most 10 s) until every node lists the other two as connected (and itself, marked *).
for _ in $(seq 100); do
  ok=1
  for a in "$S1" "$W1" "$W2"; do
    n=$("$NODE" members --addr "$a" 2>/dev/null | grep -c ' connected ' || true)
    [ "$n" = 3 ] || ok=0
  done
  [ $ok = 1 ] && break
  sleep 0.1
done
[ $ok = 1 ] || { echo "cluster did not form; logs:"; cat "$LOGS"/*.log; exit 1; }

for a in "$S1" "$W1" "$W2"; do
  say "node members --addr $a"
  "$NODE" members --addr "$a"
done

say "node watch --addr $S1 (in the background), then SIGTERM to worker2"
"$NODE" watch --addr "$S1" >"$LOGS/watch.out" 2>&1 &
watcher=$!
pids+=($watcher)
sleep 0.5
kill -TERM "${pids[2]}"
for _ in $(seq 50); do grep -q node_down "$LOGS/watch.out" && break; sleep 0.1; done
kill "$watcher" 2>/dev/null || true
cat "$LOGS/watch.out"

say "node members --all --addr $W1 after worker2 left"
"$NODE" members --all --addr "$W1"
say "node health --addr $S1"
"$NODE" health --addr "$S1"
say "seed1's log"
cat "$LOGS/seed1.log"
