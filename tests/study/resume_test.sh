#!/usr/bin/env bash
# A study killed twice at random moments, then run to its end, gives the table of an
# uninterrupted run (issue 14). On a random-weight model with the default model's tokenizer
# (make_tiny_gguf), so the whole study takes seconds; the kills land anywhere: in a stage, a
# training step, an evaluation, a save.
#
#   resume_test.sh ORDO_STUDY MAKE_TINY_GGUF SOURCE.gguf CORPUS_DIR CHATS WORK_DIR
#
# ORDO_RESUME_SEED fixes the kill moments (the seed is printed, to replay a failure).
set -euo pipefail
study=$1 make_tiny=$2 source=$3 corpus=$4 chats=$5 work=$6
source "$(dirname "$0")/../support/kill_and_resume.sh"
resume_begin resume_test "$work" "$make_tiny" "$source" "$corpus" "$chats"

eval_tokens=128
args=(--model "$work/tiny.gguf" --corpus "$corpus" --chats "$chats" --train-samples 8 --calibration-samples 4
      --seq-len 32 --eval-chat-tokens 64 --clarity-prompts 2 --max-new-tokens 8 --no-judge
      --threads 1 --checkpoint-seconds 0.001 --eval-tokens)
args+=($eval_tokens)
# The figures of a run: results.csv without the two time columns (stage_seconds, eval_seconds),
# and every answer of the clarity metrics.
figures() { cut -d, --complement -f8,9 "$1/results.csv"; grep '"answer"' "$1/results.json"; }

# 1. Uninterrupted, timed; meanwhile a second study in the same directory is refused.
t0=$(now_ms)
"$study" "${args[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 &
whole_pid=$!
for _ in $(seq 1200); do [[ -e $work/whole/state/run.json ]] && break; kill -0 $whole_pid 2> /dev/null || break; sleep 0.05; done
if "$study" "${args[@]}" --out "$work/whole" > "$work/locked.log" 2>&1; then fail "a second study ran in a locked directory"; fi
grep -q "another ordo run is using this directory" "$work/locked.log" || { cat "$work/locked.log"; fail "no lock message"; }
wait $whole_pid || { cat "$work/whole.log"; fail "the uninterrupted run failed"; }
whole_ms=$(( $(now_ms) - t0 ))
echo "resume_test: uninterrupted run $whole_ms ms"
[[ ! -e $work/whole/state && ! -e $work/whole/cache ]] || fail "a finished study left state/ or cache/"

# 2. Killed at a random moment: once a random stage among the first 85 % has started (the
# progress lines on stderr), after a random 0-400 ms more. Keyed to the run's progress, not to
# the uninterrupted run's time, which a loaded machine (ctest -j) stretches or shrinks.
stages=$(grep -o 'stage [0-9]*/[0-9]*' "$work/whole.log" | tail -1 | cut -d/ -f2)
[[ -n $stages && $stages -ge 4 ]] || { cat "$work/whole.log"; fail "no stage progress in the uninterrupted run's log"; }
k1=$(( 1 + RANDOM % (stages * 85 / 100) ))
extra1=$(( RANDOM % 401 ))
run_in_background "$work/run1.log" "$study" "${args[@]}" --out "$work/resumed"
t1=$run_started_ms
wait_for_lines "stage $k1/$stages: .* \.\.\.\$" 1 "$work/run1.log" $(( 4 * whole_ms + 60000 ))
sleep "$(printf '0.%03d' $extra1)"
kill_run
rc1=$run_rc
d1=$(( $(now_ms) - t1 ))
echo "resume_test: run 1 killed $extra1 ms into stage $k1/$stages, after $d1 ms (exit $rc1)"
[[ $rc1 -eq 137 ]] || { cat "$work/run1.log"; fail "run 1 was not killed (exit $rc1)"; }

# Other options do not resume it: one line naming the first option that differs, nothing touched.
other=("${args[@]}")
other[-1]=96
if "$study" "${other[@]}" --out "$work/resumed" > "$work/other.log" 2>&1; then
  fail "a run with other options resumed the study"
fi
grep -q "holds an unfinished run with other options ('eval_tokens' was 128, now 96)" "$work/other.log" ||
  { cat "$work/other.log"; fail "no mismatch message"; }

# 3. Resumed and killed again, somewhere in what is left.
d2=$(( 1500 + (whole_ms - d1) * (10 + RANDOM % 81) / 100 ))
set +e
timeout -s KILL "$(printf '%d.%03d' $((d2 / 1000)) $((d2 % 1000)))" "$study" "${args[@]}" --out "$work/resumed" > "$work/run2.log" 2>&1
rc2=$?
set -e
echo "resume_test: run 2 killed after $d2 ms (exit $rc2)"
[[ $rc2 -eq 137 || $rc2 -eq 0 ]] || { cat "$work/run2.log"; fail "run 2 failed (exit $rc2)"; }
grep -q "resumed the unfinished study" "$work/run2.log" || { cat "$work/run2.log"; fail "run 2 did not resume"; }

# 4. To the end.
if [[ $rc2 -eq 137 ]]; then
  "$study" "${args[@]}" --out "$work/resumed" > "$work/run3.log" 2>&1 || { cat "$work/run3.log"; fail "run 3 failed"; }
  grep -q "resumed the unfinished study" "$work/run3.log" || { cat "$work/run3.log"; fail "run 3 did not resume"; }
else
  echo "resume_test: run 2 finished before its kill"
fi
# The run that finished numbers its stages against what it computed: its last is "stage n/n".
finisher=$work/run2.log
[[ $rc2 -eq 137 ]] && finisher=$work/run3.log
last_stage=$(grep -o 'stage [0-9]*/[0-9]*: [^ ]* done' "$finisher" | tail -1 | grep -o '[0-9]*/[0-9]*' || true)
if [[ -n $last_stage && ${last_stage%/*} != "${last_stage#*/}" ]]; then
  cat "$finisher"
  fail "the resumed run's last stage is numbered $last_stage"
fi
[[ ! -e $work/resumed/state && ! -e $work/resumed/cache ]] || fail "the resumed study left state/ or cache/"
if ! diff <(figures "$work/whole") <(figures "$work/resumed"); then
  fail "the resumed study's figures differ from the uninterrupted run's"
fi
grep -E '"runs": [0-9]+' "$work/resumed/results.json"
echo "resume_test: the same $(($(wc -l < "$work/whole/results.csv") - 1)) rows as the uninterrupted run"
