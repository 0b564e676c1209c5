#!/usr/bin/env python3
"""Reference fixture for ordo's FLAP pruning (importance::flap, bias compensation), checked
against transformers.

For the tiny random Llama 3 decoder of tests/model/fixtures/llama3 this script
1. draws calibration examples of unequal lengths and test ids, writes them to
   tests/stages/fixtures/llama3_flap.safetensors;
2. runs ordo's stages.prune with ORDO_PRUNE_EXPORT set, so that ordo prunes the model by 30 %
   with FLAP on those examples and saves it as a Hugging Face directory (mlp_bias: true);
3. loads that directory with transformers' AutoModelForCausalLM (no missing, unexpected or
   re-initialised tensors: down_proj's bias must be read, not drawn);
4. computes FLAP independently here: forward pre-hooks on down_proj collect its input over the
   real tokens of one padded batch; score = population variance * squared column norm; the 30 %
   lowest per layer removed; bias = W_down[:, removed] @ mean(X)[removed]; and checks that the
   loaded model holds exactly the kept weights and that bias;
5. writes the kept indices and transformers' logits to the fixture, then runs stages.prune once
   more to compare ordo's pruned model with them.

Run from the repository root with a Python that has torch and transformers, after building
stages.prune:
    python tests/stages/make_flap_fixture.py build/tests/stages/stages.prune
"""
import json
import math
import os
import pathlib
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_prune_fixtures  # noqa: E402  (run_test)

HERE = pathlib.Path(__file__).resolve().parent
DECODER = HERE.parent / "model" / "fixtures" / "llama3"
OUT = HERE / "fixtures" / "llama3_flap.safetensors"
RATIO = 0.3
CASE = "FLAP against transformers*"


def run_test(binary, env=None):
    return make_prune_fixtures.run_test(binary, env, CASE)


def flap(model, ids, lengths):
    """Per layer: (score, mean of down_proj's input), fp64, over the real tokens."""
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
    inputs, hooks = {}, []
    for i, layer in enumerate(model.model.layers):
        def hook(_module, args, i=i):
            inputs[i] = args[0].double()[mask]  # [real tokens, width]
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask.long())
    for h in hooks:
        h.remove()
    out = []
    for i, layer in enumerate(model.model.layers):
        x = inputs[i]
        w = layer.mlp.down_proj.weight.double()
        out.append((x.var(0, unbiased=False) * w.square().sum(0), x.mean(0)))
    return out


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/tests/stages/stages.prune"
    config = json.loads((DECODER / "config.json").read_text())
    gen = torch.Generator().manual_seed(4242)
    count = 10
    lengths = torch.randint(4, 21, (count,), generator=gen)
    ids = torch.zeros(count, int(lengths.max()), dtype=torch.long)
    for e, n in enumerate(lengths.tolist()):
        ids[e, :n] = torch.randint(1, config["vocab_size"], (n,), generator=gen)
    f = {"calibration_ids": ids, "calibration_lengths": lengths,
         "input_ids": torch.randint(0, config["vocab_size"], (2, 11), generator=gen)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in f.items()}, str(OUT))

    with tempfile.TemporaryDirectory() as export:
        run_test(binary, dict(os.environ, ORDO_PRUNE_EXPORT=export))
        saved = pathlib.Path(export) / "llama3_flap"
        pruned, info = transformers.AutoModelForCausalLM.from_pretrained(
            saved, dtype=torch.float32, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v}
        if problems:
            sys.exit(f"transformers loaded ordo's FLAP-pruned model with {problems}")
        if not pruned.config.mlp_bias:
            sys.exit("the saved config does not set mlp_bias")
        pruned.eval()
        original = transformers.AutoModelForCausalLM.from_pretrained(DECODER, dtype=torch.float32).eval()
        for i, (score, mean) in enumerate(flap(original, ids, lengths)):
            width = score.numel()
            removed = math.floor(width * RATIO + 1e-9)
            order = torch.sort(score, descending=True, stable=True).indices
            k = torch.sort(order[: width - removed]).values
            gone = torch.ones(width, dtype=torch.bool)
            gone[k] = False
            src, dst = original.model.layers[i].mlp, pruned.model.layers[i].mlp
            assert torch.equal(dst.gate_proj.weight, src.gate_proj.weight[k]), i
            assert torch.equal(dst.up_proj.weight, src.up_proj.weight[k]), i
            assert torch.equal(dst.down_proj.weight, src.down_proj.weight[:, k]), i
            assert not dst.gate_proj.bias.any() and not dst.up_proj.bias.any(), i
            bias = src.down_proj.weight.double()[:, gone] @ mean[gone]
            err = (dst.down_proj.bias.double() - bias).abs().max().item()
            assert err < 1e-5 * max(bias.abs().max().item(), 1e-3), (i, err)
            f[f"kept_{i}"] = k
            print(f"layer {i}: kept {k.numel()} of {width}, compensation bias max |b| "
                  f"{bias.abs().max().item():.4g}, ordo vs here {err:.3g}")
        with torch.no_grad():
            f["logits"] = pruned(input_ids=f["input_ids"]).logits.float()
        save_file({k: v.contiguous() for k, v in f.items()}, str(OUT))

    print(run_test(binary).strip().splitlines()[-3:])
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
