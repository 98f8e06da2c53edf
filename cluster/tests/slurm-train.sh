#!/usr/bin/env bash
# Runs cluster/slurm/train.sbatch on a real Slurm (../shared/lab/slurm-up.sh). Needs root.
#
#   cluster/tests/slurm-train.sh LAB_DIR WORK_DIR RNNLM single|three|requeue -- [training flags]
#
#   single   one node (this host), 2 tasks: coordinator + 1 worker
#   three    three nodes h1..h3 in network namespaces (netns-up.sh), 1 task each: coordinator on h1
#   requeue  one node; the job is cancelled after its first checkpoint, then the same command is submitted
#            again and must resume from that checkpoint
# The training flags must include --checkpoint-dir. Prints each job's output; daemons are stopped by PID and
# namespaces removed on any exit.
set -euo pipefail
lab="$(cd "${1:?LAB_DIR}" && pwd)"; work="${2:?WORK_DIR}"; rnnlm="${3:?RNNLM}"; mode="${4:?MODE}"; shift 4
[ "${1:-}" = "--" ] && shift
[ "$(id -u)" = 0 ] || { echo "slurm-train: needs root (Slurm daemons)" >&2; exit 1; }
mkdir -p "$work"; work="$(cd "$work" && pwd)"
here="$(cd "$(dirname "$0")/../.." && pwd)"
ckpt=""; prev=""; for a in "$@"; do [ "$prev" = "--checkpoint-dir" ] && ckpt="$a"; prev="$a"; done
[ -n "$ckpt" ] || { echo "slurm-train: pass --checkpoint-dir" >&2; exit 2; }
export LAB_NETNS_PREFIX="${LAB_NETNS_PREFIX:-rnsl}" LAB_NETNS_SUBNET="${LAB_NETNS_SUBNET:-10.205.0}"
export LAB_SLURMCTLD_PORT="${LAB_SLURMCTLD_PORT:-26917}" LAB_SLURMD_PORT="${LAB_SLURMD_PORT:-26918}"
cleanup() {
    bash "$lab/slurm-down.sh" "$work" --purge >/dev/null 2>&1 || true
    [ "$mode" = three ] && bash "$lab/netns-down.sh" "$work" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ "$mode" = three ]; then
    bash "$lab/netns-up.sh" "$work" 3 >/dev/null
    bash "$lab/slurm-up.sh" "$work" h1 h2 h3 >/dev/null
    shape=(-N 3 --ntasks-per-node=1)
else
    bash "$lab/slurm-up.sh" "$work" >/dev/null
    shape=(-N 1 --ntasks-per-node=2)
fi
. "$work/slurm/env.sh"
export RNNLM="$rnnlm"
wait_job() {  # JOB SECONDS
    local deadline=$(( $(date +%s) + $2 ))
    while squeue -h -j "$1" 2>/dev/null | grep -q .; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-train: job $1 still queued/running after $2 s" >&2; scancel "$1"; return 1; }
        sleep 0.2
    done
}
submit() { sbatch --parsable "${shape[@]}" --chdir "$work" "$here/cluster/slurm/train.sbatch" "$@"; }
start=$(date +%s.%N)
job=$(submit "$@")
echo "slurm-train: submitted job $job (${shape[*]})"
if [ "$mode" = requeue ]; then
    deadline=$(( $(date +%s) + 120 ))
    until ls "$ckpt" 2>/dev/null | grep -q '^step-'; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-train: no checkpoint appeared" >&2; exit 1; }
        sleep 0.05
    done
    sleep 0.3
    scancel "$job"
    wait_job "$job" 60
    echo "slurm-train: cancelled job $job; newest checkpoint $(ls "$ckpt" | grep '^step-' | tail -1)"
    sed "s/^/[job $job] /" "$work/rnnlm-$job.out"
    job=$(submit "$@")
    echo "slurm-train: resubmitted as job $job"
fi
wait_job "$job" 300
sed "s/^/[job $job] /" "$work/rnnlm-$job.out"
echo "slurm-train: $mode done in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
grep -q "^done: " "$work/rnnlm-$job.out"
