#!/usr/bin/env bash
# ordo-compress killed at a random moment, then run again with the same options, saves the model
# an uninterrupted run saves, byte for byte; other options are refused, --fresh starts over, and
# nothing is left beside OUT. On a random-weight model with the default model's tokenizer
# (make_tiny_gguf), so each run takes seconds.
#
#   compress_resume_test.sh ORDO_COMPRESS MAKE_TINY_GGUF SOURCE.gguf CORPUS_DIR WORK_DIR
#
# ORDO_RESUME_SEED fixes the kill moments (the seed is printed, to replay a failure).
set -euo pipefail
compress=$1 make_tiny=$2 source=$3 corpus=$4 work=$5
source "$(dirname "$0")/../support/kill_and_resume.sh"
resume_begin compress_resume_test "$work" "$make_tiny" "$source" "$corpus"

args=(--pipeline P-KD-Q --model "$work/tiny.gguf" --corpus "$corpus" --train-samples 8 --calibration-samples 4
      --seq-len 32 --threads 1 --checkpoint-seconds 0.001 --seed)
args+=(5)
same_model() {  # every file of two saved models, byte for byte
  [[ $(ls "$1") == $(ls "$2") ]] || fail "$1 and $2 hold other files"
  for f in "$1"/*; do cmp "$f" "$2/$(basename "$f")" || fail "$(basename "$f") differs between $1 and $2"; done
}
# Starts a run on OUT=$1 (log $2), kills it once stage $3 of 3 has started plus $4 ms; fails the
# test unless the kill landed (exit 137).
run_and_kill() {
  local out=$1 log=$2 k=$3 extra=$4
  run_in_background "$log" "$compress" "${args[@]}" --out "$out"
  wait_for_lines "stage $k/3: .* \.\.\.\$" 1 "$log" 120000
  sleep "$(printf '0.%03d' "$extra")"
  kill_run
  local rc=$run_rc
  echo "compress_resume_test: killed $extra ms into stage $k/3 (exit $rc)"
  [[ $rc -eq 137 ]] || { cat "$log"; fail "the run was not killed (exit $rc)"; }
  [[ -d $out.unfinished/state ]] || fail "the killed run left no state in $out.unfinished"
}

# 1. Uninterrupted.
"$compress" "${args[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; fail "uninterrupted run"; }
[[ ! -e $work/whole.unfinished ]] || fail "a finished run left $work/whole.unfinished"
grep -q '"runs":1' "$work/whole.log" || fail "no \"runs\":1 in the summary"

# 2. Killed in P (its calibration or recovery fine-tune) or in KD, 0-300 ms after it started.
run_and_kill "$work/resumed" "$work/run1.log" $(( 1 + RANDOM % 2 )) $(( RANDOM % 301 ))

# Other options do not resume it: one line naming the first option that differs.
other=("${args[@]}")
other[-1]=6
if "$compress" "${other[@]}" --out "$work/resumed" > "$work/other.log" 2>&1; then fail "a run with other options resumed"; fi
grep -q "holds an unfinished run with other options ('seed' was 5, now 6)" "$work/other.log" ||
  { cat "$work/other.log"; fail "no mismatch message"; }
[[ ! -e $work/resumed ]] || fail "the refused run wrote $work/resumed"

# 3. Resumed to the end: the uninterrupted run's model. The pipeline named in another form (the
# same pipeline: the same run).
lower=("${args[@]}")
lower[1]=p-kd-q
"$compress" "${lower[@]}" --out "$work/resumed" > "$work/run2.log" 2>&1 || { cat "$work/run2.log"; fail "run 2 failed"; }
grep -q "resuming the unfinished run in $work/resumed.unfinished (run 2)" "$work/run2.log" ||
  { cat "$work/run2.log"; fail "run 2 did not resume"; }
grep -q '"runs":2' "$work/run2.log" || fail "no \"runs\":2 in the resumed run's summary"
grep "resuming" "$work/run2.log"
[[ ! -e $work/resumed.unfinished ]] || fail "the resumed run left $work/resumed.unfinished"
same_model "$work/whole" "$work/resumed"

# 4. Killed again (in KD: P's output is stored), then --fresh: starts over, the same model.
run_and_kill "$work/fresh" "$work/run3.log" 2 $(( RANDOM % 301 ))
"$compress" "${args[@]}" --out "$work/fresh" --fresh > "$work/run4.log" 2>&1 || { cat "$work/run4.log"; fail "--fresh failed"; }
if grep -q "resuming" "$work/run4.log"; then fail "--fresh resumed"; fi
grep -q '"runs":1' "$work/run4.log" || fail "--fresh: no \"runs\":1"
[[ ! -e $work/fresh.unfinished ]] || fail "--fresh left $work/fresh.unfinished"
same_model "$work/whole" "$work/fresh"
echo "compress_resume_test: resumed and fresh runs saved the uninterrupted run's model, byte for byte"
