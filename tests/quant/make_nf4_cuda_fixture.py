#!/usr/bin/env python3
"""Makes tests/quant/fixtures/nf4_bitsandbytes_cuda.bin on a machine with a CUDA GPU.

    python tests/quant/make_nf4_cuda_fixture.py [--out PATH]

Needs torch with CUDA, numpy and bitsandbytes. For every case it stores the input and the packed
bytes and absmax of bitsandbytes' quantize_4bit (NF4, no double quantization) computed by its CUDA
kernels on this GPU. The cases are the inputs of fixtures/nf4_bitsandbytes.bin (ties, tails, NaN
and Inf, zero, huge and subnormal blocks, every blocksize and dtype) and "near threshold" blocks:
random absmax, and values that are a threshold times the absmax give or take a few ulps, where an
approximate reciprocal (bitsandbytes' kernels are built with --use_fast_math) can pick another code
than the correctly rounded one.

ordo's CUDA kernel with Arithmetic::fast_math must give exactly these bytes on a GPU
(nf4_cuda_test); ordo's exact rule, on the CPU and the GPU, may differ only at values within an
ulp of a threshold or where subnormals are flushed (nf4_fixture_test checks each difference).

Format (little endian): b"ORDONF4C", u32 version (1), u32 case count, then per case: u32 name
length, name, u32 dtype (0 f32, 1 f16, 2 bf16), u64 n, u32 blocksize, input (n x dtype),
packed ((n + 1) / 2 bytes), absmax (ceil(n / blocksize) x f32).
"""

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from check_nf4_fixture_cuda import TORCH_DTYPES, read_fixture, as_tensor  # noqa: E402
from make_nf4_fixtures import NF4_MID, F32, raw_bytes  # noqa: E402


def near_threshold_blocks(rng, blocks, blocksize, dtype):
    """blocks x blocksize values: element 0 is the block's absmax (random, not a power of two),
    the others are midpoint * absmax moved by -3..3 ulps of the input dtype."""
    out = np.empty((blocks, blocksize), dtype=F32)
    for b in range(blocks):
        am = F32(rng.uniform(0.001, 8.0))
        if dtype == 1:
            am = F32(np.float16(am))
        elif dtype == 2:
            am = F32(torch.tensor(am).to(torch.bfloat16).float().item())
        mids = NF4_MID[rng.integers(0, NF4_MID.size, blocksize - 1)]
        v = torch.from_numpy((mids * am).astype(F32)).to(TORCH_DTYPES[dtype])
        steps = torch.from_numpy(rng.integers(-3, 4, blocksize - 1)).to(torch.int16)
        if dtype == 0:
            bits = v.view(torch.int32) + steps.to(torch.int32)
            v = bits.view(torch.float32)
        else:
            bits = v.view(torch.int16) + steps
            v = bits.view(TORCH_DTYPES[dtype])
        vals = v.float().numpy()
        vals = np.clip(vals, -am, am)  # keep |x| <= absmax so element 0 stays the absmax
        out[b, 0] = am
        out[b, 1:] = vals
    return out.reshape(-1)


def in_dtype(values, dtype):
    """fp32 values rounded to the case's dtype, as a tensor."""
    return torch.from_numpy(np.ascontiguousarray(values, dtype=F32)).to(TORCH_DTYPES[dtype])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "fixtures" / "nf4_bitsandbytes_cuda.bin"))
    ap.add_argument("--source", default=str(Path(__file__).parent / "fixtures" / "nf4_bitsandbytes.bin"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 77
    import bitsandbytes
    import bitsandbytes.functional as F

    dev = torch.device("cuda")
    rng = np.random.default_rng(20261124)
    cases = []
    for k in read_fixture(args.source)["cases"]:
        t = as_tensor(k["x"], k["dtype"])
        cases.append((k["name"], k["dtype"], k["blocksize"], t))
    for dtype, bs, blocks in ((0, 64, 256), (0, 32, 64), (0, 4096, 2), (1, 64, 128), (2, 128, 64)):
        t = in_dtype(near_threshold_blocks(rng, blocks, bs, dtype), dtype)
        cases.append((f"near_threshold_{['f32', 'f16', 'bf16'][dtype]}_bs{bs}", dtype, bs, t))
    t = in_dtype(rng.standard_normal(65536).astype(F32) * F32(0.02), 2)
    cases.append(("normal_bf16_bs64_large", 2, 64, t))

    out = bytearray(b"ORDONF4C") + struct.pack("<II", 1, len(cases))
    for name, dtype, bs, t in cases:
        packed, st = F.quantize_4bit(t.to(dev), blocksize=bs, quant_type="nf4", compress_statistics=False)
        packed = packed.flatten().cpu().numpy().astype(np.uint8)
        absmax = st.absmax.float().cpu().numpy().astype("<f4")
        n = t.numel()
        assert packed.size == (n + 1) // 2 and absmax.size == -(-n // bs)
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<IQI", dtype, n, bs)
        out += raw_bytes(t) + packed.tobytes() + absmax.tobytes()
        print(f"{name}: n={n} bs={bs} dtype={dtype}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(out))
    tmp.replace(path)
    print(f"wrote {path} ({len(out)} bytes) with bitsandbytes {bitsandbytes.__version__}, torch {torch.__version__}, "
          f"on {torch.cuda.get_device_name(0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
