#!/usr/bin/env bash
# Distributed throughput on one host: `rnnlm train --workers N` configurations run alternately, REPEATS times each.
# Prints per configuration the median tokens/s over all runs' epochs after the first, its ratio to the group's
# baseline, and the medians of the parameter-server share of step time and of the coordinator's bytes per step
# each way per worker (the end-of-run "parameter server:" line).
#
#   bench/workers.sh [REPEATS=3] [EPOCHS=3] [extra rnnlm flags...]
#       today's benchmark: char GRU H=256 B=32 T=35 timemachine, in-process (--workers 0), --workers 1, --workers 2
#   bench/workers.sh --model char|word|translation|all [--mode per-worker|global|both] [--repeats N] [--epochs N]
#                    [--timeout S] [-- extra rnnlm flags...]
#       char:        GRU H=256 T=35 on timemachine (characters)
#       word:        2-layer LSTM 200/200 on tinyshakespeare words (--tokenizer lines --min-freq 2, ≈ 10.7k vocabulary,
#                    ≈ 4.9M parameters), SGD lr 20, clip 0.25, T=20, the first 30,000 tokens
#       translation: issue #13's real fra-eng setting (20,000 pairs, bidirectional GRU 128, Adam), batch 128,
#                    --workers 1 vs --workers 2 (2 epochs by default; its own mode, the same global batch)
#     per-worker: the same 16 streams per worker: --workers 1 --batch-size 16 vs --workers 2 --batch-size 32
#     global:     the recipe's global batch unchanged (word 20, char 32): in-process vs --workers 2
#
# Every run is under a watchdog (--timeout, default 900 s): a run that hangs is killed and the script fails
# naming it. Needs the corpora: --data-dir in the extra flags or $RNNLM_DATA_DIR (default ../shared/data beside
# the checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

repeats=3 epochs="" model="" mode="both" timeout_s=900 extra=()
if [ $# -eq 0 ] || [[ "$1" =~ ^[0-9]+$ ]]; then
    # Today's positional form.
    repeats="${1:-3}"; epochs="${2:-3}"; shift $(( $# >= 2 ? 2 : $# )) || true
    model="default"; extra=("$@")
else
    while [ $# -gt 0 ]; do
        case "$1" in
            --model) model="$2"; shift 2 ;;
            --mode) mode="$2"; shift 2 ;;
            --repeats) repeats="$2"; shift 2 ;;
            --epochs) epochs="$2"; shift 2 ;;
            --timeout) timeout_s="$2"; shift 2 ;;
            --) shift; extra=("$@"); break ;;
            *) echo "workers.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
        esac
    done
fi
case "$model" in default|char|word|translation|all) ;; *) echo "workers.sh: --model char|word|translation|all, got '$model'" >&2; exit 2 ;; esac
case "$mode" in per-worker|global|both) ;; *) echo "workers.sh: --mode per-worker|global|both, got '$mode'" >&2; exit 2 ;; esac
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || { echo "workers.sh: REPEATS must be a positive number, got '$repeats'" >&2; exit 2; }

export RNNLM_DATA_DIR="${RNNLM_DATA_DIR:-$(cd "$here/.." && pwd)/shared/data}"
(cd "$here" && swift build -c release >/dev/null)
rnnlm="$here/.build/release/rnnlm"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

char=(--dataset timemachine --model gru --hidden 256 --num-steps 35)
word=(--dataset tinyshakespeare --tokenizer lines --min-freq 2 --model lstm --layers 2 --embed 200 --hidden 200
      --optimizer sgd --lr 20 --clip 0.25 --num-steps 20 --max-tokens 30000)
translation=(--task translation --dataset fra-eng --num-examples 20000 --num-steps 12 --embed 128 --hidden 128 --layers 2
             --model gru --bidirectional --dropout 0.2 --batch-size 128 --optimizer adam --lr 0.002 --clip 1)

# The configurations, one a line: group|label|is-baseline|epochs|flags (the group's title is its first line's).
configs="$out/configs"
: > "$configs"
add() { local IFS=' '; echo "$1|$2|$3|$4|${*:5}" >> "$configs"; }
want() { [ "$model" = "$1" ] || [ "$model" = all ]; }
mode_on() { [ "$mode" = "$1" ] || [ "$mode" = both ]; }
e="${epochs:-3}"
if [ "$model" = default ]; then
    t="GRU H=256 B=32 T=35 timemachine"
    add "$t" "in-process (--workers 0)" 0 "$e" --workers 0 "${char[@]}" --batch-size 32
    add "$t" "--workers 1" 1 "$e" --workers 1 "${char[@]}" --batch-size 32
    add "$t" "--workers 2" 0 "$e" --workers 2 "${char[@]}" --batch-size 32
