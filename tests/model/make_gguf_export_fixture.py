#!/usr/bin/env python3
"""Checks the GGUF files ordo writes (`ordo-compress --format gguf`) with the `gguf` package and
transformers, and records transformers' logits as tests/model/fixtures/gguf_export.json, which
tests/model/save_gguf_test.cpp compares ordo with in CI (where neither is installed).

For the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) this script:
  1. exports it unchanged (`--pipeline base`) as F32, F16 and Q8_0 GGUFs, and a FLAP-pruned copy
     with per-layer FFN widths (`--pipeline P --prune-importance flap --prune-allocation global
     --no-recovery`) as F32;
  2. reads every file with gguf-py's GGUFReader: architecture, per-layer widths, tensor types,
     tokenizer and chat template present;
  3. loads the F32 and F16 exports with transformers (AutoModelForCausalLM and AutoTokenizer
     with gguf_file=...), checks the tokenizer gives ordo's ids for a probe text, and records
     transformers' logits at a few positions (the 20 largest per position) for the F32 export;
  4. reports how far the F16 and Q8_0 exports move transformers' logits and perplexity.

Run from the repository root after building ordo-compress and `./ordo model data`:

    .venv/torch2/bin/python tests/model/make_gguf_export_fixture.py --ordo-compress build/tools/ordo-compress

Python packages: gguf, transformers, torch (the venv of `./ordo torch2`, plus `pip install gguf`).
"""
import argparse
import json
import math
import pathlib
import sys
import tempfile

import gguf
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from fixture_support import run_tool  # noqa: E402
PROBE = ("The President shall, from time to time, give to the Congress Information of the State of the Union, "
         "and recommend to their Consideration such Measures as he shall judge necessary and expedient.")
POSITIONS = [0, 5, 11, 17, 23, 29]


def export(tool, out, *flags):
    cmd = [str(tool), "--out", str(out), "--format", "gguf", "--calibration-samples", "2", "--train-samples", "2",
           "--seq-len", "16", "--corpus", str(ROOT / "data/sotu"), *flags]
    return json.loads(run_tool(cmd).strip().splitlines()[-1])


def read_with_gguf(path):
    r = gguf.GGUFReader(str(path))
    field = lambda k: r.fields[k]
    arch = bytes(field("general.architecture").parts[-1]).decode()
    ffn = field(f"{arch}.feed_forward_length")
    widths = [int(ffn.parts[i][0]) for i in ffn.data]
    types = sorted({t.tensor_type.name for t in r.tensors})
    assert "tokenizer.ggml.tokens" in r.fields and "tokenizer.chat_template" in r.fields, "no tokenizer"
    return {"architecture": arch, "feed_forward_length": widths, "tensor_types": types, "tensors": len(r.tensors)}


def load(path):
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.eval(), tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ordo-compress", required=True, type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "tests/model/fixtures/gguf_export.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        runs = {
            "f32": export(args.ordo_compress, tmp / "f32", "--pipeline", "base", "--gguf-type", "f32"),
            "f16": export(args.ordo_compress, tmp / "f16", "--pipeline", "base", "--gguf-type", "f16"),
            "q8_0": export(args.ordo_compress, tmp / "q8", "--pipeline", "base", "--gguf-type", "q8_0"),
            "flap_f32": export(args.ordo_compress, tmp / "flap", "--pipeline", "P", "--prune-importance", "flap",
                               "--prune-allocation", "global", "--no-recovery", "--gguf-type", "f32"),
        }
        read = {k: read_with_gguf(pathlib.Path(v["out"])) for k, v in runs.items()}
        for k, v in read.items():
            print(f"gguf-py reads {k}: {v}")
        assert len(set(read["flap_f32"]["feed_forward_length"])) > 1, "the pruned model's widths are uniform"

        model, tok = load(pathlib.Path(runs["f32"]["out"]))
        ids = tok(PROBE, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0]
            nll = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:]).item()
        top = [{"position": p, "ids": logits[p].topk(20).indices.tolist(), "logits": logits[p].topk(20).values.tolist()}
               for p in POSITIONS]
        results = {"f32": {"ppl": math.exp(nll)}}
        for k in ("f16", "q8_0"):
            m, _ = load(pathlib.Path(runs[k]["out"]))
            with torch.no_grad():
                other = m(ids).logits[0]
            results[k] = {"ppl": math.exp(torch.nn.functional.cross_entropy(other[:-1], ids[0, 1:]).item()),
                          "max_abs_logit_difference_to_f32": (other - logits).abs().max().item()}
        for k, v in results.items():
            print(f"transformers on the {k} export: {v}")
        fixture = {
            "made_by": "tests/model/make_gguf_export_fixture.py",
            "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", "installed"),
            "probe": PROBE,
            "ids": ids[0].tolist(),
            "transformers_f32": {"ppl": results["f32"]["ppl"], "top": top},
            "transformers_f16": results["f16"],
            "transformers_q8_0": results["q8_0"],
            "gguf_py": read,
            "ordo": {k: {"file_mb": v["file_mb"], "reload": v["reload"]} for k, v in runs.items()},
        }
        args.out.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
