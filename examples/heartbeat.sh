#!/usr/bin/env bash
# A cron task (`schedule-cron: "* * * * *"`): once a minute, say that the job is alive, where it
# runs and how long the node has been up. Under SLURM it also names the job.
set -euo pipefail
read -r up_seconds _ </proc/uptime
job=${SLURM_JOB_ID:+SLURM job $SLURM_JOB_ID}
echo "heartbeat from $(hostname -s) ${job:-(not under SLURM)}; node up $((${up_seconds%.*} / 3600)) h"
