#!/usr/bin/env bash
# Builds the container image daemonless (buildah, vfs storage, chroot isolation) from the
# static binary bin/node-static (make static), checks what it holds (only /node, a non-root
# user, /node as entrypoint), then runs the node from the image's root file system with an
# empty environment as that user: `node version`, then `node agent` on loopback until it
# serves grpc.health.v1, stopped by SIGTERM. Needs root and buildah.
set -euo pipefail
cd "$(dirname "$0")/.."
PROBE=${PROBE:-grpc-health-probe}
command -v buildah >/dev/null || { echo "image-check: buildah is not installed"; exit 1; }
test -x bin/node-static || { echo "image-check: bin/node-static is missing (make static)"; exit 1; }

work=$(mktemp -d)
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
ctr="" agent=""
cleanup() {
  if [ -n "$agent" ]; then kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
  if [ -n "$ctr" ]; then "${B[@]}" umount "$ctr" >/dev/null 2>&1 || true; "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
  "${B[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$work/agent.log" ] && cat "$work/agent.log"; exit 1; }
pass() { echo "ok: $*"; }

"${B[@]}" build --isolation chroot --build-arg BINARY_FROM=prebuilt -t meshnode:check -f Dockerfile . >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "buildah build"; }
pass "buildah build (FROM scratch, vfs storage, no daemon)"

user=$("${B[@]}" inspect --format '{{.OCIv1.Config.User}}' meshnode:check)
entry=$("${B[@]}" inspect --format '{{.OCIv1.Config.Entrypoint}}' meshnode:check)
[ "$user" = "65532:65532" ] || fail "image user should be 65532:65532, got $user"
[ "$entry" = "[/node]" ] || fail "image entrypoint should be [/node], got $entry"
pass "image runs /node as 65532:65532"

ctr=$("${B[@]}" from meshnode:check)
root=$("${B[@]}" mount "$ctr")
files=$(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$files" = "./node " ] || fail "the image should hold /node alone, holds: $files"
pass "the image holds /node alone (no shell, no libc)"

run() { env -i /usr/sbin/chroot --userspec=65532:65532 "$root" /node "$@"; }
out=$(run version) || fail "node version in the image's root"
grep -q '^node ' <<<"$out" || fail "node version printed: $out"
pass "node version in the image's root, empty environment: $out"

env -i /usr/sbin/chroot --userspec=65532:65532 "$root" /node agent --name img --host 127.0.0.1 --port 0 --log-format json >"$work/agent.log" 2>&1 &
agent=$!
addr=""
for _ in $(seq 100); do
  addr=$(grep -o '"listen":"[^"]*"' "$work/agent.log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || fail "node agent in the image's root did not start"
if command -v "$PROBE" >/dev/null; then
  for _ in $(seq 50); do "$PROBE" -addr "$addr" -service meshnode.readiness >/dev/null 2>&1 && break; sleep 0.1; done
  "$PROBE" -addr "$addr" -service meshnode.readiness 2>&1 | grep -q SERVING || fail "readiness of the agent in the image"
  pass "grpc_health_probe -service meshnode.readiness: SERVING"
fi
kill -TERM "$agent"
code=0
wait "$agent" || code=$?
agent=""
[ "$code" = 0 ] || fail "node agent should exit 0 on SIGTERM, exited $code"
pass "node agent served at $addr from the image's root and left on SIGTERM"