fi
if want char && mode_on per-worker; then
    t="char GRU-256 T=35, same per-worker batch (16 streams each)"
    add "$t" "--workers 1 --batch-size 16" 1 "$e" --workers 1 "${char[@]}" --batch-size 16
    add "$t" "--workers 2 --batch-size 32" 0 "$e" --workers 2 "${char[@]}" --batch-size 32
fi
if want char && mode_on global; then
    t="char GRU-256 T=35, same global batch (32)"
    add "$t" "in-process --batch-size 32" 1 "$e" --workers 0 "${char[@]}" --batch-size 32
    add "$t" "--workers 2 --batch-size 32" 0 "$e" --workers 2 "${char[@]}" --batch-size 32
fi
if want word && mode_on per-worker; then
    t="word LSTM 2x200 T=20 tinyshakespeare, same per-worker batch (16 streams each)"
    add "$t" "--workers 1 --batch-size 16" 1 "$e" --workers 1 "${word[@]}" --batch-size 16
    add "$t" "--workers 2 --batch-size 32" 0 "$e" --workers 2 "${word[@]}" --batch-size 32
fi
if want word && mode_on global; then
    t="word LSTM 2x200 T=20 tinyshakespeare, same global batch (20)"
    add "$t" "in-process --batch-size 20" 1 "$e" --workers 0 "${word[@]}" --batch-size 20
    add "$t" "--workers 2 --batch-size 20" 0 "$e" --workers 2 "${word[@]}" --batch-size 20
fi
if want translation; then
    t="translation fra-eng (issue #13's real setting), batch 128"
    add "$t" "--workers 1" 1 "${epochs:-2}" --workers 1 "${translation[@]}"
    add "$t" "--workers 2" 0 "${epochs:-2}" --workers 2 "${translation[@]}"
fi

for r in $(seq 1 "$repeats"); do
    n=0
    while IFS='|' read -r group label base ep flags; do
        n=$((n + 1))
        log="$out/c$n-r$r.log"
        # shellcheck disable=SC2086  # flags is a word list built above
        status=0
        timeout --kill-after=10 "$timeout_s" "$rnnlm" train $flags --epochs "$ep" --seed "$r" "${extra[@]}" > "$log" 2>&1 || status=$?
        if [ "$status" != 0 ]; then
            [ "$status" = 124 ] && echo "workers.sh: watchdog: '$label' ($group), run $r, did not finish within ${timeout_s} s; killed" >&2 \
                || echo "workers.sh: '$label' ($group), run $r, failed with status $status:" >&2
            tail -20 "$log" >&2
            exit 1
        fi
    done < "$configs"
done

python3 - "$out" "$repeats" <<'PY'
import re, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
configs = [line.rstrip("\n").split("|") for line in open(f"{out}/configs")]
def med(xs): return statistics.median(xs) if xs else None
rows = []
for n, (group, label, base, ep, flags) in enumerate(configs, 1):
    tps, share, sent, recv = [], [], [], []
    for r in range(1, repeats + 1):
        text = open(f"{out}/c{n}-r{r}.log").read()
        rates = [float(m.replace(",", "")) for m in re.findall(r"^epoch \d+ .*?([\d,]+) tokens/s", text, re.M)]
        tps += rates[1:] if len(rates) > 1 else rates  # the first epoch includes warm-up
        m = re.search(r"parameter server: ([\d.]+)% of step time", text)
        if m: share.append(float(m.group(1)))
        m = re.search(r"traffic per step: out [\d,]+ B \(([\d,]+) B per worker\), in [\d,]+ B \(([\d,]+) B per worker\)", text)
        if m:
            sent.append(int(m.group(1).replace(",", ""))); recv.append(int(m.group(2).replace(",", "")))
    rows.append((group, label, base == "1", med(tps), med(share), med(sent), med(recv)))
fmt = lambda x, f: f.format(x) if x is not None else "-"
for group in dict.fromkeys(r[0] for r in rows):
    g = [r for r in rows if r[0] == group]
    base = next(r for r in g if r[2])
    print(f"\n{group}: {repeats} alternating runs per configuration (median over epochs 2+)")
    print(f"{'configuration':<30}{'tokens/s':>12}{'ratio':>8}{'PS share':>10}{'MB out/step/worker':>20}{'MB in/step/worker':>19}")
    for _, label, _, t, s, o, i in g:
        ratio = f"{t / base[3]:.2f}x" if t and base[3] else "-"
        print(f"{label:<30}{fmt(t, '{:,.0f}'):>12}{ratio:>8}{fmt(s, '{:.1f}%'):>10}"
              f"{fmt(o and o / 1e6, '{:.3f}'):>20}{fmt(i and i / 1e6, '{:.3f}'):>19}")
    print(f"(ratio: to '{base[1]}')")
PY
