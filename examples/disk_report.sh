#!/usr/bin/env bash
# A periodic task (run by bansuri every `timer` seconds): one short disk-usage report, then exit.
# Reports the file systems holding the working directory and the temporary directory.
set -euo pipefail
tmp=${TMPDIR:-/tmp}
echo "disk usage at $(date +%H:%M:%S):"
df -hP . "$tmp" | awk 'NR > 1 && !seen[$1]++ { printf "  %-28s %5s used of %5s (%s), mounted on %s\n", $1, $3, $2, $5, $6 }'
