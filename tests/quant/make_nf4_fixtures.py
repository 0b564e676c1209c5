#!/usr/bin/env python3
"""Makes tests/quant/fixtures/nf4_bitsandbytes.bin: NF4 bit-exactness fixtures for ordo.

Run with a Python that has torch, numpy and bitsandbytes (PyPI) installed:

    python tests/quant/make_nf4_fixtures.py [--out tests/quant/fixtures/nf4_bitsandbytes.bin]

For each case (shape, blocksize, input dtype, contents) the file holds:
  - the input values (raw fp32 / fp16 / bf16 bits);
  - what bitsandbytes produces on this machine (no GPU: its CPU/default backend):
    quantize_4bit packed bytes and absmax, dequantize_4bit output, and with
    compress_statistics=True the offset, the 8-bit absmax codes, the second-level absmax and the
    dequantized scales;
  - what bitsandbytes' CUDA kernels' rule gives for the same input, from an independent numpy
    model of that rule written below (kQuantizeBlockwise + dQuantizeNF4, and dQuantize for the
    8-bit statistics).
Where the CPU backend and the CUDA rule differ (tail block divides instead of multiplying by the
reciprocal, NaN propagates into absmax and bucketize sends NaN to code 15, zero blocks pack 0x77,
the 8-bit statistics go through a 65536-entry lookup table), tests/quant/nf4_fixture_test.cpp
says which and checks ordo against both.

Format (little endian):
  b"ORDONF4\\0", u32 version (2), u32 case count, 256 x f32 dynamic map (bitsandbytes'
  create_dynamic_map()), 16 x f32 NF4 code (bitsandbytes' get_4bit_type("nf4"));
  8-bit ties: u32 m, m x f32 values (every midpoint of the dynamic map and its two fp32
  neighbours, in 256-blocks that each start with 1.0 so the block's absmax is 1), m x u8 codes
  by the CUDA rule, m x u8 codes from bitsandbytes' CPU quantize_blockwise; then per case:
  u32 name length, name; u32 dtype (0 f32, 1 f16, 2 bf16); u64 n; u32 blocksize; u32 flags
  (bit 0: nested statistics present); input (n x dtype); bnb packed ((n+1)/2 bytes);
  bnb absmax (blocks x f32); cuda packed; cuda absmax; bnb dequantized (n x dtype);
  if nested: bnb offset (f32), bnb codes (blocks x u8), bnb absmax2 (ceil(blocks/256) x f32),
  bnb scales (blocks x f32), cuda codes (blocks x u8, given the bnb absmax and offset),
  cuda absmax2.
"""

import argparse
import struct
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F

F32 = np.float32
DTYPES = {"f32": (0, torch.float32), "f16": (1, torch.float16), "bf16": (2, torch.bfloat16)}


