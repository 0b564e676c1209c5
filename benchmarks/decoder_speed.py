#!/usr/bin/env python3
"""The Python side of ordo-bench-decoder: transformers' prefill and batch-1 decode speed on the
same GGUF model (dequantized to fp32), same prompt length, same threads. Prints one JSON line.

    python benchmarks/decoder_speed.py MODEL.gguf PROMPT_TOKENS DECODE_TOKENS THREADS
"""
import json
import pathlib
import sys
import time

import torch
import transformers

path = pathlib.Path(sys.argv[1]).resolve()
prompt_tokens, decode_tokens, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = transformers.AutoModelForCausalLM.from_pretrained(
    path.parent, gguf_file=path.name, torch_dtype=torch.float32).eval()
ids = (torch.arange(prompt_tokens) * 7919 % 40000 + 100).unsqueeze(0)
with torch.no_grad():
    model(input_ids=ids[:, :16])  # warm-up
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    prefill = time.perf_counter() - t0
    past = out.past_key_values
    token = out.logits[:, -1:].argmax(-1)
    t0 = time.perf_counter()
    for _ in range(decode_tokens):
        out = model(input_ids=token, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
    decode = time.perf_counter() - t0
print(json.dumps({"prefill_tokens_per_s": prompt_tokens / prefill,
                  "decode_tokens_per_s": decode_tokens / decode,
                  "torch": torch.__version__, "transformers": transformers.__version__}))
