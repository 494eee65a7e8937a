#!/usr/bin/env bash
# A one-shot task (no timer, no cron): runs once when bansuri starts. Here, a setup step:
# check that the tools the other examples need are present and create a scratch directory.
# A non-zero exit would mark the task FAILED in `bansuri status` (and retry it per on-fail).
set -euo pipefail
scratch=${TMPDIR:-/tmp}/bansuri-demo-$(id -un)
mkdir -p "$scratch"
for tool in python3 df awk; do
    command -v "$tool" >/dev/null || { echo "setup: $tool not found" >&2; exit 1; }
done
echo "setup: $(python3 --version 2>&1), scratch directory $scratch"
echo "setup: running in ${SLURM_JOB_ID:+SLURM job $SLURM_JOB_ID on }$(hostname -s), working directory $(pwd)"
