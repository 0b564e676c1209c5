#!/usr/bin/env bash
# ordo-prune-scan killed at a random moment, then run again with the same options, writes the
# scan an uninterrupted run writes (times aside) and the same plot; other options are refused and
# nothing is left in OUT/state. On a random-weight model with the default model's tokenizer.
#
#   prune_scan_resume_test.sh ORDO_PRUNE_SCAN MAKE_TINY_GGUF SOURCE.gguf CORPUS_DIR WORK_DIR
#
# ORDO_RESUME_SEED fixes the kill moment (the seed is printed, to replay a failure).
set -euo pipefail
scan=$1 make_tiny=$2 source=$3 corpus=$4 work=$5
source "$(dirname "$0")/../support/kill_and_resume.sh"
resume_begin prune_scan_resume_test "$work" "$make_tiny" "$source" "$corpus"

args=(--model "$work/tiny.gguf" --corpus "$corpus" --importance flap,wanda,taylor --allocation uniform,global --layers
      --calibration-samples 4 --seq-len 32 --eval-tokens 320 --eval-context 32 --eval-stride 16 --threads 1 --seed)
args+=(5)
# scan.json without what a run measures of itself (its times and run count)
figures() { python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("seconds", "runs"): d.pop(k)
for p in d["policies"]: p.pop("prune_seconds")
print(json.dumps(d, sort_keys=True, indent=1))' "$1/scan.json"; }
measured='perplexity .* pruned in \|alone: perplexity'

# 1. Uninterrupted.
"$scan" "${args[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; fail "uninterrupted run"; }
[[ ! -e $work/whole/state && ! -e $work/whole/cache ]] || fail "a finished scan left state/ or cache/"
n=$(grep -c "$measured" "$work/whole.log")
[[ $n -ge 4 ]] || { cat "$work/whole.log"; fail "only $n measurements in the uninterrupted run's log"; }

# 2. Killed once a random measurement among all but the last three has been made, 0-30 ms later
# (each measurement takes ~0.1-0.5 s here: the kill lands before the scan is written). A
# measurement's line is printed once it is kept, so the run killed after k lines kept k or more.
k=$(( 1 + RANDOM % (n - 3) ))
run_in_background "$work/run1.log" "$scan" "${args[@]}" --out "$work/resumed"
wait_for_lines "$measured" $k "$work/run1.log" 120000
sleep "$(printf '0.%03d' $(( RANDOM % 31 )))"
kill_run
rc=$run_rc
echo "prune_scan_resume_test: run 1 killed after measurement $k of $n (exit $rc)"
[[ $rc -eq 137 ]] || { cat "$work/run1.log"; fail "run 1 was not killed (exit $rc)"; }
[[ -e $work/resumed/state/run.json && ! -e $work/resumed/scan.json ]] || fail "run 1 was killed after its scan was written"

# Other options do not resume it.
other=("${args[@]}")
other[-1]=6
if "$scan" "${other[@]}" --out "$work/resumed" > "$work/other.log" 2>&1; then fail "a scan with other options resumed"; fi
grep -q "holds an unfinished run with other options ('seed' was 5, now 6)" "$work/other.log" ||
  { cat "$work/other.log"; fail "no mismatch message"; }

# 3. Resumed to the end: what was measured is not measured again, and the scan is the same.
"$scan" "${args[@]}" --out "$work/resumed" > "$work/run2.log" 2>&1 || { cat "$work/run2.log"; fail "run 2 failed"; }
grep "resumed the unfinished scan" "$work/run2.log" || { cat "$work/run2.log"; fail "run 2 did not resume"; }
again=$(grep -c "$measured" "$work/run2.log" || true)
[[ $again -le $(( n - k )) ]] || fail "run 2 measured $again of $n again; at least $k were kept"
[[ ! -e $work/resumed/state && ! -e $work/resumed/cache ]] || fail "the resumed scan left state/ or cache/"
grep -q '"runs": 2' "$work/resumed/scan.json" || fail "scan.json does not say \"runs\": 2"
diff <(figures "$work/whole") <(figures "$work/resumed") || fail "the resumed scan differs from the uninterrupted one"
cmp "$work/whole/sensitivity.svg" "$work/resumed/sensitivity.svg" || fail "the plots differ"
echo "prune_scan_resume_test: $again of $n measurements made again; the same scan and plot"
