#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the decode shapes of attention_decode_bench_cuda
(Hq 32, Hkv 8, D 128, fp16, one query row, enable_gqa), timed the same way: CUDA events around
back-to-back calls after warm-up (median of 5 runs), and the same calls replayed from a CUDA graph.

    python3 sdpa_decode_baseline.py [--contexts 4096,...] [--batches 1,8] [--steps 50] [--csv FILE]

--csv appends device,batch,context,method,ms,bytes_read,recall,rel_error rows (the columns of
attention_decode_bench_cuda --csv; SDPA is exact: recall 1, error 0).
"""
import argparse
import os
import statistics

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, HEAD_SIZE = 32, 8, 128


def time_calls(call, steps):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(10):
        call()
    runs = []
    for _ in range(5):
        start.record()
        for _ in range(steps):
            call()
        stop.record()
        stop.synchronize()
        runs.append(start.elapsed_time(stop) / steps)
    direct = statistics.median(runs)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        call()  # warm-up on the capture stream
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(steps):
                call()
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    runs = []
    for _ in range(5):
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        runs.append(start.elapsed_time(stop) / steps)
    return direct, statistics.median(runs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", default="4096,16384,32768,65536,131072,262144,524288")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--csv")
    args = parser.parse_args()
    csv = None
    if args.csv:
        fresh = not os.path.exists(args.csv)
        csv = open(args.csv, "a")
        if fresh:
            csv.write("device,batch,context,method,ms,bytes_read,recall,rel_error\n")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}: SDPA decode, fp16, Hq={HEADS} Hkv={KV_HEADS} D={HEAD_SIZE}")
    print(f"{'batch':>5} {'context':>8} {'method':<10} {'ms':>10} {'graph ms':>10} {'MB read':>10} {'GB/s':>8}")
    for batch in (int(b) for b in args.batches.split(",")):
        for context in (int(c) for c in args.contexts.split(",")):
            q = torch.randn(batch, HEADS, 1, HEAD_SIZE, device="cuda", dtype=torch.float16)
            k = torch.randn(batch, KV_HEADS, context, HEAD_SIZE, device="cuda", dtype=torch.float16)
            v = torch.rand(batch, KV_HEADS, context, HEAD_SIZE, device="cuda", dtype=torch.float16) * 2 - 1
            direct, graph = time_calls(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), args.steps)
            read = 2 * k.numel() * k.element_size()
            print(f"{batch:>5} {context:>8} {'sdpa':<10} {direct:>10.4f} {graph:>10.4f} {read / 1e6:>10.1f} "
                  f"{read / (direct * 1e-3) / 1e9:>8.0f}", flush=True)
            if csv:
                csv.write(f"{torch.cuda.get_device_name()},{batch},{context},sdpa,{direct:.5f},{read},1,0\n")
                csv.flush()
            del q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
