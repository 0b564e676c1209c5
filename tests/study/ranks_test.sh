#!/usr/bin/env bash
# The whole study on two local ranks (torchrun's variables on loopback) reports what one process
# reports (issue 16): the configurations without a training stage (Base, Q) to the last digit,
# answers included (evaluation sharded exactly); the others within what fp32 reduction order in
# training explains. Ranks that see different --out directories stop, saying so. A two-rank
# study killed midway resumes on two ranks and ends with the same figures. On a random-weight
# model with the default model's tokenizer (make_tiny_gguf). Every process is bounded in time.
#
#   ranks_test.sh ORDO_STUDY MAKE_TINY_GGUF SOURCE.gguf CORPUS_DIR CHATS WORK_DIR
set -euo pipefail
study=$1 make_tiny=$2 source=$3 corpus=$4 chats=$5 work=$6
for f in "$source" "$corpus" "$chats"; do
  [[ -e $f ]] || { echo "ORDO-SKIPPED: $f is not installed (./ordo model data)"; exit 0; }
done
rm -rf "$work"
mkdir -p "$work"
"$make_tiny" "$source" "$work/tiny.gguf" 7

args=(--model "$work/tiny.gguf" --corpus "$corpus" --chats "$chats" --train-samples 8 --calibration-samples 4
      --seq-len 32 --eval-chat-tokens 64 --clarity-prompts 3 --max-new-tokens 8 --no-judge --eval-tokens 160
      --threads 1 --checkpoint-seconds 0.001 --dist-timeout 60)
fail() { echo "ranks_test: FAILED: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# Two ranks into $1, each bounded by $2 seconds (KILL); the exit statuses in $work/$1.status.
two_ranks() {
  local out=$1 limit=$2 port pids=() statuses=()
  port=$(free_port)
  for r in 0 1; do
    RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      timeout -s KILL "$limit" "$study" "${args[@]}" --out "$work/$out" >> "$work/$out-rank$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    local s=0
    wait "$p" 2> /dev/null || s=$?
    statuses+=($s)
  done
  echo "${statuses[*]}" > "$work/$out.status"
}

# 1. One process, then two ranks.
t0=$(now_ms)
timeout 600 "$study" "${args[@]}" --out "$work/one" > "$work/one.log" 2>&1 || { cat "$work/one.log"; fail "one process"; }
one_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
two_ranks two 600
two_ms=$(( $(now_ms) - t0 ))
[[ $(cat "$work/two.status") == "0 0" ]] || { cat "$work"/two-rank*.log; fail "two ranks (exit $(cat "$work/two.status"))"; }
echo "ranks_test: one process $one_ms ms, two ranks $two_ms ms"
grep -q "rank 1 of 2 done; rank 0 wrote the reports" "$work/two-rank1.log" || { cat "$work/two-rank1.log"; fail "rank 1"; }
grep -q '"world_size": 2' "$work/two/results.json" || fail "results.json does not say world_size 2"
[[ ! -e $work/two/state && ! -e $work/two/cache ]] || fail "the two-rank study left state/ or cache/"

# 2. The figures, at full precision from results.json.
compare() {  # compare FIRST_DIR SECOND_DIR
  python3 - "$1" "$2" <<'EOF'
import json, sys
rows = lambda d: {r["configuration"]: r for r in json.load(open(d + "/results.json"))["results"]}
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
figures = ["perplexity", "nll", "eval_tokens", "chat_perplexity", "chat_eval_tokens", "clarity", "fluency",
           "coherence", "readability", "size_mb"]
worst = 0.0
for name in a:
    exact = name in ("base", "Q")
    for f in figures:
        x, y = a[name].get(f), b[name].get(f)
        if exact or not isinstance(x, float):
            assert x == y, f"{name} {f}: {x!r} (first) != {y!r} (second)"
        else:
            rel = abs(x - y) / max(abs(x), 1e-12)
            if f == "perplexity":
                worst = max(worst, rel)
            assert rel < 2e-3, f"{name} {f}: {x} (first) vs {y} (second): {rel:.2e} apart"
    if exact:
        assert a[name]["answers"] == b[name]["answers"], f"{name}: the answers or their scores differ"
print(f"ranks_test: {len(a)} rows; Base and Q equal to the last digit, answers included; "
      f"trained rows' perplexity within {worst:.1e} (relative)")
EOF
}
compare "$work/one" "$work/two" || fail "two ranks differ from one process"

# 3. Ranks that do not see one --out (as on machines without a shared filesystem) stop at once.
port=$(free_port)
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    timeout -s KILL 120 "$study" "${args[@]}" --out "$work/apart-$r" > "$work/apart-rank$r.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do
  if wait "$p"; then fail "ranks with different --out directories ran"; fi
done
for r in 0 1; do
  grep -q "rank 1's view of .*/state differs from rank 0's: --out must be one directory that every rank sees" \
    "$work/apart-rank$r.log" || { cat "$work/apart-rank$r.log"; fail "rank $r: no message about --out"; }
done
echo "ranks_test: ranks that see different --out directories stop, saying so"

# 4. Two ranks killed midway, then resumed on two ranks: the same figures as the whole two-rank run.
d=$(( two_ms * 45 / 100 ))
two_ranks resumed "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
echo "ranks_test: two ranks killed after $d ms (exit $(cat "$work/resumed.status"))"
[[ -e $work/resumed/state/run.json ]] || fail "the killed two-rank study left no state to resume"
two_ranks resumed 600
[[ $(cat "$work/resumed.status") == "0 0" ]] || { cat "$work"/resumed-rank*.log; fail "the resumed two-rank study failed"; }
grep -q "resumed the unfinished study" "$work/resumed-rank0.log" || { cat "$work/resumed-rank0.log"; fail "no resume"; }
compare "$work/two" "$work/resumed" || fail "the resumed two-rank study differs from the whole one"
echo "ranks_test: a two-rank study killed midway resumes on two ranks"
