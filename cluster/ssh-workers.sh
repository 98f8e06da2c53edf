#!/usr/bin/env bash
# Launch an rnnlm training run over ssh: the coordinator here (or on a named host) and workers on the hosts
# of a hosts file, authenticated with CURVE keys this script creates and ships.
#
#   cluster/ssh-workers.sh --hosts HOSTS [options] -- [rnnlm training flags]
#
# HOSTS: one host per line, optionally `slots=N` workers on it (default 1); `#` starts a comment.
# Options:
#   --coordinator HOST   run the coordinator on HOST over ssh (default: on this machine)
#   --address ADDR       address the workers use to reach the coordinator (default: the coordinator's host
#                        name, or this machine's first address from `hostname -I`)
#   --port PORT          coordinator port (default 5555)
#   --keys DIR           where the CURVE keys are kept (default ./keys); missing ones are created with
#                        `rnnlm keygen`: coordinator.secret/.public and one key pair per worker host
#   --remote-dir DIR     where the keys and pid files go on the remote hosts (default /tmp/rnnlm-ssh-$USER;
#                        created mode 700, and refused unless owned by the remote user)
#   --rnnlm PATH         the rnnlm binary on every host (default: this checkout's .build/release/rnnlm)
#   --ssh "CMD"          the ssh command (default "ssh -o BatchMode=yes -o ConnectTimeout=10": a host that
#                        would prompt for a password or a new host key fails at once instead of hanging),
#                        e.g. "ssh -o BatchMode=yes -p 2222 -i ~/.ssh/cluster"
#   --parallel N         ssh connections opened at once (default 8; sshd's MaxStartups drops bursts)
#   --retries N          attempts per ssh connection (default 3, with back-off)
# Every line a host prints is prefixed with [host] or [host:slot]. On exit, Ctrl-C or SIGTERM the script
# stops every remote worker it started (by PID) and the coordinator.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
hosts_file="" coordinator_host="" address="" port=5555 keys="keys" remote_dir="/tmp/rnnlm-ssh-${USER:-root}"
rnnlm="$here/.build/release/rnnlm" ssh_cmd="ssh -o BatchMode=yes -o ConnectTimeout=10" parallel=8 retries=3
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts_file="$2"; shift 2 ;;
        --coordinator) coordinator_host="$2"; shift 2 ;;
        --address) address="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --keys) keys="$2"; shift 2 ;;
        --remote-dir) remote_dir="$2"; shift 2 ;;
        --rnnlm) rnnlm="$2"; shift 2 ;;
        --ssh) ssh_cmd="$2"; shift 2 ;;
        --parallel) parallel="$2"; shift 2 ;;
        --retries) retries="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "ssh-workers: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
training=("$@")
[ -n "$hosts_file" ] && [ -f "$hosts_file" ] || { echo "ssh-workers: --hosts FILE is required (lines: host [slots=N])" >&2; exit 2; }
[ -x "$rnnlm" ] || { echo "ssh-workers: $rnnlm is not executable here (build with swift build -c release, or pass --rnnlm)" >&2; exit 2; }

# Hosts and slots.
hosts=() slots=()
while read -r line || [ -n "$line" ]; do  # a last line without a newline counts too
    line="${line%%#*}"; set -- $line
    [ $# -ge 1 ] || continue
    n=1
    for f in "${@:2}"; do case "$f" in slots=*) n="${f#slots=}" ;; *) echo "ssh-workers: bad field '$f' in $hosts_file" >&2; exit 2 ;; esac; done
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "ssh-workers: slots must be a positive number for $1" >&2; exit 2; }
    hosts+=("$1"); slots+=("$n")
