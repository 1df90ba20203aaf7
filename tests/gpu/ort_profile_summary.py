#!/usr/bin/env python3
"""Summarises ONNX Runtime profiles (written with ORTSPARSE_PROFILE=PREFIX): per trace, the mean time
of the last N session runs and, per operator and provider, the host time its kernels took in them
(on CUDA a kernel's host time is its launch, or a wait), plus any copy nodes.

    python3 tests/gpu/ort_profile_summary.py PREFIX [--last 15]
"""
import argparse
import collections
import glob
import json


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix")
    parser.add_argument("--last", type=int, default=15, help="runs to average over (the decode steps at the end)")
    args = parser.parse_args()
    for path in sorted(glob.glob(args.prefix + "*.json")):
        events = json.load(open(path))
        runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])
        if not runs:
            continue
        window = runs[-args.last:]
        start, end = window[0]["ts"], window[-1]["ts"] + window[-1]["dur"]
        time, count = collections.Counter(), collections.Counter()
        copies = collections.Counter()
        for e in events:
            if e.get("cat") != "Node" or not start <= e["ts"] <= end:
                continue
            if "emcpy" in e["name"]:
                copies[e["name"]] += 1
            if e["name"].endswith("_kernel_time"):
                key = f'{e.get("args", {}).get("op_name", "?")} ({e.get("args", {}).get("provider", "?")})'
                time[key] += e.get("dur", 0)
                count[key] += 1
        steps = len(window)
        print(f"{path}: last {steps} runs, {sum(r['dur'] for r in window) / steps / 1000:.3f} ms per run")
        for key, total in time.most_common(10):
            print(f"  {total / steps / 1000:8.3f} ms per run  {count[key] / steps:5.1f} kernels per run  {key}")
        print(f"  copy nodes: {dict(copies) or 'none'}")


if __name__ == "__main__":
    main()
