#!/usr/bin/env python3
"""bitsandbytes' NF4 functions on the CPU, timed on the shapes of benchmarks/nf4_cpu.cpp.

    python benchmarks/nf4_bitsandbytes.py [--shape ROWSxCOLS]... [--repeat N] [--threads T]
                                          [--working-set-mib M] [--data-dir DIR]

ordo-bench-nf4-cpu --python PATH runs this script in the same run, on the same weights: it
writes w_<rows>x<cols>.f32 and x_<cols>.f32 (raw fp32) into --data-dir; without them the script
draws its own. Prints JSON in the same units as ordo-bench-nf4-cpu (GB/s = bytes read + written
/ median time per copy): quantize_4bit (fp32 in, blocksize 64, no double quantization),
dequantize_4bit (fp32 out) and matmul_4bit at batch 1 (fp32), each cycling through enough
copies of its buffers to exceed the working set, as ordo's benchmark does. Prints
{"skipped": ...} when torch or bitsandbytes is missing.
"""

import argparse
import json
import os
import sys
import time


def median_seconds(fn, repeat, copies):
    """Median over `repeat` passes of the time per copy; one pass calls fn(c) for every copy."""
    fn(0)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for c in range(copies):
            fn(c)
        times.append((time.perf_counter() - start) / copies)
    times.sort()
    return times[len(times) // 2]


def copies_for(bytes_per_copy, working_set):
    return max(2, -(-int(working_set) // int(bytes_per_copy)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--working-set-mib", type=int, default=256)
    ap.add_argument("--data-dir", default="")
    args = ap.parse_args()
    working_set = args.working_set_mib << 20
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
        wfile = os.path.join(args.data_dir, f"w_{rows}x{cols}.f32") if args.data_dir else ""
        xfile = os.path.join(args.data_dir, f"x_{cols}.f32") if args.data_dir else ""
        if wfile and os.path.exists(wfile):
            w = torch.from_file(wfile, size=n, dtype=torch.float32).reshape(rows, cols).clone()
            x = torch.from_file(xfile, size=cols, dtype=torch.float32).reshape(1, cols).clone()
        else:
            w = torch.randn(rows, cols) * 0.02
            x = torch.randn(1, cols)
        packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
        blocks = state.absmax.numel()
        figures = {}

        q_bytes = 4 * n + n / 2 + 4 * blocks
        inputs = [w.clone() for _ in range(copies_for(q_bytes, working_set))]
        t = median_seconds(lambda c: F.quantize_4bit(inputs[c], blocksize=64, quant_type="nf4",
                                                     compress_statistics=False), args.repeat, len(inputs))
        figures["quantize_f32"] = {"seconds_median": t, "gbps": q_bytes / t / 1e9, "copies": len(inputs)}
        del inputs

        d_bytes = n / 2 + 4 * blocks + 4 * n
        quantized = [F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=False)
                     for _ in range(copies_for(n / 2 + 4 * blocks, working_set))]
        d_copies = min(len(quantized), copies_for(d_bytes, working_set))
        t = median_seconds(lambda c: F.dequantize_4bit(*quantized[c]), args.repeat, d_copies)
        figures["dequantize_f32"] = {"seconds_median": t, "gbps": d_bytes / t / 1e9, "copies": d_copies}

        g_bytes = n / 2 + 4 * blocks + 4 * cols + 4 * rows
        with torch.no_grad():
            t = median_seconds(lambda c: bitsandbytes.matmul_4bit(x, quantized[c][0].t(), quant_state=quantized[c][1]),
                               args.repeat, len(quantized))
        figures["gemv_nf4"] = {"seconds_median": t, "gbps": g_bytes / t / 1e9, "copies": len(quantized)}
        del quantized
        out["shapes"].append({"rows": rows, "cols": cols, **figures})
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
