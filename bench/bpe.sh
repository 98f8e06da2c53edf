#!/usr/bin/env bash
# BPE learning, rnnlm vs Hugging Face tokenizers (bench/bpe.py): builds bench's bpe-bench, installs tokenizers into
# a virtual environment if it is missing, makes the ≥ 10 MB text in a temporary folder, and runs the cases.
#
#   bench/bpe.sh [--repeats N] [--case PATH:MERGES ...]
# Default cases: tinyshakespeare with 500 and 2,000 merges, and 30,000 merges on "mix" (12.96 MB: tinyshakespeare,
# timemachine, then the French and the English side of fra-eng/fra.txt).
# Environment: BPE_VENV (default /tmp/bpe-venv), RNNLM_DATA_DIR (default ../shared/data beside the checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${BPE_VENV:-/tmp/bpe-venv}"
data="${RNNLM_DATA_DIR:-$(cd "$here/.." && pwd)/shared/data}"
if ! "$venv/bin/python" -c "import tokenizers" 2>/dev/null; then
    echo "bpe: installing tokenizers into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q tokenizers
fi
build() { swift build -c release --package-path "$here/bench" --product bpe-bench >/dev/null; }
# SwiftPM can keep a stale file list of the main package (a path dependency); a clean build fixes that.
build 2>/dev/null || { rm -rf "$here/bench/.build"; build; }
bin="$(swift build -c release --package-path "$here/bench" --show-bin-path)/bpe-bench"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for f in tinyshakespeare.txt timemachine.txt fra-eng/fra.txt; do
    [ -f "$data/$f" ] || { echo "bpe: $data/$f is missing (set RNNLM_DATA_DIR to the shared corpora)" >&2; exit 1; }
done
{
    cat "$data/tinyshakespeare.txt" "$data/timemachine.txt"
    cut -f2 "$data/fra-eng/fra.txt"
    cut -f1 "$data/fra-eng/fra.txt"
} > "$tmp/mix.txt"
args=() cases=0
for a in "$@"; do [ "$a" = --case ] && cases=1; args+=("$a"); done
if [ $cases = 0 ]; then
    args+=(--case "$data/tinyshakespeare.txt:500" --case "$data/tinyshakespeare.txt:2000")
    args+=(--case "$tmp/mix.txt:30000")
fi
"$venv/bin/python" "$here/bench/bpe.py" --bench-bin "$bin" "${args[@]}"
