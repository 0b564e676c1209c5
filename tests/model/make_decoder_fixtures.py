#!/usr/bin/env python3
"""Reference fixtures for ordo's decoder: tiny random Llama and Qwen2 models saved by
transformers, with the logits transformers computes for fixed inputs.

Run from the repository root with a Python that has torch and transformers:
    python tests/model/make_decoder_fixtures.py
Writes tests/model/fixtures/<name>/{config.json, model.safetensors, expected.safetensors};
expected.safetensors holds `input_ids` (I64 [B, T]), `attention_mask` (I64 [B, T]) and
`logits` (F32 [B, T, V]). Batch row 1 is left-padded, as batched generation pads.
"""
import json
import pathlib

import torch
import transformers
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent / "fixtures"

COMMON = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-6, torch_dtype="float32")

MODELS = {
    # Llama 3 style: rope scaling "llama3", untied lm_head.
    "llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
               dict(COMMON, rope_theta=500000.0, tie_word_embeddings=False,
                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                      high_freq_factor=4.0,
                                      original_max_position_embeddings=32))),
    # SmolLM2 style: plain RoPE, tied embeddings.
    "llama_tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                   dict(COMMON, rope_theta=100000.0, tie_word_embeddings=True)),
    # Qwen2 style: q/k/v bias, tied embeddings.
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
              dict(COMMON, rope_theta=1000000.0, tie_word_embeddings=True)),
}


def main():
    for name, (config_cls, model_cls, kwargs) in MODELS.items():
        torch.manual_seed(1234)
        config = config_cls(**kwargs)
        model = model_cls(config).eval()
        with torch.no_grad():  # random weights larger than the default init, so errors show
            for p in model.parameters():
                p.normal_(0.0, 0.2)
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        gen = torch.Generator().manual_seed(7)
        ids = torch.randint(0, config.vocab_size, (2, 11), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, :3] = 0  # left padding in row 1
        ids[1, :3] = 0
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        save_file({"input_ids": ids.contiguous(), "attention_mask": mask.contiguous(),
                   "logits": logits.contiguous()}, str(d / "expected.safetensors"))
        for extra in ("generation_config.json",):
            (d / extra).unlink(missing_ok=True)
        print(name, json.dumps({"logits": list(logits.shape), "params": sum(
            p.numel() for p in model.parameters())}))
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
