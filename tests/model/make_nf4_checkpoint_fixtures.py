#!/usr/bin/env python3
"""NF4 checkpoint fixtures for ordo, made with transformers + bitsandbytes (CPU backend).

Run from the repository root with a Python that has torch, transformers and bitsandbytes:

    python tests/model/make_nf4_checkpoint_fixtures.py
        (a) Quantizes the tiny random Llama of tests/model/fixtures/llama_tied with
            BitsAndBytesConfig(nf4, double quantization, compute dtype float32) on CPU and
            saves it with save_pretrained into tests/model/fixtures/bnb_nf4/, plus
            tests/model/fixtures/bnb_nf4_expected.safetensors: the decoder fixture's
            `input_ids` / `attention_mask`, transformers' `logits` for them, and
            `dequantized_down_proj_1` (bitsandbytes' dequantization of
            model.layers.1.mlp.down_proj, fp32). See flat_dequantize and make_bnb for why the
            reference uses bitsandbytes' default backend rather than its native CPU kernel.
        (b) Then checks the directory ordo saved (tests/model/fixtures/ordo_nf4/, written
            by model.checkpoint with ORDO_CHECKPOINT_REGENERATE=1): transformers loads it as
            bitsandbytes Linear4bit layers, and its logits equal ordo's
            (fixtures/ordo_nf4_logits.safetensors).

    python tests/model/make_nf4_checkpoint_fixtures.py --check DIR [--logits FILE]
        Only (b), on any directory ordo saved (NF4 or dense): loads it with transformers and
        compares its logits on the unpadded positions with FILE (a safetensors file with input_ids, attention_mask and
        logits; default: the decoder fixture's expected logits). Prints the largest difference
        and exits 1 when it exceeds --tolerance (default 1e-4).
"""
import argparse
import json
import pathlib
import sys

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
SOURCE = FIXTURES / "llama_tied"


def bnb_config():
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32)


def logits_of(model, ref):
    # bitsandbytes' CPU backend repacks weights for its AVX512-BF16 kernel on the first forward
    # (absmax rounded to bf16; and it needs in_features % blocksize == 0): turn that off so
    # that the logits are those of dequantize_4bit + an fp32 matmul, on any CPU.
    for m in model.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    with torch.no_grad():
        return model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits.float()


def flat_dequantize(weight):
    """bitsandbytes' dequantization by its default (pure torch) backend: block i / blocksize
    of the flattened weight, the rule its CUDA kernel follows."""
    import bitsandbytes.functional as F
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code
    qs = weight.quant_state
    absmax = qs.absmax
    if qs.nested:
        absmax = F.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset
    return _dequantize_4bit_compute(weight.data.reshape(-1), absmax.float(), _get_4bit_code(qs.quant_type, "cpu"),
                                    qs.blocksize, qs.shape, torch.float32)


def use_flat_dequantize(model):
    """Makes every Linear4bit compute x W^T with W = flat_dequantize(weight), in fp32."""
    import bitsandbytes as bnb
    deq = {name: flat_dequantize(m.weight) for name, m in model.named_modules()
           if isinstance(m, bnb.nn.Linear4bit)}
    for name, m in model.named_modules():
        if name in deq:
            m.forward = (lambda w, b: lambda x: torch.nn.functional.linear(x, w, b))(deq[name], m.bias)
    return deq


