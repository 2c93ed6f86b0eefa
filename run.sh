#!/usr/bin/env bash
# What cron calls: ./run.sh JOB [ARGS]. Runs jobs/JOB.py under a lock so two runs of one
# job never overlap, appends its output to a log file, and passes its exit code on.
# `run.sh daemon` is the watchdog: it starts `qmonit daemon` unless one already runs (then
# it exits 0 and says nothing), so an hourly cron line keeps the daemon up.
#   QMONIT_CONFIG   configuration file (default: config.cfg beside this script, if present)
#   QMONIT_LOG_DIR  where JOB.log and JOB.lock go (default: log/ beside this script)
#   QMONIT_PYTHON   the Python that has qmonit installed (default: python3)
set -u
umask 077  # the log directory 0700 (every level mkdir -p makes), logs and lock 0600
here=$(cd "$(dirname "$0")" && pwd)
job=${1:-}
if [ -z "$job" ] || [ ! -f "$here/jobs/$job.py" ]; then
    echo "usage: $0 JOB [ARGS]; JOB is one of: $(cd "$here/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' ')" >&2
    exit 2
fi
shift
log_dir=${QMONIT_LOG_DIR:-$here/log}
mkdir -p "$log_dir" || exit 2
log="$log_dir/$job.log"
lock="$log_dir/$job.lock"
# a symbolic link planted in the log directory must not make this script truncate or append
# to another file: refuse it (and open both for appending, never truncating)
for file in "$log" "$lock"; do
    if [ -L "$file" ]; then
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ERROR run.sh: $file is a symbolic link; refusing to write through it (remove it)" >&2
        exit 2
    fi
done
if [ -z "${QMONIT_CONFIG:-}" ] && [ -f "$here/config.cfg" ]; then
    export QMONIT_CONFIG="$here/config.cfg"
fi
exec 9>>"$lock" || exit 2
if ! flock -n 9; then
    if [ "$job" = daemon ]; then
        exit 0  # the watchdog's every call while the daemon runs: nothing to say
    fi
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ERROR run.sh: $job is still running from an earlier start; this run is skipped" | tee -a "$log" >&2
    exit 1
fi
# -I (isolated): not the working directory, the script's directory nor PYTHON* variables
# decide what is imported; the log directory (private) is the working directory
cd "$log_dir" || exit 2
"${QMONIT_PYTHON:-python3}" -I "$here/jobs/$job.py" "$@" >>"$log" 2>&1
status=$?
if [ "$status" -ne 0 ]; then
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ERROR run.sh: $job exited with $status; see $log" >&2
fi
exit "$status"
