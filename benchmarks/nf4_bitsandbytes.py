#!/usr/bin/env python3
"""bitsandbytes' NF4 functions on the CPU, timed on the shapes of benchmarks/nf4_cpu.cpp.

    python benchmarks/nf4_bitsandbytes.py [--shape ROWSxCOLS]... [--repeat N] [--threads T]

Prints JSON in the same units as ordo-bench-nf4-cpu (GB/s = bytes read + written / median
time), so the two can be compared: quantize_4bit (fp32 in, blocksize 64, no double
quantization), dequantize_4bit (fp32 out) and gemv_4bit at batch 1 (fp32). Prints
{"skipped": ...} when torch or bitsandbytes is missing.
"""

import argparse
import json
import sys
import time


def median_seconds(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    try:
        import torch
        import bitsandbytes
        import bitsandbytes.functional as F
    except ImportError as e:
        print(json.dumps({"benchmark": "nf4_bitsandbytes_cpu", "skipped": str(e)}))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shape] or [(4096, 4096), (11008, 4096)]
    out = {"benchmark": "nf4_bitsandbytes_cpu", "bitsandbytes": bitsandbytes.__version__,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "blocksize": 64, "shapes": []}
    torch.manual_seed(0)
    for rows, cols in shapes:
        n = rows * cols
        w = torch.randn(rows, cols) * 0.02
        x = torch.randn(1, cols)
        packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
        blocks = state.absmax.numel()
        figures = {}
        t = median_seconds(lambda: F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False),
                           args.repeat)
        figures["quantize_f32"] = {"seconds_median": t, "gbps": (4 * n + n / 2 + 4 * blocks) / t / 1e9}
        t = median_seconds(lambda: F.dequantize_4bit(packed, state), args.repeat)
        figures["dequantize_f32"] = {"seconds_median": t, "gbps": (n / 2 + 4 * blocks + 4 * n) / t / 1e9}
        t = median_seconds(lambda: bitsandbytes.matmul_4bit(x, packed.t(), quant_state=state), args.repeat)
        figures["gemv_nf4"] = {"seconds_median": t, "gbps": (n / 2 + 4 * blocks + 4 * cols + 4 * rows) / t / 1e9}
        out["shapes"].append({"rows": rows, "cols": cols, **figures})
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
