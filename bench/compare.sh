#!/usr/bin/env bash
# rnnlm vs PyTorch on this machine, side by side: installs the PyTorch peer into a virtual environment if it
# is missing (../shared/peers/README.md), builds rnnlm, and runs bench/compare.py.
#
#   bench/compare.sh [--word] [--repeats N] [--only NAME,...] [--baseline OLD_RNNLM] [--no-peer]
#   (--word: the word-level rows, tinyshakespeare as words against torch_wordlm.py)
#   bench/compare.sh --translation [--parts d2l,speed,workers,bleu] [--repeats N]   (bench/translation.py)
# Environment: PEER_VENV (default /tmp/peer-venv), PEERS (default ../shared/peers beside the checkout),
# RNNLM_DATA_DIR (default ../shared/data), BLEU_PYTHON (a python with sacrebleu, default /tmp/bleu-venv/bin/python).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${PEER_VENV:-/tmp/peer-venv}"
export PEERS="${PEERS:-$(cd "$here/.." && pwd)/shared/peers}"
export RNNLM_DATA_DIR="${RNNLM_DATA_DIR:-$(cd "$here/.." && pwd)/shared/data}"
if ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "compare: installing the PyTorch peer into $venv (CPU wheel, about 1 GB)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0 numpy || "$venv/bin/pip" install -q torch numpy
fi
(cd "$here" && swift build -c release >/dev/null)
script=compare.py args=()
for a in "$@"; do
    if [ "$a" = --translation ]; then script=translation.py; else args+=("$a"); fi
done
exec "$venv/bin/python" "$here/bench/$script" --rnnlm "$here/.build/release/rnnlm" "${args[@]}"
