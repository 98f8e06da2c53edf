#!/usr/bin/env bash
# Runs cluster/slurm/train.sbatch on a real Slurm (../shared/lab/slurm-up.sh). Needs root.
#
#   cluster/tests/slurm-train.sh LAB_DIR WORK_DIR RNNLM single|three|requeue -- [training flags]
#
#   single   one node (this host), 2 tasks: coordinator + 1 worker
#   three    three nodes h1..h3 in network namespaces (netns-up.sh), 1 task each: coordinator on h1
#   requeue  one node; the job is cancelled after its first checkpoint, then the same command is submitted
#            again and must resume from that checkpoint
#   usr1     one node; after the first checkpoint the batch shell gets SIGUSR1 (as --signal=B:USR1@120 sends it
#            before the time limit): the run checkpoints, the job requeues itself and resumes to the end
#   launch   one node, no batch script: `srun -n 3 rnnlm launch` with CURVE keys (task 0 coordinates)
# The training flags must include --checkpoint-dir. Prints each job's output; daemons are stopped by PID and
# namespaces removed on any exit.
set -euo pipefail
# One lab at a time: Slurm's daemons use fixed ports and the h1..h3 namespaces are shared, and test suites run
# side by side. Every lab script takes this lock for its whole run (held on fd 9, released at exit).
exec 9> "${TMPDIR:-/tmp}/rnnlm-lab.lock"
flock -w 600 9 || echo "lab lock still held after 600 s; going on" >&2
lab="$(cd "${1:?LAB_DIR}" && pwd)"; work="${2:?WORK_DIR}"; rnnlm="${3:?RNNLM}"; mode="${4:?MODE}"; shift 4
case "$rnnlm" in /*) ;; *) rnnlm="$PWD/$rnnlm" ;; esac
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
if [ "$mode" = launch ]; then
    # Every task gets the same command; rank 0 uses the coordinator's keys, the others the worker's.
    "$rnnlm" keygen --name coordinator --out "$work/keys" >/dev/null
    "$rnnlm" keygen --name worker --out "$work/keys" >/dev/null
    mkdir -p "$work/keys/authorized" && cp "$work/keys/worker.public" "$work/keys/authorized/"
    # A port of its own (other runs may hold 5555 on this machine); srun passes the environment to the tasks.
    export MASTER_PORT=$(( 20000 + RANDOM % 20000 ))
    start=$(date +%s.%N)
    status=0
    timeout 240 srun -n 3 --overcommit --kill-on-bad-exit=0 --chdir "$work" "$rnnlm" launch \
        --curve-secret "$work/keys/coordinator.secret" --authorized-keys "$work/keys/authorized" \
        --curve-server-key "$work/keys/coordinator.public" --curve-key "$work/keys/worker.secret" "$@" \
        > "$work/launch.out" 2>&1 || status=$?
    cat "$work/launch.out"
    echo "slurm-train: launch exited $status in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
    exit "$status"
fi
# Submitted from $work, so the job's folder (rnnlm-job-N: its CURVE keys) lands there, not in the checkout.
submit() { (cd "$work" && sbatch --parsable "${shape[@]}" --chdir "$work" "$here/cluster/slurm/train.sbatch" "$@"); }
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
if [ "$mode" = usr1 ]; then
    deadline=$(( $(date +%s) + 120 ))
    until ls "$ckpt" 2>/dev/null | grep -q '^step-'; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-train: no checkpoint appeared" >&2; exit 1; }
        sleep 0.05
    done
    sleep 0.3
    scancel --signal=USR1 --batch "$job"   # what Slurm does at --signal=B:USR1@120
    echo "slurm-train: sent SIGUSR1 to job $job's batch shell"
fi
wait_job "$job" 300
sed "s/^/[job $job] /" "$work/rnnlm-$job.out"
echo "slurm-train: $mode done in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
grep -q "^done: " "$work/rnnlm-$job.out"
