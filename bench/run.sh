#!/usr/bin/env bash
# Builds the benchmark package and runs the core benchmarks for each cell at D2L's size
# (H=256, V=28, B=32, T=35, 1 thread). Extra arguments go to every run and override the defaults (e.g. --threads 2, --repeats 20).
set -euo pipefail
cd "$(dirname "$0")"
# SwiftPM can keep a stale file list of the main package (a path dependency) after files are added to it;
# a clean build fixes that.
swift build -c release --package-path . >/dev/null 2>&1 || { rm -rf .build; swift build -c release --package-path . >/dev/null; }
bin="$(swift build -c release --package-path . --show-bin-path)/rnnlm-bench"
for model in rnn gru lstm; do
    # Options given to this script come first, so they win over these defaults.
    "$bin" "$@" --model "$model" --hidden 256 --vocab 28 --batch 32 --steps 35 --repeats 50
done
