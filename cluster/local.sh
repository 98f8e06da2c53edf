#!/usr/bin/env bash
# Coordinator + N workers on this host as separate commands: the pattern to copy to other hosts.
#
#   cluster/local.sh N [rnnlm training flags...]
#   e.g. cluster/local.sh 2 --dataset timemachine --model gru --epochs 10 --checkpoint-dir runs/local
#
# The coordinator listens on tcp://127.0.0.1:$PORT (default: a free port it picks, printed), and the workers
# are started once it is listening, so a coordinator that cannot bind (PORT in use by another run) stops the
# script before any worker could join that other run. On other hosts you would run the same
# `rnnlm worker --connect tcp://COORDINATOR:PORT` lines there (see cluster/README.md).
set -euo pipefail
n="${1:?usage: cluster/local.sh N [training flags]}"; shift
here="$(cd "$(dirname "$0")/.." && pwd)"
rnnlm="${RNNLM:-$here/.build/release/rnnlm}"
[ -x "$rnnlm" ] || { echo "local.sh: $rnnlm not found; run: swift build -c release" >&2; exit 1; }

pids=()
log="$(mktemp)"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$rnnlm" coordinator --bind "tcp://127.0.0.1:${PORT:-*}" --expect-workers "$n" "$@" > >(tee "$log") 2>&1 &
coordinator=$!
pids+=("$coordinator")
endpoint=""
while [ -z "$endpoint" ]; do
    endpoint="$(sed -n 's/^coordinator listening on \(tcp:[^ ]*\).*/\1/p' "$log" | head -n 1)"
    [ -n "$endpoint" ] && break
    if ! kill -0 "$coordinator" 2>/dev/null; then
        rc=0; wait "$coordinator" || rc=$?; exit "$rc"  # it stopped before listening: a bad flag, the port in use, nothing to do
    fi
    sleep 0.05
done
for i in $(seq 0 $((n - 1))); do
    "$rnnlm" worker --connect "$endpoint" --name "local-$i" --threads 1 --quiet &
    pids+=("$!")
done
wait "$coordinator"
