#!/usr/bin/env python3
"""Median time per kernel from `ncu --metrics gpu__time_duration.sum --csv --print-units base` output."""
import collections
import csv
import re
import sys

rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
header, rows = rows[0], rows[1:]
name, value = header.index("Kernel Name"), header.index("Metric Value")
times = collections.defaultdict(list)
for r in rows:
    kernel = re.search(r"(\w+)(<[^()]*>)?\(", r[name])  # the function's own name, without namespaces
    times[kernel.group(1) if kernel else r[name]].append(float(r[value].replace(",", "")) / 1e3)
for kernel, t in times.items():
    t.sort()
    print(f"{kernel:40s} calls {len(t):4d}  median {t[len(t) // 2]:9.2f} us  min {t[0]:9.2f} us")