done < "$hosts_file"
[ ${#hosts[@]} -ge 1 ] || { echo "ssh-workers: no hosts in $hosts_file" >&2; exit 2; }
total=0; for n in "${slots[@]}"; do total=$((total + n)); done

# ssh with retries and back-off (a refused or dropped connection exits 255).
rssh() {
    local host="$1"; shift
    local attempt=1 rc=0
    while :; do
        rc=0; $ssh_cmd "$host" "$@" || rc=$?
        [ "$rc" -ne 255 ] || [ "$attempt" -ge "$retries" ] && return "$rc"
        echo "[ssh-workers] ssh to $host failed (attempt $attempt of $retries); retrying" >&2
        sleep "$attempt"; attempt=$((attempt + 1))
    done
}
quote() { printf '%q ' "$@"; }
rdir="$(printf %q "$remote_dir")"
# This run's pid files: another run (or a host listed twice) never reads or overwrites them.
run_id="$(date +%s)-$$"
# A remote folder only the remote user can use: created private, refused when someone else owns it.
private_dir="umask 077 && mkdir -p $rdir && test -O $rdir && chmod 700 $rdir || { echo '$remote_dir is not a folder of this user (pass --remote-dir)' >&2; exit 3; }"
# Stops the process whose PID a pid file holds (only a number is ever passed to kill).
stop_pidfile() { printf 'p=$(cat %q 2>/dev/null); case "$p" in ""|*[!0-9]*) ;; *) kill "$p" 2>/dev/null ;; esac; rm -f %q' "$1" "$1"; }

# Keys: the coordinator's and one per worker host; the allow-list holds the workers' public keys.
mkdir -p "$keys/authorized"
[ -f "$keys/coordinator.secret" ] || "$rnnlm" keygen --name coordinator --out "$keys" >/dev/null
for h in "${hosts[@]}"; do
    [ -f "$keys/$h.secret" ] || "$rnnlm" keygen --name "$h" --out "$keys" >/dev/null
    cp "$keys/$h.public" "$keys/authorized/"
done

pids=() started=()
cleanup() {
    trap - EXIT INT TERM
    local stoppers=()
    for entry in "${started[@]}"; do
        host="${entry%% *}"; pidfile="${entry#* }"
        $ssh_cmd "$host" "$(stop_pidfile "$pidfile")" >/dev/null 2>&1 &  # in parallel: a dead host stalls none of the others
        stoppers+=("$!")
    done
    for p in "${stoppers[@]}"; do wait "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ship keys (throttled: at most --parallel at once).
ship() {
    local host="$1"
    rssh "$host" "$private_dir && cat > $rdir/worker.secret" < "$keys/$host.secret"
    rssh "$host" "cat > $rdir/coordinator.public" < "$keys/coordinator.public"
}
running=0
for h in "${hosts[@]}"; do
    ship "$h" & running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then wait -n || { echo "ssh-workers: could not copy keys to a host" >&2; exit 1; }; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || { echo "ssh-workers: could not copy keys to a host" >&2; exit 1; }; running=$((running - 1)); done

# The coordinator.
coordinator_args=(coordinator --bind "tcp://*:$port" --expect-workers "$total" --curve-secret)
if [ -n "$coordinator_host" ]; then
    [ -n "$address" ] || address="$coordinator_host"
    rssh "$coordinator_host" "$private_dir && mkdir -p $rdir/authorized && cat > $rdir/coordinator.secret" < "$keys/coordinator.secret"
    for h in "${hosts[@]}"; do rssh "$coordinator_host" "cat > $rdir/authorized/$(printf %q "$h").public" < "$keys/$h.public"; done
    pidfile="$remote_dir/coordinator-$run_id.pid"
    cmd="echo \$\$ > $(printf %q "$pidfile"); exec $(quote "$rnnlm" "${coordinator_args[@]}" "$remote_dir/coordinator.secret" --authorized-keys "$remote_dir/authorized" "${training[@]}")"
    ( rssh "$coordinator_host" "$cmd" 2>&1 | sed -u "s/^/[$coordinator_host] /" ) &
    coordinator=$!
    started+=("$coordinator_host $pidfile")
else
    [ -n "$address" ] || address="$(hostname -I | awk '{print $1}')"
    # rnnlm itself in the background (its output through sed), so $! is its PID and SIGTERM reaches it.
    "$rnnlm" "${coordinator_args[@]}" "$keys/coordinator.secret" --authorized-keys "$keys/authorized" "${training[@]}" \
        > >(sed -u "s/^/[coordinator] /") 2>&1 &
    coordinator=$!
fi
pids+=("$coordinator")
echo "[ssh-workers] coordinator ${coordinator_host:-on this machine}, workers connect to tcp://$address:$port; $total worker(s) on ${#hosts[@]} host(s)"

# The workers, --parallel ssh connections at a time.
launched=0
for i in "${!hosts[@]}"; do
    h="${hosts[$i]}"
    for s in $(seq 1 "${slots[$i]}"); do
        pidfile="$remote_dir/worker-$run_id-$i-$s.pid"
        cmd="echo \$\$ > $(printf %q "$pidfile"); exec $(quote "$rnnlm" worker --connect "tcp://$address:$port" --curve-server-key "$remote_dir/coordinator.public" --curve-key "$remote_dir/worker.secret" --name "$h:$s")"
        ( rssh "$h" "$cmd" 2>&1 | sed -u "s/^/[$h:$s] /" ) &
        pids+=("$!"); started+=("$h $pidfile")
        launched=$((launched + 1))
        if [ $((launched % parallel)) -eq 0 ]; then sleep 1; fi
    done
done

status=0
wait "$coordinator" || status=$?
# Workers exit by themselves when the coordinator says training is over; give them a moment.
for _ in $(seq 1 50); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break; sleep 0.1
done
exit "$status"
