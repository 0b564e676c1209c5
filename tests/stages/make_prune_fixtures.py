#!/usr/bin/env python3
"""Reference fixtures for ordo's P stage, checked against transformers.

For the tiny random decoders of tests/model/fixtures (llama3, qwen2) this script
1. draws calibration examples of unequal lengths and writes them to
   tests/stages/fixtures/<name>.safetensors;
2. runs ordo's stages.prune with ORDO_PRUNE_EXPORT set, so that ordo prunes each model by 30 %
   on those examples and saves it as a Hugging Face directory (config.json + model.safetensors);
3. loads that directory with transformers' AutoModelForCausalLM (it must load without missing,
   unexpected or re-initialised tensors) and computes its logits for fixed ids;
4. computes the importances independently here (forward hooks on gate_proj, padding masked, one
   padded batch for all examples) and checks that ordo kept exactly the neurons they select,
   with the original weights;
5. writes calibration, importances, kept indices, ids and transformers' logits to the fixture,
   then runs stages.prune once more to compare ordo's pruned model with them.

Run from the repository root with a Python that has torch and transformers, after building
stages.prune:
    python tests/stages/make_prune_fixtures.py build/tests/stages/stages.prune
"""
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = pathlib.Path(__file__).resolve().parent
DECODERS = HERE.parent / "model" / "fixtures"
OUT = HERE / "fixtures"
NAMES = ("llama3", "qwen2")
RATIO = 0.3
CASE = "against transformers*"


def calibration(vocab, gen, count=12):
    lengths = torch.randint(4, 21, (count,), generator=gen)
    ids = torch.zeros(count, int(lengths.max()), dtype=torch.long)
    for e, n in enumerate(lengths.tolist()):
        ids[e, :n] = torch.randint(1, vocab, (n,), generator=gen)
    return ids, lengths


def importance(model, ids, lengths):
    """Per layer (weight, activation, combined) in fp64, from the paper's definitions."""
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    sums, hooks = {}, []
    for i, layer in enumerate(model.model.layers):
        def hook(_module, _inputs, output, i=i):
            sums[i] = (output.double().abs() * mask[..., None].double()).sum((0, 1))
        hooks.append(layer.mlp.gate_proj.register_forward_hook(hook))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    for h in hooks:
        h.remove()
    out = []
    for i, layer in enumerate(model.model.layers):
        w = (layer.mlp.gate_proj.weight.double().abs().sum(1) +
             layer.mlp.up_proj.weight.double().abs().sum(1))
        a = sums[i] / mask.sum().double()
        out.append((w, a, 0.5 * w / w.max() + 0.5 * a / a.max()))
    return out


def kept(combined, ratio):
    width = combined.numel()
    removed = math.floor(width * ratio + 1e-9)
    order = torch.sort(combined, descending=True, stable=True).indices
    return torch.sort(order[: width - removed]).values


def run_test(binary, env=None, case=CASE):
    """Runs one doctest case of the stages.prune binary; exits with its output if it fails."""
    cmd = [binary, f"-tc={case}", "-s"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/tests/stages/stages.prune"
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)
    fixtures = {}
    for name in NAMES:
        config = json.loads((DECODERS / name / "config.json").read_text())
        ids, lengths = calibration(config["vocab_size"], gen)
        test_ids = torch.randint(0, config["vocab_size"], (2, 11), generator=gen)
        fixtures[name] = {"calibration_ids": ids, "calibration_lengths": lengths, "input_ids": test_ids}
        save_file({k: v.contiguous() for k, v in fixtures[name].items()}, str(OUT / f"{name}.safetensors"))

    with tempfile.TemporaryDirectory() as export:
        run_test(binary, dict(os.environ, ORDO_PRUNE_EXPORT=export))
        for name in NAMES:
            f = fixtures[name]
            saved = pathlib.Path(export) / name
            pruned, info = transformers.AutoModelForCausalLM.from_pretrained(
                saved, dtype=torch.float32, output_loading_info=True)
            problems = {k: v for k, v in info.items() if v}
            if problems:
                sys.exit(f"{name}: transformers loaded ordo's pruned model with {problems}")
            pruned.eval()
            original = transformers.AutoModelForCausalLM.from_pretrained(
                DECODERS / name, dtype=torch.float32).eval()
            scores = importance(original, f["calibration_ids"], f["calibration_lengths"])
            widths = []
            for i, (w, a, c) in enumerate(scores):
                k = kept(c, RATIO)
                src, dst = original.model.layers[i].mlp, pruned.model.layers[i].mlp
                assert torch.equal(dst.gate_proj.weight, src.gate_proj.weight[k]), (name, i)
                assert torch.equal(dst.up_proj.weight, src.up_proj.weight[k]), (name, i)
                assert torch.equal(dst.down_proj.weight, src.down_proj.weight[:, k]), (name, i)
                f[f"kept_{i}"], f[f"weight_{i}"], f[f"activation_{i}"] = k, w, a
                widths.append(k.numel())
            with torch.no_grad():
                f["logits"] = pruned(input_ids=f["input_ids"]).logits.float()
            intermediate = json.loads((saved / "config.json").read_text())["intermediate_size"]
            print(name, json.dumps({"intermediate_size": intermediate, "kept": widths,
                                    "logits": list(f["logits"].shape)}))
            save_file({k: v.contiguous() for k, v in f.items()}, str(OUT / f"{name}.safetensors"))

    print(run_test(binary).strip().splitlines()[-3:])
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
