#!/usr/bin/env python3
"""bitsandbytes' NF4 CUDA kernels, timed like ordo-bench-nf4-cuda, and the ratios between them.

    python benchmarks/nf4_bitsandbytes_cuda.py [--shape ROWSxCOLS]... [--repeat N]
                                               [--working-set-mib M] [--ordo ORDO_JSON]

Times, on the same shapes and in the same units as ordo-bench-nf4-cuda (GB/s = bytes read +
written / median time per call, CUDA events, cycling through enough copies of the buffers to
exceed the working set so that the figures are HBM figures): quantize_4bit (fp32 in, blocksize
64, no double quantization), dequantize_4bit to fp32 and to bf16, and gemv_4bit at batch 1
(fp32 activations: the inference kernel bitsandbytes uses for one token). With --ordo (the JSON
that ordo-bench-nf4-cuda printed in the same session on the same device) it adds ordo / bitsandbytes
throughput ratios per shape. Prints {"skipped": ...} without CUDA or bitsandbytes.
"""

import argparse
import copy
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--working-set-mib", type=int, default=1024)
    ap.add_argument("--ordo", help="ordo-bench-nf4-cuda's JSON output, for the ratios")
    args = ap.parse_args()
    try:
        import torch
        import bitsandbytes
        import bitsandbytes.functional as F
    except ImportError as e:
        print(json.dumps({"benchmark": "nf4_bitsandbytes_cuda", "skipped": str(e)}))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "nf4_bitsandbytes_cuda", "skipped": "no CUDA device"}))
        return 0
    dev = torch.device("cuda")
    working_set = args.working_set_mib << 20
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shape] or [(4096, 4096), (11008, 4096)]

    def per_call(fn, copies):
        fn(0)
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(args.repeat):
            start.record()
            for c in range(copies):
                fn(c)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3 / copies)
        times.sort()
        return times[len(times) // 2]

    out = {"benchmark": "nf4_bitsandbytes_cuda", "bitsandbytes": bitsandbytes.__version__,
           "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "blocksize": 64, "shapes": []}
    for rows, cols in shapes:
        n, bs = rows * cols, 64
        blocks, packed = -(-n // bs), (n + 1) // 2
        g = torch.Generator(device=dev).manual_seed(rows * 7 + cols)
        w = torch.randn(rows, cols, device=dev, generator=g) * 0.02
        x = torch.randn(1, cols, device=dev, generator=g)
        q_bytes = 4.0 * n + packed + 4.0 * blocks
        d_bytes = packed + 4.0 * blocks + 4.0 * n
        d16_bytes = packed + 4.0 * blocks + 2.0 * n
        g_bytes = packed + 4.0 * blocks + 4.0 * cols + 4.0 * rows
        g_copies = max(2, -(-working_set // int(g_bytes)))
        d_copies = min(g_copies, max(2, -(-working_set // int(d_bytes))))
        qs = [F.quantize_4bit(w, blocksize=bs, quant_type="nf4", compress_statistics=False) for _ in range(g_copies)]
        out32 = torch.empty(rows, cols, device=dev, dtype=torch.float32)
        out16 = torch.empty(rows, cols, device=dev, dtype=torch.bfloat16)
        tq = per_call(lambda c: F.quantize_4bit(w, blocksize=bs, quant_type="nf4", compress_statistics=False), 1)
        td = per_call(lambda c: F.dequantize_4bit(qs[c][0], qs[c][1], out=out32), d_copies)
        states16 = []
        for _, st in qs[:d_copies]:
            st16 = copy.copy(st)
            st16.dtype = torch.bfloat16  # same bytes and absmax, bf16 output
            states16.append(st16)
        td16 = per_call(lambda c: F.dequantize_4bit(qs[c][0], states16[c], out=out16), d_copies)
        # gemv_4bit wants the weight as [rows*cols/2, 1] with the state's shape (rows, cols); it
        # computes x @ W^T for one row of x.
        y = F.gemv_4bit(x, qs[0][0].t(), state=qs[0][1])
        ref = x @ F.dequantize_4bit(qs[0][0], qs[0][1]).t()
        assert torch.allclose(y, ref, rtol=1e-3, atol=1e-3), "gemv_4bit disagrees with dequantize + matmul"
        tg = per_call(lambda c: F.gemv_4bit(x, qs[c][0].t(), state=qs[c][1]), g_copies)
        out["shapes"].append({"rows": rows, "cols": cols,
                              "quantize_f32_gbps": round(q_bytes / tq / 1e9, 1),
                              "dequantize_f32_gbps": round(d_bytes / td / 1e9, 1),
                              "dequantize_bf16_gbps": round(d16_bytes / td16 / 1e9, 1),
                              "gemv_gbps": round(g_bytes / tg / 1e9, 1), "gemv_seconds": tg})
        del qs
        torch.cuda.empty_cache()

    if args.ordo:
        ordo = json.load(open(args.ordo))
        if "shapes" in ordo:
            out["ordo_device"] = ordo.get("device")
            out["copy_gbps_ordo_run"] = ordo.get("copy_gbps")
            for s in out["shapes"]:
                o = next((t for t in ordo["shapes"] if t["rows"] == s["rows"] and t["cols"] == s["cols"]), None)
                if o:
                    s["ordo_over_bitsandbytes"] = {
                        k: round(o[k] / s[k], 3) for k in
                        ("quantize_f32_gbps", "dequantize_f32_gbps", "dequantize_bf16_gbps", "gemv_gbps")}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
