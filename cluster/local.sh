#!/usr/bin/env bash
# Coordinator + N workers on this host as separate commands: the pattern to copy to other hosts.
#
#   cluster/local.sh N [rnnlm training flags...]
#   e.g. cluster/local.sh 2 --dataset timemachine --model gru --epochs 10 --checkpoint-dir runs/local
#
# The coordinator listens on tcp://127.0.0.1:$PORT (default 5555). On other hosts you would run the same
# `rnnlm worker --connect tcp://COORDINATOR:PORT` lines there (see cluster/README.md).
set -euo pipefail
n="${1:?usage: cluster/local.sh N [training flags]}"; shift
port="${PORT:-5555}"
here="$(cd "$(dirname "$0")/.." && pwd)"
rnnlm="${RNNLM:-$here/.build/release/rnnlm}"
[ -x "$rnnlm" ] || { echo "local.sh: $rnnlm not found; run: swift build -c release" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$rnnlm" coordinator --bind "tcp://127.0.0.1:$port" --expect-workers "$n" "$@" &
coordinator=$!
pids+=("$coordinator")
for i in $(seq 0 $((n - 1))); do
    "$rnnlm" worker --connect "tcp://127.0.0.1:$port" --name "local-$i" --threads 1 --quiet &
    pids+=("$!")
done
wait "$coordinator"
