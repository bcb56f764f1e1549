#!/usr/bin/env bash
# Runs the fault-injection suite (test/chaos: real `node agent` processes in network
# namespaces) and regenerates docs/reliability.md from the figures it recorded.
#
# Needs Linux, root, iproute2 and iptables (installed with apt-get when missing and
# possible). Kernel: network namespaces, veth, bridge, iptables (nf_tables or legacy) with
# the NFQUEUE target and nfnetlink_queue (used when sch_netem is absent), CFS bandwidth
# control (cgroup v2 cpu.max or v1 cpu.cfs_quota_us).
#
#   CHAOS_COUNT=3          run every scenario 3 times (figures pooled in the report)
#   CHAOS_RUN='TestChaos0[1-3]'   only some scenarios
#   CHAOS_SKIP='pattern'   leave scenarios out (go test -skip)
#   CHAOS_LOSS_DURATION=3m the loss/latency scenario at the issue's full length (default 60s)
#   CHAOS_ARTIFACTS=dir    where node logs and results.jsonl go (default bin/chaos)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "chaos: needs root (network namespaces, iptables, cgroups)" >&2
  exit 1
fi
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  if [ -z "${CHAOS_NO_INSTALL:-}" ] && command -v apt-get >/dev/null; then
    echo "== chaos: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "chaos: missing ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi

out=${CHAOS_ARTIFACTS:-bin/chaos}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/results.jsonl" "$out"/Test*
export CHAOS_ARTIFACTS="$out" CHAOS_RESULTS="$out/results.jsonl"

echo "== chaos: go test -tags chaos ./test/chaos/ (logs and figures in $out)"
set +e
go test -tags chaos -count="${CHAOS_COUNT:-1}" -timeout 40m -v -run "${CHAOS_RUN:-.}" ${CHAOS_SKIP:+-skip "$CHAOS_SKIP"} ./test/chaos/ 2>&1 | tee "$out/test.log"
rc=${PIPESTATUS[0]}
set -e

took=$(( $(date +%s) - start ))
took_text="$((took / 60))m$((took % 60))s"
if [ -s "$out/results.jsonl" ]; then
  go run -tags chaos ./test/chaos/report -in "$out/results.jsonl" -out docs/reliability.md -took "$took_text"
  echo "== chaos: docs/reliability.md regenerated"
fi
echo "== chaos took $took_text (exit $rc)"
exit "$rc"