def make_bnb():
    import bitsandbytes as bnb
    out = FIXTURES / "bnb_nf4"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        SOURCE, quantization_config=bnb_config(), dtype=torch.float32, device_map="cpu").eval()
    layer = model.model.layers[1].mlp.down_proj
    assert isinstance(layer, bnb.nn.Linear4bit), type(layer)
    model.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)  # not needed by ordo's tests
    ref = load_file(str(SOURCE / "expected.safetensors"))
    # bitsandbytes 0.50.2's native CPU dequantize_4bit kernel places the scales wrongly when a
    # row is not a whole number of blocks (down_proj here: 96 inputs, blocksize 64); its default
    # backend and the CUDA kernels index blocks of the flattened weight. The reference logits
    # are transformers' forward with each Linear4bit computing x W^T for W from the default
    # backend (fp32); the native kernel's logits are printed for comparison.
    native = logits_of(model, ref)
    deq = use_flat_dequantize(model)
    logits = logits_of(model, ref)
    print(f"max |native CPU kernel - default backend| logit: {(native - logits).abs().max().item():.3g}")
    save_file({"input_ids": ref["input_ids"], "attention_mask": ref["attention_mask"],
               "logits": logits.contiguous(),
               "dequantized_down_proj_1": deq["model.layers.1.mlp.down_proj"].contiguous()},
              str(FIXTURES / "bnb_nf4_expected.safetensors"))
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir())} bytes)")


def check(directory, logits_file, tolerance):
    directory = pathlib.Path(directory)
    config = json.loads((directory / "config.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, device_map="cpu").eval()
    if "quantization_config" in config:
        import bitsandbytes as bnb
        kinds = {type(m).__name__ for n, m in model.named_modules() if n.endswith("_proj")}
        if kinds != {"Linear4bit"}:
            print(f"FAIL {directory}: decoder linears load as {kinds}, not Linear4bit")
            return False
    ref = load_file(str(logits_file))
    real = ref["attention_mask"].bool().unsqueeze(-1).expand_as(ref["logits"])  # padded queries: not compared
    if "quantization_config" in config:
        native = logits_of(model, ref)
        use_flat_dequantize(model)
        print(f"   (bitsandbytes' native CPU kernel: max abs difference "
              f"{(native - ref['logits']).abs().masked_select(real).max().item():.3g}; see make_bnb)")
    got = logits_of(model, ref)
    diff = (got - ref["logits"]).abs().masked_select(real).max().item()
    ok = diff <= tolerance
    print(f"{'ok' if ok else 'FAIL'} {directory}: transformers' logits vs {logits_file.name}: "
          f"max abs difference {diff:.3g} (tolerance {tolerance:g})")
    return ok


def compare_tensors(ordo_dir, bnb_dir):
    """Prints which tensors of the two checkpoints differ (name, and how)."""
    a = safe_open(str(pathlib.Path(ordo_dir) / "model.safetensors"), "pt")
    b = safe_open(str(pathlib.Path(bnb_dir) / "model.safetensors"), "pt")
    ka, kb = set(a.keys()), set(b.keys())
    if ka != kb:
        print(f"tensor names differ: only ordo {sorted(ka - kb)}, only bitsandbytes {sorted(kb - ka)}")
    same = 0
    for k in sorted(ka & kb):
        x, y = a.get_tensor(k), b.get_tensor(k)
        if x.dtype == y.dtype and x.shape == y.shape and torch.equal(x.view(torch.uint8) if x.dtype != torch.uint8 else x,
                                                                     y.view(torch.uint8) if y.dtype != torch.uint8 else y):
            same += 1
        else:
            print(f"  differs: {k} {x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)}")
    print(f"{same} of {len(ka & kb)} common tensors are byte-identical")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--logits", metavar="FILE", type=pathlib.Path)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.check:
        ok = check(args.check, args.logits or SOURCE / "expected.safetensors", args.tolerance)
        sys.exit(0 if ok else 1)
    make_bnb()
    ordo_dir = FIXTURES / "ordo_nf4"
    if ordo_dir.exists():
        compare_tensors(ordo_dir, FIXTURES / "bnb_nf4")
        ok = check(ordo_dir, FIXTURES / "ordo_nf4_logits.safetensors", args.tolerance)
        sys.exit(0 if ok else 1)
    print(f"{ordo_dir} is absent: run model.checkpoint with ORDO_CHECKPOINT_REGENERATE=1, then this again")


if __name__ == "__main__":
    main()