# ---- the CUDA kernels' rule, modelled in numpy ---------------------------------------------------

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=F32)
# The decision tree's thresholds are decimal literals in kernels.cu; nvcc (like any C++
# compiler) reads each one as the fp32 nearest to the decimal. numpy would go through a double
# first, which rounds four of them differently (their double is a tie between two floats).
NF4_LITERALS = ["-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906",
                "-0.33967943489551544", "-0.23460740596055984", "-0.13791173323988914",
                "-0.045525018125772476", "0.03979014977812767", "0.1202552504837513",
                "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
                "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]


def nearest_f32(decimal):
    exact = Fraction(decimal)
    guess = F32(float(decimal))
    candidates = [np.nextafter(guess, F32(-2)), guess, np.nextafter(guess, F32(2))]
    return min(candidates, key=lambda c: abs(Fraction(float(c)) - exact))


NF4_MID = np.array([nearest_f32(d) for d in NF4_LITERALS], dtype=F32)
# bitsandbytes' CPU backend: (code[:-1] + code[1:]) / 2 in fp32
ROUNDED_MID = ((NF4[:-1] + NF4[1:]) * F32(0.5)).astype(F32)


def cuda_block_absmax(blocks, partial_last):
    """fmaxf fold of |x| from -FLT_MAX (NaN ignored); a partial last block also sees its zero padding."""
    a = np.abs(blocks)
    start = np.full(blocks.shape[0], -np.finfo(F32).max, dtype=F32)
    if partial_last:
        start[-1] = 0.0
    return np.fmax(start, np.fmax.reduce(a, axis=1, initial=-np.finfo(F32).max)).astype(F32)


def pad_blocks(x, blocksize):
    n = x.size
    nb = -(-n // blocksize)
    padded = np.zeros(nb * blocksize, dtype=F32)
    padded[:n] = x
    mask = np.zeros(nb * blocksize, dtype=bool)
    mask[:n] = True
    return padded.reshape(nb, blocksize), mask.reshape(nb, blocksize), n % blocksize != 0


def cuda_quantize_nf4(x, blocksize):
    """kQuantizeBlockwise<NF4>: absmax, x * (1.0f / absmax), strict > against the midpoints."""
    blocks, mask, partial = pad_blocks(x, blocksize)
    # the padding is 0 and takes part in the max of a partial block; exclude it otherwise
    masked = np.where(mask, blocks, F32(np.nan))
    absmax = cuda_block_absmax(masked, partial)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = (F32(1.0) / absmax).astype(F32)
        scaled = (blocks * scale[:, None]).astype(F32).reshape(-1)
    codes = (scaled[:, None] > NF4_MID[None, :]).sum(axis=1).astype(np.uint8)  # NaN: 0
    n = x.size
    codes = codes[: n + (n % 2)]  # the odd tail's partner is the (scaled) zero padding
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed.astype(np.uint8), absmax


def cuda_dquantize8(code, x):
    """dQuantize<0>: seven-step binary search from pivot 127, nearest by midpoint, ties to pivot."""
    out = np.empty(x.size, dtype=np.uint8)
    for k, v in enumerate(x):
        pivot, upper_pivot, lower_pivot = 127, 255, 0
        lower, upper = F32(-1.0), F32(1.0)
        val = code[pivot]
        i = 64
        while i > 0:
            if v > val:
                lower_pivot, lower, pivot = pivot, val, pivot + i
            else:
                upper_pivot, upper, pivot = pivot, val, pivot - i
            val = code[pivot]
            i >>= 1
        if upper_pivot == 255:
            upper = code[upper_pivot]
        if lower_pivot == 0:
            lower = code[lower_pivot]
        if v > val:
            mid = F32((upper + val) * F32(0.5))
            out[k] = upper_pivot if v > mid else pivot
        else:
            mid = F32((lower + val) * F32(0.5))
            out[k] = lower_pivot if v < mid else pivot
    return out


def cuda_quantize8(code, values, blocksize=256):
    blocks, mask, partial = pad_blocks(values, blocksize)
    masked = np.where(mask, blocks, F32(np.nan))
    absmax2 = cuda_block_absmax(masked, partial)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = (F32(1.0) / absmax2).astype(F32)
        scaled = (blocks * scale[:, None]).astype(F32).reshape(-1)[: values.size]
    return cuda_dquantize8(code, scaled), absmax2


# ---- cases ---------------------------------------------------------------------------------------

def tie_values(scale):
    """Values exactly on every threshold of the CUDA tree and of the CPU backend's bucketize (and
    their fp32 neighbours), with absmax = scale."""
    v = [scale]
    for m in np.unique(np.concatenate([NF4_MID, ROUNDED_MID])):
        v += [m * F32(scale), np.nextafter(m, F32(2)) * F32(scale), np.nextafter(m, F32(-2)) * F32(scale)]
    return np.array(v, dtype=F32)


def divide_vs_multiply_values(rng, count):
    """Values whose code differs between x / absmax (bitsandbytes' CPU tail block) and
    x * (1 / absmax) (the CUDA rule); the first value is the absmax itself."""
    code = lambda v: int((v > NF4_MID).sum())
    while True:
        am = F32(rng.uniform(0.5, 4.0))
        r = F32(F32(1.0) / am)
        found = [am]
        for m in NF4_MID:
            x = F32(m * am)
            for _ in range(64):
                if code(F32(x * r)) != code(F32(x / am)):
                    found.append(x)
                    break
                x = np.nextafter(x, F32(2.0) if rng.random() < 0.5 else F32(-2.0))
        if len(found) >= count:
            return np.array(found[:count], dtype=F32)


def make_cases(rng):
    normal = lambda n, s=1.0: (rng.standard_normal(n) * s).astype(F32)
    cases = []
    cases.append(("normal_f32_bs64", "f32", 64, normal(32 * 96), True))
    cases.append(("normal_f32_bs32_odd", "f32", 32, normal(1001), True))
    cases.append(("normal_f32_bs128_tail", "f32", 128, normal(3000, 0.02), True))
    cases.append(("normal_f16_bs64", "f16", 64, normal(2050), True))
    cases.append(("normal_bf16_bs256", "bf16", 256, normal(4100, 0.05), True))
    cases.append(("normal_f32_bs512", "f32", 512, normal(1536), True))
    cases.append(("normal_f16_bs1024", "f16", 1024, normal(3000), True))
    cases.append(("normal_bf16_bs2048", "bf16", 2048, normal(4097), True))
    cases.append(("normal_f16_bs4096", "f16", 4096, normal(8200), True))
    # many blocks: 520 absmax values -> three second-level blocks, the last partial
    cases.append(("many_blocks_f16_bs32", "f16", 32, normal(32 * 520, 0.03), True))
    # exact ties: absmax a power of two, so x * (1/absmax) lands exactly on each midpoint
    ties = []
    for scale in (1.0, 2.0, 0.25, 64.0):
        t = tie_values(scale)
        block = np.zeros(64, dtype=F32)
        block[: t.size] = t
        ties.append(block)
    cases.append(("ties_f32_bs64", "f32", 64, np.concatenate(ties), True))
    # the tail block: bitsandbytes' CPU path divides there, the CUDA rule multiplies by 1/absmax
    dv = divide_vs_multiply_values(rng, 6)
    full = normal(64, 0.1)
    full[: dv.size] = dv
    tail = normal(40, 0.1)
    tail[: dv.size] = dv
    cases.append(("tail_divide_f32_bs64", "f32", 64, np.concatenate([full, tail]), True))
    # magnitudes: huge, tiny, subnormal absmax, mixed within a block
    mags = []
    for s in (3.0e38, 1.0e30, 1.0e-30, 1.0e-37, 1.0e-39):
        mags.append(normal(64, 1.0) * F32(s / 4))
    mixed = normal(64, 1e-20)
    mixed[3] = F32(1e20)
    mags.append(mixed)
    cases.append(("magnitudes_f32_bs64", "f32", 64, np.concatenate(mags).astype(F32), True))
    # zeros: an all-zero block, a block of -0.0, a zero partial tail block
    z = normal(64 * 5 + 10)
    z[64:128] = 0.0
    z[128:192] = -0.0
    z[320:] = 0.0
    cases.append(("zeros_f32_bs64", "f32", 64, z, True))
    # NaN and Inf (no nested statistics: bitsandbytes' CPU absmax is NaN there)
    s = normal(64 * 6 + 7)
    s[5] = np.nan
    s[64 + 9] = np.inf
    s[128 + 1] = -np.inf
    s[192:256] = np.nan
    s[256 + 3] = np.nan
    s[256 + 4] = np.inf
    s[384:] = np.nan
    cases.append(("nan_inf_f32_bs64", "f32", 64, s, False))
    return cases


def to_torch(values, dtype):
    return torch.from_numpy(values.copy()).to(DTYPES[dtype][1])


def raw_bytes(t):
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    return t.view(torch.int16).numpy().astype("<i2").tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "fixtures" / "nf4_bitsandbytes.bin"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240604)
    dyn = F.create_dynamic_map().numpy().astype(F32)
    nf4 = F.get_4bit_type("nf4", device="cpu").numpy().astype(F32)
    assert np.array_equal(nf4, NF4), "bitsandbytes' NF4 code differs from the table in this script"
    differ = np.nonzero(ROUNDED_MID != NF4_MID)[0].tolist()
    assert differ == [0, 8, 12, 14], differ
    assert all(np.nextafter(ROUNDED_MID[i], NF4_MID[i]) == NF4_MID[i] for i in differ)

    cases = make_cases(rng)
    out = bytearray(b"ORDONF4\0")
    out += struct.pack("<II", 2, len(cases))
    out += dyn.astype("<f4").tobytes() + nf4.astype("<f4").tobytes()
    mids = ((dyn[:-1] + dyn[1:]) * F32(0.5)).astype(F32)
    ties = np.concatenate([mids, np.nextafter(mids, F32(2)), np.nextafter(mids, F32(-2))])
    tie_blocks = np.concatenate([np.concatenate([[F32(1.0)], ties[k:k + 255]]) for k in range(0, ties.size, 255)])
    tie_blocks = tie_blocks.astype(F32)
    tie_cuda, _ = cuda_quantize8(dyn, tie_blocks)
    tie_bnb, _ = F.quantize_blockwise(torch.from_numpy(tie_blocks.copy()), code=torch.from_numpy(dyn.copy()),
                                      blocksize=256)
    tie_bnb = tie_bnb.numpy().astype(np.uint8)
    out += struct.pack("<I", tie_blocks.size) + tie_blocks.astype("<f4").tobytes()
    out += tie_cuda.tobytes() + tie_bnb.tobytes()
    print(f"8-bit ties: {tie_blocks.size} values; codes differing bnb-cpu vs cuda rule: "
          f"{int((tie_cuda != tie_bnb).sum())}")
    for name, dtype, bs, values, nested in cases:
        t = to_torch(values, dtype)
        x32 = t.float().numpy()  # exact widening of the stored input
        n = x32.size
        packed, st = F.quantize_4bit(t, blocksize=bs, quant_type="nf4", compress_statistics=False)
        bnb_packed = packed.flatten().numpy().astype(np.uint8)
        bnb_absmax = st.absmax.numpy().astype(F32)
        deq = F.dequantize_4bit(packed, st)
        cuda_packed, cuda_absmax = cuda_quantize_nf4(x32, bs)
        assert bnb_packed.size == (n + 1) // 2 and bnb_absmax.size == -(-n // bs)
        out += struct.pack("<I", len(name)) + name.encode()
        out += struct.pack("<IQII", DTYPES[dtype][0], n, bs, 1 if nested else 0)
        out += raw_bytes(t) + bnb_packed.tobytes() + bnb_absmax.astype("<f4").tobytes()
        out += cuda_packed.tobytes() + cuda_absmax.astype("<f4").tobytes()
        out += raw_bytes(deq.reshape(-1))
        diff = int((bnb_packed != cuda_packed).sum())
        summary = f"{name}: n={n} bs={bs} {dtype}; packed bytes differing bnb-cpu vs cuda rule: {diff}"
        if nested:
            packed2, st2 = F.quantize_4bit(t, blocksize=bs, quant_type="nf4", compress_statistics=True)
            assert torch.equal(packed2, packed)
            offset = F32(st2.offset.item())
            codes = st2.absmax.numpy().astype(np.uint8)
            absmax2 = st2.state2.absmax.numpy().astype(F32)
            assert np.array_equal(st2.state2.code.numpy(), dyn) and st2.state2.blocksize == 256
            scales = (F.dequantize_blockwise(st2.absmax, st2.state2) + st2.offset).numpy().astype(F32)
            cuda_codes, cuda_absmax2 = cuda_quantize8(dyn, (bnb_absmax - offset).astype(F32))
            out += struct.pack("<f", offset) + codes.tobytes() + absmax2.astype("<f4").tobytes()
            out += scales.astype("<f4").tobytes() + cuda_codes.tobytes() + cuda_absmax2.astype("<f4").tobytes()
            summary += f"; 8-bit codes differing: {int((codes != cuda_codes).sum())}/{codes.size}"
        print(summary)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    print(f"wrote {path} ({len(out)} bytes) with bitsandbytes {bitsandbytes.__version__}, "
          f"torch {torch.__version__}, numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
