#!/usr/bin/env python3
"""Checks fixtures/nf4_bitsandbytes.bin against bitsandbytes' CUDA kernels on a GPU.

The fixture's "cuda" columns (packed bytes, absmax, 8-bit absmax codes and second-level absmax)
come from a numpy model of bitsandbytes' CUDA rule, written on a machine without a GPU
(make_nf4_fixtures.py). ordo's CPU path (ZeroBlocks::cuda) and ordo's CUDA kernels are tested
against those columns (nf4_fixture_test, nf4_cuda_test). This script closes the loop: it runs
bitsandbytes itself on a CUDA device over every case of the fixture and compares

  - quantize_4bit(nf4) packed bytes and absmax          with the cuda columns,
  - quantize_blockwise(absmax - offset, 256) codes/absmax2 (given the fixture's offset)
                                                         with the cuda 8-bit columns,
  - quantize_blockwise on the 8-bit tie values           with the fixture's cuda tie codes,
  - dequantize_4bit of bitsandbytes' own (CPU) bytes     with the fixture's dequantized values,
  - the offset bitsandbytes computes on the GPU          with the CPU's (reported, not required).

    python tests/quant/check_nf4_fixture_cuda.py [--fixture PATH] [--json OUT]

Needs torch with CUDA and bitsandbytes. The 4-bit columns model the exact arithmetic; bitsandbytes'
kernels are built with --use_fast_math, so their bytes differ where x * (1/absmax) lies within an
ulp of a threshold or subnormals are flushed (cases tail_divide_* and magnitudes_* here; the exact
bytes bitsandbytes gives are in fixtures/nf4_bitsandbytes_cuda.bin, made by
make_nf4_cuda_fixture.py, and ordo's Arithmetic::fast_math reproduces them). Those differences are
reported, not failed. Exit status 0 when the dequantized values, the 8-bit statistics and every
other case agree, 1 otherwise, 77 when no CUDA device is available.
"""

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch

F32 = np.float32
TORCH_DTYPES = {0: torch.float32, 1: torch.float16, 2: torch.bfloat16}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def array(self, dtype, n):
        a = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos).copy()
        self.pos += a.nbytes
        return a


