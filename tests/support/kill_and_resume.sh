# Sourced by the resume tests (tests/study/resume_test.sh, prune_scan_resume_test.sh,
# tests/train/compress_resume_test.sh): a seed for the kill moments, the skip when an input is
# not installed, a fresh work directory with a random-weight model, and a run killed once its
# log shows how far it got.
#
#   source tests/support/kill_and_resume.sh
#   resume_begin NAME WORK MAKE_TINY_GGUF SOURCE.gguf [INPUT...]   # then $seed, $RANDOM, WORK/tiny.gguf
#   run_in_background LOG COMMAND...                                 # then $run_pid
#   wait_for_lines PATTERN COUNT LOG LIMIT_MS                        # fails after LIMIT_MS
#   kill_run                                                         # then $run_rc (137 or the run's own)

# NAME: seed ...; exits 0 with ORDO-SKIPPED when SOURCE or an INPUT is missing.
resume_begin() {
  resume_name=$1
  local work=$2 make_tiny=$3 source=$4
  shift 4
  seed=${ORDO_RESUME_SEED:-$(( $(date +%s) % 100000 ))}
  RANDOM=$seed
  for f in "$source" "$@"; do
    [[ -e $f ]] || { echo "ORDO-SKIPPED: $f is not installed (./ordo model data)"; exit 0; }
  done
  echo "$resume_name: seed $seed (ORDO_RESUME_SEED=$seed replays the kill moments)"
  rm -rf "$work"
  mkdir -p "$work"
  "$make_tiny" "$source" "$work/tiny.gguf" 7 > /dev/null
}

fail() { echo "$resume_name: FAILED: $*"; exit 1; }
now_ms() { date +%s%3N; }

# Starts COMMAND with stdout and stderr into LOG. LOG exists (empty) before this returns: the
# background job opens it only once it is scheduled, and a wait that reads it first must not fail.
run_in_background() {
  local log=$1
  shift
  : > "$log"
  "$@" >> "$log" 2>&1 &
  run_pid=$!
  run_started_ms=$(now_ms)
}

# Until LOG holds COUNT lines that match PATTERN (grep's basic regex) or the run has ended; a run
# still short of them after LIMIT_MS is killed and the test fails.
wait_for_lines() {
  local pattern=$1 count=$2 log=$3 limit_ms=$4 seen
  while kill -0 "$run_pid" 2> /dev/null; do
    seen=$(grep -c -- "$pattern" "$log" 2> /dev/null || true)
    (( ${seen:-0} < count )) || break
    (( $(now_ms) - run_started_ms < limit_ms )) || { kill -KILL "$run_pid"; fail "no $count lines '$pattern' in $log within $limit_ms ms"; }
    sleep 0.01
  done
}

# SIGKILL to the run, reaped: $run_rc is 137 when the kill landed.
kill_run() {
  kill -KILL "$run_pid" 2> /dev/null || true
  set +e
  wait "$run_pid" 2> /dev/null
  run_rc=$?
  set -e
}
