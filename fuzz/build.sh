#!/bin/sh
# Builds ordo's libFuzzer targets with clang (Debian: clang-14, libclang-rt-14-dev), apart from
# the main CMake build (which uses g++). Usage:
#   fuzz/build.sh [OUT_DIR]              (default: build-fuzz/ in the source tree)
#   OUT_DIR/gguf -max_total_time=600 OUT_DIR/corpus/gguf fuzz/seeds/gguf
# Seeds are the committed test fixtures; crash inputs go to tests/io/fixtures/regressions/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$root/build-fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}
mkdir -p "$out"
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I$root/include"
for target in safetensors_header safetensors_index gguf; do
  echo "building $out/$target"
  # shellcheck disable=SC2086
  "$cxx" $flags "$here/$target.cpp" -o "$out/$target"
done
# the model layer's tokenizer / chat-template target (needs PCRE2: Debian libpcre2-dev)
if [ -f "$here/tokenizer_fuzz.cpp" ]; then
  echo "building $out/tokenizer_fuzz"
  # shellcheck disable=SC2086
  "$cxx" $flags "$here/tokenizer_fuzz.cpp" -lpcre2-8 -o "$out/tokenizer_fuzz"
fi
# the model layer's config.json target (nlohmann-json only)
echo "building $out/config_fuzz"
# shellcheck disable=SC2086
"$cxx" $flags "$here/config_fuzz.cpp" -o "$out/config_fuzz"
# seed corpora from the fixtures (valid files and the malformed corpus)
fx=$root/tests/io/fixtures
mkdir -p "$out/seeds/safetensors_header" "$out/seeds/safetensors_index" "$out/seeds/gguf"
cp "$fx"/safetensors/*.safetensors "$fx"/safetensors/sharded/*.safetensors "$fx"/gguf/*.safetensors \
   "$fx"/malformed/st_*.safetensors "$out/seeds/safetensors_header/"
cp "$fx"/safetensors/sharded/*.json "$fx"/malformed/index_*.json "$out/seeds/safetensors_index/"
cp "$fx"/gguf/*.gguf "$fx"/malformed/*.gguf "$out/seeds/gguf/"
mkdir -p "$out/seeds/config"
for d in "$root"/tests/model/fixtures/*; do
  if [ -f "$d/config.json" ]; then cp "$d/config.json" "$out/seeds/config/$(basename "$d").json"; fi
done
cp "$here"/seeds/config/*.json "$out/seeds/config/"
echo "built; run e.g.: $out/gguf -max_total_time=600 -dict=$here/gguf.dict $out/corpus/gguf $out/seeds/gguf"
