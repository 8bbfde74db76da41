"""The peer of rank.bench.ts: NumPy ranking the same layer's channels (as MMEngine's draw_featmap
and keract do: per-channel statistics, then argsort), and cutting pages of 16 channels min-max
scaled to 8 bits. Prints one JSON line. Usage: rank_peer.py LAYER.npy RUNS"""
import json
import sys
import time

import numpy as np


def summary(values):
    values = sorted(values)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return {"min": round(values[0], 2), "median": round(median, 2), "max": round(values[-1], 2), "n": n}


def main():
    layer = np.load(sys.argv[1])  # H×W×C float32
    runs = int(sys.argv[2])
    rank, pages = [], []
    for _ in range(runs + 1):
        fresh = layer.copy()  # nothing cached between runs
        t = time.perf_counter()
        flat = fresh.reshape(-1, fresh.shape[-1])
        stats = {
            "min": flat.min(axis=0),
            "max": flat.max(axis=0),
            "mean": flat.mean(axis=0),
            "std": flat.std(axis=0),
            "active": (flat > 0).mean(axis=0),
        }
        order = np.argsort(-stats["max"], kind="stable")
        rank_ms = (time.perf_counter() - t) * 1000
        page_times = []
        for p in range(0, len(order), 16):
            started = time.perf_counter()
            chosen = fresh[:, :, order[p : p + 16]]
            lo = chosen.min(axis=(0, 1))
            span = chosen.max(axis=(0, 1)) - lo
            np.round((chosen - lo) * np.where(span > 0, 255 / np.where(span > 0, span, 1), 0)).astype(np.uint8)
            page_times.append((time.perf_counter() - started) * 1000)
        rank.append(rank_ms)
        pages.extend(page_times)
    print(json.dumps({"numpy": np.__version__, "rankMs": summary(rank[1:]), "pageMs": summary(pages[len(pages) // (runs + 1):])}))


main()
