#!/bin/bash
# run_fuzz.sh EXE SEEDS WORKDIR [SECONDS]: fuzzes one libFuzzer target from its committed
# seeds for SECONDS (default $KILN_FUZZ_SECONDS, else 60). New inputs go to WORKDIR/corpus,
# never into SEEDS; a crash leaves its input in WORKDIR and fails the run. Prints the
# target's executions as "fuzz: NAME: N executions in S s".
set -uo pipefail
exe=$1 seeds=$2 work=$3
secs=${4:-${KILN_FUZZ_SECONDS:-60}}
name=$(basename "$exe")
mkdir -p "$work/corpus"
log="$work/log.txt"
# rss_limit: the VMM's own per-input memory stays small; leaks are defects too.
"$exe" "$work/corpus" "$seeds" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" -detect_leaks=1 >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo "fuzz: ${name#fuzz_}: ${execs:-0} executions in $secs s" | tee "$work/summary.txt"
if ((rc != 0)); then
    echo "fuzz: ${name#fuzz_}: FAILED (exit $rc); the input is in $work/, log follows"
    tail -60 "$log"
fi
exit $rc
