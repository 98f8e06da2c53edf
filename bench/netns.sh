#!/usr/bin/env bash
# Distributed throughput across simulated hosts: network namespaces (../shared/lab/netns-up.sh) with the
# coordinator on h1 and W workers on h2 … h(W+1), real TCP with CURVE keys made for the run, every host's egress
# (the coordinator's included) capped at RATE with a tbf qdisc as netns-shape.sh sets it but with a bucket of
# --burst bytes (default: 2 ms at RATE, at least 128 kB; netns-shape.sh's 1 MB bucket refills while the other
# direction transfers and let the character model's 0.9 MB messages through at veth speed, halving its measured
# step at 100mbit; a 64 kB bucket held a 1gbit link to 386 Mbit/s of TCP, 2 ms of it gives 955, and 128 kB gives
# 95 Mbit/s at 100mbit; --burst 1mb gives netns-shape.sh's shaping), and, unless --egress-only, every host's ingress too (the same tbf on its port of the
# lab's bridge): a full-duplex link of RATE each way, so W workers' gradients cannot reach the coordinator faster
# than RATE in all, as on a real NIC. For each model and each W it
# runs the same per-worker batch (--streams S each, default 16, so the global batch is S·W) for a fixed number of steps, then
# the single process on the same settings (--threads 1, and --threads W, which sums the rows in the same W groups
# as W workers do), and prints
#   tokens/s (global batch × T ÷ the coordinator's mean step time), the ratio to 1 worker host, the step time, the
#   slowest worker's compute per step, the parameter-server share of the step, the coordinator's bytes per step
#   each way (per worker and in all), and the largest relative parameter difference (max |a − b| ÷ max |b| over
#   the final checkpoints' parameters) from the single process with 1 thread and with W threads.
# It fails unless every run equals the single process: W=1 bit-identical; W>1 within 1e-5 of 1 thread, or
# bit-identical to W threads (SGD at lr 20 grows the word model's summation-order differences past 1e-5 within
# a dozen steps; `--threads 2` alone does the same).
# The namespaces and every process it started are removed on any exit. Needs root.
#
#   bench/netns.sh [--rate 1gbit] [--burst BYTES] [--egress-only] [--model char|word|both] [--workers "1 2 4"] [--char-steps 60]
#                  [--word-steps 12] [--broadcast "together in-turn"] [--streams 16] [--timeout 900] [--keep DIR]
#
#   char: GRU H=256 T=35 on timemachine characters; word: 2-layer LSTM 200/200 on tinyshakespeare words
#   (--tokenizer lines --min-freq 2, ≈ 10.7k vocabulary, ≈ 4.9M parameters), SGD lr 20, clip 0.25, T=20.
#   --broadcast: the coordinator's --broadcast modes to run, each for every W (default: together; rows of another
#   mode are labelled with it, e.g. word/in-turn).
#   --timeout: seconds each run (coordinator, worker or reference) may take before the watchdog kills it and
#   the script fails. --keep DIR: copy the logs there.
#   The coordinator runs with the default --heartbeat-timeout: since wire protocol 4 payloads cross in frames of
#   at most 1 MiB, each of which resets libzmq's heartbeat timer (before, at 100mbit a broadcast of W × 19.8 MB
#   outlasted the default 5 s from W = 4 on, and this script passed 120 s).
# Needs the corpora in $RNNLM_DATA_DIR (default ../shared/data beside the checkout) and the lab scripts in
# $RNNLM_LAB_DIR (default ../shared/lab).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rate=1gbit burst="" ingress=1 model=both workers_list="1 2 4" char_steps=60 word_steps=12 timeout_s=900 keep="" broadcasts="together" streams=16
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate="$2"; shift 2 ;;
        --egress-only) ingress=0; shift ;;
        --burst) burst="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --workers) workers_list="$2"; shift 2 ;;
        --char-steps) char_steps="$2"; shift 2 ;;
        --word-steps) word_steps="$2"; shift 2 ;;
        --broadcast) broadcasts="$2"; shift 2 ;;
        --streams) streams="$2"; shift 2 ;;
        --timeout) timeout_s="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        *) echo "netns.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$model" in char|word|both) ;; *) echo "netns.sh: --model char|word|both, got '$model'" >&2; exit 2 ;; esac
