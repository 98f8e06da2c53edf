#!/usr/bin/env bash
# Runs cluster/ssh-workers.sh for real: network namespaces h1..h3 (../shared/lab/netns-up.sh), an sshd inside
# each (sshd-up.sh), the coordinator started on h1 over ssh and one worker on each of h2 and h3. Needs root.
#
#   cluster/tests/ssh-train.sh LAB_DIR WORK_DIR RNNLM [--interrupt-after SECONDS] -- [training flags]
#
# With --interrupt-after, the launcher gets SIGTERM after that many seconds (to test that it stops every
# remote process). Everything started here is stopped by PID and the namespaces removed on any exit.
set -euo pipefail
# One lab at a time: Slurm's daemons use fixed ports and the h1..h3 namespaces are shared, and test suites run
# side by side. Every lab script takes this lock for its whole run (held on fd 9, released at exit).
exec 9> "${TMPDIR:-/tmp}/rnnlm-lab.lock"
flock -w 600 9 || echo "lab lock still held after 600 s; going on" >&2
lab="$(cd "${1:?LAB_DIR}" && pwd)"; work="${2:?WORK_DIR}"; rnnlm="${3:?RNNLM}"; shift 3
interrupt=""
if [ "${1:-}" = "--interrupt-after" ]; then interrupt="$2"; shift 2; fi
[ "${1:-}" = "--" ] && shift
[ "$(id -u)" = 0 ] || { echo "ssh-train: needs root (network namespaces, sshd)" >&2; exit 1; }
mkdir -p "$work"; work="$(cd "$work" && pwd)"
export LAB_NETNS_PREFIX="${LAB_NETNS_PREFIX:-rnss}" LAB_NETNS_SUBNET="${LAB_NETNS_SUBNET:-10.204.0}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
cleanup() {
    bash "$lab/sshd-down.sh" "$work" >/dev/null 2>&1 || true
    bash "$lab/netns-down.sh" "$work" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash "$lab/netns-up.sh" "$work" 3 >/dev/null
for i in 1 2 3; do bash "$lab/sshd-up.sh" "$work" "$LAB_NETNS_SUBNET.1$i" 22 "h$i" >/dev/null; done
printf 'h2 slots=1\nh3   # one worker\n' > "$work/hosts"
start=$(date +%s.%N)
bash "$lab/netns-exec.sh" "$work" root "$here/cluster/ssh-workers.sh" --hosts "$work/hosts" --coordinator h1 \
    --ssh "$work/sshd/ssh" --keys "$work/keys" --remote-dir "$work/remote" --rnnlm "$rnnlm" -- "$@" &
launcher=$!
status=0
if [ -n "$interrupt" ]; then
    sleep "$interrupt"
    kill -TERM "$launcher" 2>/dev/null || true
fi
wait "$launcher" || status=$?
echo "ssh-train: launcher exited $status after $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
exit "$status"