def read_fixture(path):
    r = Reader(Path(path).read_bytes())
    if r.array(np.uint8, 8).tobytes() != b"ORDONF4\0":
        raise SystemExit(f"{path}: not an ordo NF4 fixture")
    version, count = r.take("II")
    if version != 2:
        raise SystemExit(f"{path}: fixture version {version}, expected 2")
    fx = {"dynamic_map": r.array("<f4", 256), "nf4": r.array("<f4", 16)}
    m = r.take("I")
    fx["ties8"], fx["ties8_cuda"], fx["ties8_bnb"] = r.array("<f4", m), r.array(np.uint8, m), r.array(np.uint8, m)
    cases = []
    for _ in range(count):
        name = r.array(np.uint8, r.take("I")).tobytes().decode()
        dtype, n, bs, flags = r.take("IQII")
        blocks, nbytes = -(-n // bs), (n + 1) // 2
        k = {"name": name, "dtype": dtype, "n": n, "blocksize": bs, "nested": bool(flags & 1)}
        k["x"] = r.array("<f4", n) if dtype == 0 else r.array("<i2", n)
        k["bnb_packed"], k["bnb_absmax"] = r.array(np.uint8, nbytes), r.array("<f4", blocks)
        k["cuda_packed"], k["cuda_absmax"] = r.array(np.uint8, nbytes), r.array("<f4", blocks)
        k["bnb_dequant"] = r.array("<f4", n) if dtype == 0 else r.array("<i2", n)
        if k["nested"]:
            blocks2 = -(-blocks // 256)
            k["bnb_offset"] = F32(r.take("f"))
            k["bnb_codes"], k["bnb_absmax2"] = r.array(np.uint8, blocks), r.array("<f4", blocks2)
            k["bnb_scales"] = r.array("<f4", blocks)
            k["cuda_codes"], k["cuda_absmax2"] = r.array(np.uint8, blocks), r.array("<f4", blocks2)
        cases.append(k)
    if r.pos != len(r.data):
        raise SystemExit(f"{path}: trailing bytes")
    fx["cases"] = cases
    return fx


def as_tensor(raw, dtype):
    t = torch.from_numpy(raw.copy())
    return t if dtype == 0 else t.view(TORCH_DTYPES[dtype])


def same_f32(a, b):
    """Equal bits, any two NaNs equal."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    return a.shape == b.shape and bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", default=str(Path(__file__).parent / "fixtures" / "nf4_bitsandbytes.bin"))
    ap.add_argument("--json", help="write the per-case results here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 77
    import bitsandbytes
    import bitsandbytes.functional as F

    dev = torch.device("cuda")
    fx = read_fixture(args.fixture)
    code8 = torch.from_numpy(fx["dynamic_map"].copy()).to(dev)
    results = {"bitsandbytes": bitsandbytes.__version__, "torch": torch.__version__,
               "device": torch.cuda.get_device_name(0), "cases": []}
    ok = True

    ties_codes, _ = F.quantize_blockwise(torch.from_numpy(fx["ties8"].copy()).to(dev), code=code8, blocksize=256)
    ties_codes = ties_codes.cpu().numpy().astype(np.uint8)
    tie_diff = int((ties_codes != fx["ties8_cuda"]).sum())
    results["ties8"] = {"values": int(fx["ties8"].size), "codes_differing_from_cuda_rule": tie_diff,
                        "codes_differing_from_cpu_backend": int((ties_codes != fx["ties8_bnb"]).sum())}
    ok &= tie_diff == 0
    print(f"8-bit ties: {fx['ties8'].size} values, codes differing from the fixture's CUDA rule: {tie_diff}")

    for k in fx["cases"]:
        r = {"name": k["name"], "n": k["n"], "blocksize": k["blocksize"], "dtype": k["dtype"]}
        x = as_tensor(k["x"], k["dtype"]).to(dev)
        try:
            packed, st = F.quantize_4bit(x, blocksize=k["blocksize"], quant_type="nf4", compress_statistics=False)
        except (RuntimeError, ValueError, AssertionError) as e:  # a blocksize this build does not take
            r["unsupported"] = str(e).splitlines()[0][:200]
            results["cases"].append(r)
            print(f"{k['name']}: bitsandbytes CUDA refused it ({r['unsupported']})")
            continue
        packed = packed.flatten().cpu().numpy().astype(np.uint8)
        absmax = st.absmax.float().cpu().numpy()
        r["packed_bytes_differing"] = int((packed != k["cuda_packed"]).sum())
        r["absmax_equal"] = same_f32(absmax, k["cuda_absmax"])
        fast_math_case = k["name"].startswith(("tail_divide", "magnitudes"))
        r["fast_math_difference_expected"] = fast_math_case
        case_ok = fast_math_case or (r["packed_bytes_differing"] == 0 and r["absmax_equal"])

        out = torch.empty(k["n"], dtype=TORCH_DTYPES[k["dtype"]], device=dev)
        F.dequantize_4bit(torch.from_numpy(k["bnb_packed"].copy()).to(dev).view(-1, 1),
                          absmax=torch.from_numpy(k["bnb_absmax"].copy()).to(dev), out=out,
                          blocksize=k["blocksize"], quant_type="nf4")
        got = out.cpu()
        if k["dtype"] == 0:
            r["dequantized_equal"] = same_f32(got.numpy(), k["bnb_dequant"])
        else:
            r["dequantized_equal"] = bool(np.array_equal(got.view(torch.int16).numpy(), k["bnb_dequant"]))
        # dequantizing the same bytes is exact arithmetic in both (a product per value) except
        # where bitsandbytes flushes subnormal results (magnitudes_*)
        case_ok &= r["dequantized_equal"] or fast_math_case

        if k["nested"]:
            _, st2 = F.quantize_4bit(x, blocksize=k["blocksize"], quant_type="nf4", compress_statistics=True)
            r["gpu_offset_equals_cpu_offset"] = same_f32([st2.offset.item()], [k["bnb_offset"]])
            shifted = torch.from_numpy(k["bnb_absmax"].copy()).to(dev) - torch.tensor(k["bnb_offset"], device=dev)
            codes, s2 = F.quantize_blockwise(shifted, code=code8, blocksize=256)
            codes = codes.cpu().numpy().astype(np.uint8)
            r["codes_differing"] = int((codes != k["cuda_codes"]).sum())
            r["absmax2_equal"] = same_f32(s2.absmax.float().cpu().numpy(), k["cuda_absmax2"])
            case_ok &= (r["codes_differing"] == 0 and r["absmax2_equal"]) or fast_math_case
        r["ok"] = bool(case_ok)
        ok &= case_ok
        results["cases"].append(r)
        print(json.dumps(r))

    results["ok"] = bool(ok)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    expected = [c["name"] for c in results["cases"] if c.get("fast_math_difference_expected")]
    print(f"every comparison holds (fast-math differences in {', '.join(expected)} are expected)"
          if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
