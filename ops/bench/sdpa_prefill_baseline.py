#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the prefill shapes of attention_prefill_bench_cuda
(B 1, Hq 32, Hkv 8, D 128, fp16, S = T, is_causal=True, enable_gqa=True), timed the same way:
CUDA events around back-to-back calls after a warm-up. TFLOP/s counts the causal computation as
4 * D * Hq * S(S+1)/2 flops.

    python3 sdpa_prefill_baseline.py [--contexts 8192,32768,131072] [--steps 3] [--csv FILE]

--csv appends device,batch,context,method,ms,tflops rows.
"""
import argparse
import os

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, HEAD_SIZE = 32, 8, 128


def time_calls(call, steps):
    call()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        call()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", default="8192,32768,131072")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--csv")
    args = parser.parse_args()
    csv = None
    if args.csv:
        fresh = not os.path.exists(args.csv)
        csv = open(args.csv, "a")
        if fresh:
            csv.write("device,batch,context,method,ms,tflops\n")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}: SDPA causal prefill, fp16, "
          f"B=1 Hq={HEADS} Hkv={KV_HEADS} D={HEAD_SIZE}, S=T")
    for context in (int(c) for c in args.contexts.split(",")):
        q = torch.randn(1, HEADS, context, HEAD_SIZE, device="cuda", dtype=torch.float16)
        k = torch.randn(1, KV_HEADS, context, HEAD_SIZE, device="cuda", dtype=torch.float16)
        v = torch.rand(1, KV_HEADS, context, HEAD_SIZE, device="cuda", dtype=torch.float16) * 2 - 1
        steps = max(1, args.steps // 2) if context >= 65536 else args.steps * (10 if context <= 8192 else 1)
        flops = 4.0 * HEAD_SIZE * HEADS * context * (context + 1) / 2
        for label, call in (
                ("sdpa-gqa", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)),
                ("sdpa-expanded", lambda: F.scaled_dot_product_attention(
                    q, k.repeat_interleave(HEADS // KV_HEADS, 1), v.repeat_interleave(HEADS // KV_HEADS, 1),
                    is_causal=True))):
            try:
                ms = time_calls(call, steps)
            except RuntimeError as error:  # e.g. a backend without GQA
                print(f"{context:>8}  {label:<14} failed: {error}")
                continue
            print(f"{context:>8}  {label:<14} {ms:10.3f} ms {flops / (ms * 1e-3) / 1e12:8.1f} TFLOP/s", flush=True)
            if csv:
                csv.write(f"{torch.cuda.get_device_name()},1,{context},{label},{ms:.4f},{flops / (ms * 1e-3) / 1e12:.1f}\n")
                csv.flush()
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
