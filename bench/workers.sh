#!/usr/bin/env bash
# Distributed throughput: `rnnlm train --workers 1` and `--workers 2` (and the in-process trainer, W=0),
# alternately, REPEATS times each, on GRU H=256 B=32 T=35 char-level timemachine. Prints per configuration the
# median tokens/s over all runs' epochs after the first, and the median parameter-server share of step time.
#
#   bench/workers.sh [REPEATS=3] [EPOCHS=3] [extra rnnlm flags...]
# Needs the corpus: --data-dir or $RNNLM_DATA_DIR (default ../shared/data beside the checkout).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repeats="${1:-3}"; epochs="${2:-3}"; shift $(( $# >= 2 ? 2 : $# )) || true
export RNNLM_DATA_DIR="${RNNLM_DATA_DIR:-$(cd "$here/.." && pwd)/shared/data}"
(cd "$here" && swift build -c release >/dev/null)
rnnlm="$here/.build/release/rnnlm"
out="$(mktemp -d)"
for r in $(seq 1 "$repeats"); do
    for w in 0 1 2; do
        "$rnnlm" train --workers "$w" --dataset timemachine --model gru --hidden 256 --batch-size 32 --num-steps 35 \
            --epochs "$epochs" --seed "$r" "$@" > "$out/w$w-r$r.log" 2>&1
    done
done
python3 - "$out" "$repeats" <<'PY'
import glob, re, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
rows = {}
for w in (0, 1, 2):
    tps, share = [], []
    for f in sorted(glob.glob(f"{out}/w{w}-r*.log")):
        text = open(f).read()
        rates = [float(m.replace(",", "")) for m in re.findall(r"^epoch \d+ .*?([\d,]+) tokens/s", text, re.M)]
        tps += rates[1:]  # the first epoch includes warm-up
        m = re.search(r"parameter server: ([\d.]+)% of step time", text)
        if m: share.append(float(m.group(1)))
    rows[w] = (statistics.median(tps), statistics.median(share) if share else None, len(tps))
print(f"GRU H=256 B=32 T=35 timemachine, {repeats} alternating runs per configuration (median over epochs 2+)")
print(f"{'configuration':<28}{'tokens/s':>12}{'vs --workers 1':>16}{'PS share':>10}")
for w, name in ((0, "in-process (--workers 0)"), (1, "--workers 1"), (2, "--workers 2")):
    t, s, n = rows[w]
    print(f"{name:<28}{t:>12,.0f}{t / rows[1][0]:>15.2f}x{(f'{s:.1f}%' if s is not None else '-'):>10}")
PY
rm -rf "$out"
