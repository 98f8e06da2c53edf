#!/usr/bin/env bash
# Trains across simulated hosts: network namespaces h1..h3 (../shared/lab/netns-up.sh) on one bridge, the
# coordinator on h1 listening on its own address, one worker on each of h2 and h3 connecting to "h1" by name,
# real TCP between them, authenticated and encrypted with CURVE keys made for the run. Used by the test
# suite; needs root.
#
#   cluster/tests/netns-train.sh LAB_DIR WORK_DIR RNNLM [--shape HOST RATE] [training flags...]
#
# --shape h2 100mbit caps host h2's egress (netns-shape.sh, a tbf qdisc) for the whole run.
#
# Prints every host's log prefixed by its name; exits with the coordinator's status. Everything it starts is
# stopped by PID and the namespaces are removed on any exit.
set -euo pipefail
# One lab at a time: Slurm's daemons use fixed ports and the h1..h3 namespaces are shared, and test suites run
# side by side. Every lab script takes this lock for its whole run (held on fd 9, released at exit).
exec 9> "${TMPDIR:-/tmp}/rnnlm-lab.lock"
flock -w 600 9 || echo "lab lock still held after 600 s; going on" >&2
lab="$(cd "${1:?LAB_DIR}" && pwd)"; work="${2:?WORK_DIR}"; rnnlm="${3:?RNNLM}"; shift 3
shape_host="" shape_rate=""
if [ "${1:-}" = "--shape" ]; then shape_host="$2"; shape_rate="$3"; shift 3; fi
[ "$(id -u)" = 0 ] || { echo "netns-train: needs root (network namespaces)" >&2; exit 1; }
mkdir -p "$work"
export LAB_NETNS_PREFIX="${LAB_NETNS_PREFIX:-rnnt}" LAB_NETNS_SUBNET="${LAB_NETNS_SUBNET:-10.203.0}"
port=5555
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash "$lab/netns-down.sh" "$work" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash "$lab/netns-up.sh" "$work" 3 >/dev/null
if [ -n "$shape_host" ]; then
    bash "$lab/netns-shape.sh" "$work" "$shape_host" "$shape_rate" >/dev/null
    echo "netns-train: $shape_host egress capped at $shape_rate"
fi

# CURVE keys: one for the coordinator, one per worker host; only h2's and h3's public keys are authorised.
keys="$work/keys"
mkdir -p "$keys/authorized"
for name in coordinator h2 h3; do "$rnnlm" keygen --name "$name" --out "$keys" >/dev/null; done
cp "$keys/h2.public" "$keys/h3.public" "$keys/authorized/"
bash "$lab/netns-exec.sh" "$work" h1 "$rnnlm" coordinator --bind "tcp://$LAB_NETNS_SUBNET.11:$port" \
    --curve-secret "$keys/coordinator.secret" --authorized-keys "$keys/authorized" \
    --expect-workers 2 --join-timeout 60 --step-timeout 60 "$@" > "$work/h1.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
for h in h2 h3; do
    bash "$lab/netns-exec.sh" "$work" "$h" "$rnnlm" worker --connect "tcp://h1:$port" --name "$h" --join-timeout 60 \
        --timeout 60 --curve-server-key "$keys/coordinator.public" --curve-key "$keys/$h.secret" > "$work/$h.log" 2>&1 &
    pids+=("$!")
done
status=0
wait "$coordinator" || status=$?
for h in h1 h2 h3; do sed "s/^/[$h] /" "$work/$h.log"; done
exit "$status"
