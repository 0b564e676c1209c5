#!/usr/bin/env python3
"""Packs a (minimized) libFuzzer corpus directory into one file that ordo's tests replay:
a sequence of records, each a little-endian u32 length and that many bytes, in file-name order.

    fuzz/pack_corpus.py build-fuzz/min/gguf tests/io/fixtures/fuzz_corpus/gguf.bin
"""
import struct
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    files = sorted(p for p in src.iterdir() if p.is_file())
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        for p in files:
            data = p.read_bytes()
            f.write(struct.pack("<I", len(data)))
            f.write(data)
    print(f"{out}: {len(files)} inputs, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
