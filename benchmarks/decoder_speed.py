#!/usr/bin/env python3
"""The Python side of ordo-bench-decoder: transformers' prefill and batch-1 decode speed on the
same GGUF model (dequantized to fp32), same prompt length, same threads; and, when llama_cpp
(PyPI llama-cpp-python) is importable, llama.cpp's on the same file as it is (quantized
matrix products), under the key "llama_cpp". Prints one JSON line.

    python benchmarks/decoder_speed.py MODEL.gguf PROMPT_TOKENS DECODE_TOKENS THREADS
"""
import json
import pathlib
import sys
import time

import numpy as np

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
result = {"prefill_tokens_per_s": prompt_tokens / prefill, "decode_tokens_per_s": decode_tokens / decode,
          "torch": torch.__version__, "transformers": transformers.__version__}


def llama_cpp_speed(tokens):
    """llama.cpp's prefill of `tokens` in one batch and greedy batch-1 decode, in tokens/s."""
    import llama_cpp
    n = len(tokens)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n + decode_tokens + 16, n_batch=max(n, 16), n_ubatch=max(n, 16),
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    n_vocab = llm.n_vocab()

    def next_token():
        return int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))))

    llm.eval(tokens[:16])  # warm-up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    cpp_prefill = time.perf_counter() - t0
    token = next_token()
    t0 = time.perf_counter()
    for _ in range(decode_tokens):
        llm.eval([token])
        token = next_token()
    cpp_decode = time.perf_counter() - t0
    return {"prefill_tokens_per_s": n / cpp_prefill, "decode_tokens_per_s": decode_tokens / cpp_decode,
            "llama_cpp_python": llama_cpp.__version__, "threads": threads}


try:
    import llama_cpp  # noqa: F401
except ImportError:
    pass
else:
    result["llama_cpp"] = llama_cpp_speed(ids[0].tolist())
print(json.dumps(result))
