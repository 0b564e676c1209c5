#!/usr/bin/env python3
"""The Python side of ordo-bench-decoder: transformers' prefill and batch-1 decode speed on the
model ordo decoded (a GGUF dequantized to fp32; an NF4 directory in bitsandbytes' format through
bitsandbytes, when it imports), same prompt, same threads; and, when llama_cpp (PyPI
llama-cpp-python) is importable, llama.cpp's on a GGUF as it is (quantized matrix products):
MODEL itself when it is a .gguf, else --llama-cpp-model. Each figure is the best of --repeat
timed runs. Prints one JSON line; a side that cannot run says why under its key. --device and
--dtype place transformers' model (llama.cpp runs on the CPU); GPU timings wait for the device.

    python benchmarks/decoder_speed.py MODEL PROMPT_TOKENS DECODE_TOKENS THREADS
                                       [--repeat 3] [--llama-cpp-model FILE.gguf] [--device cuda] [--dtype bfloat16]
"""
import argparse
import json
import pathlib
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("prompt_tokens", type=int)
parser.add_argument("decode_tokens", type=int)
parser.add_argument("threads", type=int)
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--llama-cpp-model", default="")
parser.add_argument("--device", default="cpu", help="where transformers runs: cpu, cuda or cuda:N")
parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="the dtype of the dense parameters")
args = parser.parse_args()
path = pathlib.Path(args.model).resolve()
prompt_tokens, decode_tokens, threads = args.prompt_tokens, args.decode_tokens, args.threads
# The prompt ordo decodes too (ordo-bench-decoder): token i is 100 + 7919 i mod 40000.
prompt = [int(t) for t in np.arange(prompt_tokens, dtype=np.int64) * 7919 % 40000 + 100]


def finished(t):
    """The value on the host: on a GPU this waits for the queued kernels."""
    return t.cpu()


def transformers_speed():
    """transformers' best prefill and greedy batch-1 decode over the runs, in tokens/s."""
    import torch  # here, not at the top: a Python with llama_cpp alone still measures llama.cpp
    import transformers
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    ids = torch.tensor([prompt], dtype=torch.long).to(device)
    if path.is_dir():  # an HF directory; NF4 ones load through bitsandbytes
        placed = {} if device.type == "cpu" else {"device_map": device}  # bitsandbytes quantizes there
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **placed)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        model.to(device)
    model.eval()
    prefill = decode = float("inf")
    with torch.no_grad():
        finished(model(input_ids=ids[:, :16]).logits)  # warm-up
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            finished(token)
            prefill = min(prefill, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(decode_tokens):
                out = model(input_ids=token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            finished(token)
            decode = min(decode, time.perf_counter() - t0)
    result = {"prefill_tokens_per_s": prompt_tokens / prefill, "decode_tokens_per_s": decode_tokens / decode,
              "torch": torch.__version__, "transformers": transformers.__version__, "device": str(device),
              "dtype": args.dtype}
    quantization = getattr(model.config, "quantization_config", None)  # transformers 5 gives GGUF loads one too
    if quantization is not None:
        method = quantization.get("quant_method") if isinstance(quantization, dict) else getattr(quantization, "quant_method", None)
        result["quantization"] = str(getattr(method, "value", method))
        if "bitsandbytes" in result["quantization"]:
            import bitsandbytes
            result["bitsandbytes"] = bitsandbytes.__version__
    return result


def llama_cpp_speed(gguf, tokens):
    """llama.cpp's best prefill of `tokens` in one batch and greedy batch-1 decode, in tokens/s."""
    import llama_cpp
    n = len(tokens)
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=n + decode_tokens + 16, n_batch=max(n, 16), n_ubatch=max(n, 16),
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    n_vocab = llm.n_vocab()

    def next_token():
        return int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,))))

    llm.eval(tokens[:16])  # warm-up
    prefill = decode = float("inf")
    for _ in range(args.repeat):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        prefill = min(prefill, time.perf_counter() - t0)
        token = next_token()
        t0 = time.perf_counter()
        for _ in range(decode_tokens):
            llm.eval([token])
            token = next_token()
        decode = min(decode, time.perf_counter() - t0)
    return {"model": str(gguf), "prefill_tokens_per_s": n / prefill, "decode_tokens_per_s": decode_tokens / decode,
            "llama_cpp_python": llama_cpp.__version__, "threads": threads}


def why(error):
    return f"{type(error).__name__}: {error}".splitlines()[0]


try:
    result = transformers_speed()
except Exception as error:  # e.g. bitsandbytes missing for an NF4 directory, or no torch
    result = {"error": why(error)}
try:
    import llama_cpp  # noqa: F401
except ImportError:
    pass
else:
    gguf = path if path.suffix == ".gguf" else pathlib.Path(args.llama_cpp_model)
    try:
        result["llama_cpp"] = llama_cpp_speed(gguf, prompt)
    except Exception as error:
        result["llama_cpp"] = {"error": why(error)}
print(json.dumps(result))
