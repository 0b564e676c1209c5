#!/usr/bin/env python3
"""Writes include/ordo/text/detail/bert_unicode.hpp: the character tables of BERT's basic
tokenization, read off Hugging Face `tokenizers` (BertNormalizer, BertPreTokenizer) by running
them on every Unicode scalar value, so that ordo's WordPiece tokenizer splits and normalizes text
exactly as the `tokenizers` version named in the header does (its Rust crates fix the Unicode
versions: char::is_whitespace, unicode_categories, unicode-normalization-alignments).

The script also checks that the tables compose into the full normalizer for every code point:
clean_text, then CJK spacing, then (uncased) accent stripping and lowercasing, one character at
a time. Run with the venv that has `tokenizers`:

    /work/venv/py/bin/python tests/text/make_bert_unicode.py
"""
import os
import sys

import tokenizers
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "include", "ordo", "model", "detail", "bert_unicode.hpp")

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def scalars():
    for cp in range(0x110000):
        if not 0xD800 <= cp <= 0xDFFF:
            yield cp


def ranges(cps):
    out = []
    for x in sorted(cps):
        if out and out[-1][1] == x - 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return out


def hangul_nfd(cp):
    s = cp - HANGUL_FIRST
    l, v, t = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return chr(l) + chr(v) + (chr(t) if t != 0x11A7 else "")


def main():
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    cjk = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    uncased = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=True)
    full = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    full_cased = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre = BertPreTokenizer()

    removed, to_space, chinese, marks, maps = [], [], [], [], {}
    punctuation, whitespace = [], []
    for cp in scalars():
        c = chr(cp)
        r = clean.normalize_str(c)
        if r == "":
            removed.append(cp)
        elif r == " " and c != " ":
            to_space.append(cp)
        elif r != c:
            sys.exit(f"clean_text maps U+{cp:04X} to {r!r}: not a removal or a space")
        r = cjk.normalize_str(c)
        if r == f" {c} ":
            chinese.append(cp)
        elif r != c:
            sys.exit(f"handle_chinese_chars maps U+{cp:04X} to {r!r}")
        if not HANGUL_FIRST <= cp <= HANGUL_LAST:
            r = uncased.normalize_str(c)
            if r == "":
                marks.append(cp)
            elif r != c:
                maps[cp] = r
        elif uncased.normalize_str(c) != hangul_nfd(cp):
            sys.exit(f"Hangul U+{cp:04X} is not decomposed algorithmically")
        pieces = pre.pre_tokenize_str("a" + c + "b")
        if len(pieces) == 3:
            punctuation.append(cp)
        elif len(pieces) == 2:
            whitespace.append(cp)
        elif len(pieces) != 1:
            sys.exit(f"BertPreTokenizer splits 'a U+{cp:04X} b' into {pieces}")

    # The tables must compose into the full normalizer, character by character.
    removed_set, space_set, chinese_set, marks_set = set(removed), set(to_space), set(chinese), set(marks)

    def compose(cp, lower):
        if cp in removed_set:
            return ""
        if cp in space_set:
            return " "
        c = chr(cp)
        if lower:
            if HANGUL_FIRST <= cp <= HANGUL_LAST:
                c = hangul_nfd(cp)
            elif cp in marks_set:
                c = ""
            else:
                c = maps.get(cp, c)
        return f" {c} " if cp in chinese_set else c

    for cp in scalars():
        for norm, lower in ((full, True), (full_cased, False)):
            want = norm.normalize_str(chr(cp))
            if compose(cp, lower) != want:
                sys.exit(f"tables do not compose for U+{cp:04X}: {compose(cp, lower)!r} != {want!r}")

    def range_table(name, rs, doc):
        lines = [f"/// {doc}", f"inline constexpr CodeRange {name}[] = {{"]
        items = [f"{{0x{a:04X}, 0x{b:04X}}}" for a, b in rs]
        for i in range(0, len(items), 6):
            lines.append("    " + ", ".join(items[i:i + 6]) + ",")
        lines.append("};")
        return "\n".join(lines)

    def cpp_string(s):
        return '"' + "".join(f"\\x{b:02x}" if b >= 0x80 or b < 0x20 or chr(b) in '"\\' else chr(b)
                             for b in s.encode()) + '"'

    map_items = [f"{{0x{cp:04X}, {cpp_string(r)}}}" for cp, r in sorted(maps.items())]
    map_lines = ["    " + ", ".join(map_items[i:i + 5]) + "," for i in range(0, len(map_items), 5)]

    text = f"""// ordo/text/detail/bert_unicode.hpp — the character tables of BERT's basic tokenization.
//
// GENERATED by tests/text/make_bert_unicode.py from Hugging Face tokenizers {tokenizers.__version__} (its
// BertNormalizer and BertPreTokenizer run on every Unicode scalar value); do not edit by hand.
// Normalizing one character (the script checks this composition for all of them):
//   1. clean_text: `removed` characters go away (NUL, U+FFFD, control, format, private-use and
//      unassigned characters); `to_space` ones become ' ' (tab, newlines, Unicode spaces);
//   2. handle_chinese_chars: a `chinese` character c becomes " c ";
//   3. uncased models: Hangul syllables decompose (NFD, computed), `marks` (nonspacing marks,
//      what accent stripping removes after NFD) go away, and `uncased` maps the rest of the
//      characters that NFD, mark removal and lowercasing change.
// The pre-tokenizer splits on `whitespace` (removed) and around `punctuation` (kept).
// The tables keep the generator's layout:
// clang-format off
#pragma once

#include <cstdint>  // std::uint32_t

namespace ordo::detail::bert_unicode {{

struct CodeRange {{
  std::uint32_t first, last;  // inclusive
}};

struct Mapping {{
  std::uint32_t code;
  const char* utf8;  // what the character becomes (UTF-8), never empty
}};

inline constexpr std::uint32_t hangul_first = 0x{HANGUL_FIRST:04X}, hangul_last = 0x{HANGUL_LAST:04X};

{range_table("removed", ranges(removed), "clean_text removes these.")}

{range_table("to_space", ranges(to_space), "clean_text turns these into ' '.")}

{range_table("chinese", ranges(chinese), "CJK ideographs, each made a word of its own.")}

{range_table("marks", ranges(marks), "Uncased models drop these (nonspacing marks).")}

{range_table("whitespace", ranges(whitespace), "The pre-tokenizer splits on these and drops them.")}

{range_table("punctuation", ranges(punctuation), "The pre-tokenizer splits around these and keeps each as a word.")}

/// Uncased models: what a character becomes after NFD, mark removal and lowercasing, for the
/// {len(maps)} characters that change (sorted by code point; Hangul syllables are computed).
inline constexpr Mapping uncased[] = {{
{chr(10).join(map_lines)}
}};

}}  // namespace ordo::detail::bert_unicode
"""
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: removed {len(ranges(removed))} ranges, to_space {len(to_space)}, chinese "
          f"{len(ranges(chinese))} ranges, marks {len(ranges(marks))} ranges, punctuation "
          f"{len(ranges(punctuation))} ranges, uncased {len(maps)} mappings")


if __name__ == "__main__":
    main()