for w in $workers_list; do [[ "$w" =~ ^[1-9][0-9]?$ ]] || { echo "netns.sh: --workers takes counts 1..99, got '$w'" >&2; exit 2; }; done
[[ "$streams" =~ ^[1-9][0-9]*$ ]] || { echo "netns.sh: --streams takes a positive count, got '$streams'" >&2; exit 2; }
for m in $broadcasts; do case "$m" in together|in-turn) ;; *) echo "netns.sh: --broadcast takes together and/or in-turn, got '$m'" >&2; exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "netns.sh: needs root (network namespaces)" >&2; exit 1; }
if [ -z "$burst" ]; then
    # 2 ms at the rate, at least 128 kB (tc's units: kbit, mbit, gbit; a bare number is bit/s).
    bits=$(python3 -c 'import re, sys
m = re.fullmatch(r"([0-9.]+)(|bit|kbit|mbit|gbit)", sys.argv[1].lower())
if not m: sys.exit("netns.sh: --rate takes e.g. 100mbit or 1gbit, got " + sys.argv[1])
print(int(float(m.group(1)) * {"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m.group(2)]))' "$rate")
    burst=$(( bits / 8 / 500 > 131072 ? bits / 8 / 500 : 131072 ))
fi

export RNNLM_DATA_DIR="${RNNLM_DATA_DIR:-$(cd "$here/.." && pwd)/shared/data}"
lab="$(cd "${RNNLM_LAB_DIR:-$here/../shared/lab}" && pwd)"
(cd "$here" && swift build -c release >/dev/null)
rnnlm="$here/.build/release/rnnlm"

# One lab at a time (as cluster/tests/netns-train.sh): the lock is held on fd 9 until exit.
exec 9> "${TMPDIR:-/tmp}/rnnlm-lab.lock"
flock -w 600 9 || echo "netns.sh: lab lock still held after 600 s; going on" >&2
# Own namespace names and subnet, so that a test suite's rnnt-h* namespaces are never touched.
export LAB_NETNS_PREFIX="${LAB_NETNS_PREFIX:-rnnb}" LAB_NETNS_SUBNET="${LAB_NETNS_SUBNET:-10.204.0}"
work="$(mktemp -d)"
pids=()
cleanup() {
    local status=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash "$lab/netns-down.sh" "$work" >/dev/null 2>&1 || true
    if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.log "$keep"/ 2>/dev/null || true; fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

max_w=0
for w in $workers_list; do [ "$w" -gt "$max_w" ] && max_w=$w; done
bash "$lab/netns-up.sh" "$work" $((max_w + 1)) >/dev/null
for i in $(seq 1 $((max_w + 1))); do
    # The host's egress (its eth0), and its ingress: its bridge port's egress, in the lab's switch namespace.
    # Both go with the namespaces.
    ip netns exec "$LAB_NETNS_PREFIX-h$i" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
    if [ "$ingress" = 1 ]; then
        ip netns exec "$LAB_NETNS_PREFIX-sw" tc qdisc replace dev "h$i" root tbf rate "$rate" burst "$burst" latency 50ms
    fi
done
links="egress"; [ "$ingress" = 1 ] && links="egress and ingress"
echo "netns.sh: coordinator on h1, workers on h2..h$((max_w + 1)), every host's $links capped at $rate (tbf, burst $burst)"

# CURVE keys: one for the coordinator, one per worker host; only the workers' public keys are authorised.
keys="$work/keys"
mkdir -p "$keys/authorized"
"$rnnlm" keygen --name coordinator --out "$keys" >/dev/null
for i in $(seq 2 $((max_w + 1))); do
    "$rnnlm" keygen --name "h$i" --out "$keys" >/dev/null
    cp "$keys/h$i.public" "$keys/authorized/"
done

char=(--dataset timemachine --model gru --hidden 256 --num-steps 35)
word=(--dataset tinyshakespeare --tokenizer lines --min-freq 2 --model lstm --layers 2 --embed 200 --hidden 200
      --optimizer sgd --lr 20 --clip 0.25 --num-steps 20)
port=5600
results="$work/results"
: > "$results"

# watch NAME PID: waits for a run and fails with a message if it failed or the watchdog killed it.
watch() {
    local status=0
    wait "$2" || status=$?
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        echo "netns.sh: watchdog: $1 did not finish within ${timeout_s} s; killed" >&2; return 1
    elif [ "$status" != 0 ]; then
        echo "netns.sh: $1 failed with status $status" >&2; return 1
    fi
}

# run_model NAME STEPS T FLAGS...: every W of the list, then the single process, for one model.
run_model() {
    local model_name="$1" steps="$2" t="$3"; shift 3
    local w b tokens tag mode name
    for mode in $broadcasts; do
    name="$model_name"; [ "$mode" = together ] || name="$model_name/$mode"
    for w in $workers_list; do
        b=$((streams * w))
        # One epoch of STEPS minibatches (sequential partitioning may drop one to its random offset).
        tokens=$((steps * b * t + t + 1))
        local flags=("$@" --batch-size "$b" --max-tokens "$tokens" --epochs 1 --seed 1 --log-every 1000000)
        tag="$model_name-$mode-w$w"
        port=$((port + 1))
        timeout --kill-after=10 "$timeout_s" bash "$lab/netns-exec.sh" "$work" h1 "$rnnlm" coordinator \
            --bind "tcp://$LAB_NETNS_SUBNET.11:$port" --curve-secret "$keys/coordinator.secret" \
            --authorized-keys "$keys/authorized" --expect-workers "$w" --join-timeout 120 --step-timeout "$timeout_s" \
            --broadcast "$mode" \
            --checkpoint-dir "$work/$tag" "${flags[@]}" > "$work/$tag-h1.log" 2>&1 &
        local coordinator=$!
        pids+=("$coordinator")
        local wpids=() i
        for i in $(seq 2 $((w + 1))); do
            timeout --kill-after=10 "$timeout_s" bash "$lab/netns-exec.sh" "$work" "h$i" "$rnnlm" worker \
                --connect "tcp://h1:$port" --name "h$i" --join-timeout 120 --timeout "$timeout_s" \
                --curve-server-key "$keys/coordinator.public" --curve-key "$keys/h$i.secret" > "$work/$tag-h$i.log" 2>&1 &
            wpids+=("$!"); pids+=("$!")
        done
        if ! watch "the coordinator ($name, $w worker hosts)" "$coordinator"; then tail -20 "$work/$tag-h1.log" >&2; exit 1; fi
        for i in "${!wpids[@]}"; do
            if ! watch "worker h$((i + 2)) ($name, $w worker hosts)" "${wpids[$i]}"; then tail -20 "$work/$tag-h$((i + 2)).log" >&2; exit 1; fi
        done
        # The single process on the same settings, in the root namespace (no network involved): 1 thread, and
        # W threads (the rows summed in the same groups as the workers').
        local th
        for th in $(printf '%s\n' 1 "$w" | sort -un); do
            if ! timeout --kill-after=10 "$timeout_s" "$rnnlm" train --workers 0 --threads "$th" --checkpoint-dir "$work/$tag-ref$th" \
                "${flags[@]}" > "$work/$tag-ref$th.log" 2>&1; then
                echo "netns.sh: the single-process run ($name, global batch $b, $th thread(s)) failed or timed out after ${timeout_s} s" >&2
                tail -20 "$work/$tag-ref$th.log" >&2; exit 1
            fi
        done
        echo "$name|$w|$b|$t|$work/$tag-h1.log|$work/$tag|$work/$tag-ref1|$work/$tag-ref$w" >> "$results"
        echo "netns.sh: $name, $w worker host(s): done"
    done
    done
}
if [ "$model" = char ] || [ "$model" = both ]; then run_model char "$char_steps" 35 "${char[@]}"; fi
if [ "$model" = word ] || [ "$model" = both ]; then run_model word "$word_steps" 20 "${word[@]}"; fi

python3 - "$results" "$rate, burst $burst" "$links" "$streams" <<'PY'
import glob, json, os, re, struct, sys
from array import array

def newest(d):
    files = sorted(glob.glob(os.path.join(d, "step-*.safetensors")))
    if not files: sys.exit(f"netns.sh: no checkpoint in {d}")
    return files[-1]

def parameters(path):
    """The model's tensors (not optimizer slots or carried state), as name -> float32 array."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or name.startswith(("optimizer.", "state.")): continue
        if t["dtype"] != "F32": sys.exit(f"netns.sh: {path}: {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = array("f", data[a:b])
    return out

def relative_difference(a, b):
    diff = scale = 0.0
    for k in b:
        for x, y in zip(a[k], b[k]):
            diff = max(diff, abs(x - y)); scale = max(scale, abs(y))
    return diff / scale

results_file, rate, links, streams = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows, failed = [], []
for line in open(results_file):
    name, w, b, t, log, ck, ref1, refw = line.rstrip("\n").split("|")
    w, b, t = int(w), int(b), int(t)
    text = open(log).read()
    m = re.search(r"parameter server: ([\d.]+)% of step time \(per step ([\d.]+) ms: slowest worker computes ([\d.]+) ms.*?traffic per step: out ([\d,]+) B "
                  r"\(([\d,]+) B per worker\), in ([\d,]+) B \(([\d,]+) B per worker\)", text)
    if not m: sys.exit(f"netns.sh: no parameter-server summary in {log}:\n{text[-2000:]}")
    share, step_ms, compute_ms = float(m.group(1)), float(m.group(2)), float(m.group(3))
    out_all, out_w, in_all, in_w = (int(m.group(i).replace(",", "")) for i in range(4, 8))
    c = newest(ck)
    rels = []
    for ref in (ref1, refw):
        r = newest(ref)
        if os.path.basename(c) != os.path.basename(r):
            failed.append(f"{name} W={w}: the runs ended at different steps ({os.path.basename(c)} vs {r})")
        rels.append(relative_difference(parameters(c), parameters(r)))
    rel1, relw = rels
    if (w == 1 and rel1 != 0) or (w > 1 and rel1 > 1e-5 and relw != 0):
        failed.append(f"{name} W={w}: max relative parameter difference {rel1:.2e} from the single process "
                      f"({relw:.2e} from {w} threads)")
    steps = int(re.search(r"step-0*(\d+)", os.path.basename(c)).group(1))
    rows.append((name, w, b, steps, b * t / (step_ms / 1000), step_ms, compute_ms, share, out_w, out_all, in_w, in_all, rel1, relw))

print(f"\nevery host's {links} at {rate}; same per-worker batch ({streams} streams each); tokens/s = global batch × T ÷ mean step time;"
      f" rel diff: from the single process with 1 thread / W threads")
print(f"{'model':<14}{'W':>3}{'B':>5}{'steps':>7}{'tokens/s':>11}{'vs W=1':>8}{'step ms':>10}{'compute ms':>11}{'PS share':>10}"
      f"{'MB out/worker':>15}{'MB out':>9}{'MB in/worker':>14}{'MB in':>9}{'rel diff 1t':>13}{'W t':>9}")
for name in dict.fromkeys(r[0] for r in rows):
    g = [r for r in rows if r[0] == name]
    one = next((r for r in g if r[1] == 1), None)
    for (_, w, b, steps, tps, ms, cms, share, ow, oa, iw, ia, rel1, relw) in g:
        ratio = f"{tps / one[4]:.2f}x" if one else "-"
        print(f"{name:<14}{w:>3}{b:>5}{steps:>7}{tps:>11,.0f}{ratio:>8}{ms:>10.1f}{cms:>11.1f}{share:>9.1f}%"
              f"{ow / 1e6:>15.3f}{oa / 1e6:>9.3f}{iw / 1e6:>14.3f}{ia / 1e6:>9.3f}{rel1:>13.1e}{relw:>9.1e}")
if failed:
    print("\n".join(["netns.sh: FAILED equivalence with the single process:"] + failed), file=sys.stderr)
    sys.exit(1)
print("equal to the single process: W=1 bit-identical; W>1 within 1e-5 of 1 thread or bit-identical to W threads")
PY
