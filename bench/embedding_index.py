"""The vector index at 1,000,000 images: insert rate, query latency (p50/p95/p99), memory, file
size, reopening time, and recall of near-duplicates; plus the exhaustive perceptual-hash scan
the reuse check runs per new image.

Vectors are synthetic but shaped like the service's: 1,280 dimensions (EfficientNet-Lite0's
penultimate features), L2-normalised, clustered (1,000 centres, as images cluster by product),
added in batches of 10,000 as a worker would over time. Queries are perturbed copies of indexed
vectors (a reused photo's embedding is near, not equal to, its original's), searched one at a
time as the reuse check and the similar-image page do.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/embedding_index.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.perceptual_hash import HashTable  # noqa: E402
from ml.vector_index import (  # noqa: E402
    CONNECTIVITY,
    DEFAULT_DTYPE,
    EXPANSION_ADD,
    EXPANSION_SEARCH,
    VectorIndex,
)

RESULTS = Path(__file__).resolve().parent / "results" / "embedding_index.json"
GOAL_VECTORS = 1_000_000  # the size: what one project's index must hold


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def batches(n: int, dim: int, batch: int, seed: int, centres: np.ndarray):
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        which = rng.integers(0, len(centres), size)
        # Each vector: its centre plus noise of about the same length (cosine ~0.7 to its
        # centre), so neighbours are close but not trivially so.
        noise = rng.standard_normal((size, dim)).astype(np.float32) / np.sqrt(dim)
        x = centres[which] + noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield start, x.astype(np.float32)


def extrapolate(progress: list[dict], file_mb: float) -> dict:
    """What the measured curve says about GOAL_VECTORS, clearly an estimate, not a measurement.

    Insert: an HNSW insert walks O(log n) layers, so seconds per vector are fitted as
    a + b·ln(n) over the batches after the first (the first one is warm-up) and summed up to
    the goal. Memory: a quantised vector and about M edges per vector, so linear in n; the last
    measured figure per vector is scaled (it includes the fixed part, so it errs high), and the
    saved file's size beside it."""
    rows = progress[1:] if len(progress) > 2 else progress
    n = np.array([r["vectors"] for r in rows], dtype=float)
    per_vector = np.array([1 / r["batch_insert_per_s"] for r in rows])
    b, a = np.polyfit(np.log(n), per_vector, 1) if len(rows) > 1 else (0.0, per_vector[0])
    grid = np.linspace(progress[-1]["vectors"], GOAL_VECTORS, 200)
    more_s = float(np.trapezoid(a + b * np.log(grid), grid))
    measured_s = sum(
        (r["vectors"] - (progress[i - 1]["vectors"] if i else 0)) / r["batch_insert_per_s"]
        for i, r in enumerate(progress)
    )
    last = progress[-1]
    scale = GOAL_VECTORS / last["vectors"]
    return {
        "vectors": GOAL_VECTORS,
        "insert_seconds": round(measured_s + more_s),
        "insert_per_s_at_goal": round(1 / (a + b * np.log(GOAL_VECTORS))),
        "index_memory_mb": round(last["index_memory_mb"] * scale),
        "file_mb": round(file_mb * scale),
        "method": "seconds per vector fitted as a + b*ln(n) over the measured batches; "
        "memory and file size scaled linearly from the measured size",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--max-insert-seconds",
        type=float,
        help="stop adding batches once inserting has taken this long (the largest index that "
        "fits a time budget); the figures are then those of the index as built",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((1000, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    rss_start = rss_mb()
    index = VectorIndex(args.dim)
    table = HashTable()
    # The query originals: a uniform sample of whatever was inserted (bottom-k of a random
    # priority per vector), so a run cut short by --max-insert-seconds still queries its index.
    query_ids = np.zeros(0, dtype=np.int64)
    originals = np.zeros((0, args.dim), dtype=np.float32)
    priorities = np.zeros(0)
    insert_s = 0.0
    progress = []
    stopped_early = False
    for start, x in batches(args.n, args.dim, args.batch, args.seed + 1, centres):
        keys = np.arange(start, start + len(x))
        t = time.perf_counter()
        index.add(keys, x, threads=args.threads)
        batch_s = time.perf_counter() - t
        insert_s += batch_s
        table.add(keys, rng.integers(-(2**63), 2**63 - 1, size=(len(x), 2), dtype=np.int64))
        u = np.concatenate([priorities, rng.random(len(x))])
        keep = np.argsort(u)[: args.queries]
        pooled_ids = np.concatenate([query_ids, keys])
        priorities, query_ids = u[keep], pooled_ids[keep]
        pooled = np.concatenate([originals, x])
        originals = pooled[keep]
        # Every batch: the rate of this batch as the index grows (HNSW inserts slow down with
        # size; the curve is what an extrapolation to a larger index rests on).
        progress.append(
            {
                "vectors": start + len(x),
                "batch_insert_per_s": round(len(x) / batch_s),
                "insert_per_s": round((start + len(x)) / insert_s),
                "index_memory_mb": round(index.memory_bytes / 2**20, 1),
                "load_1min": round(os.getloadavg()[0], 2),
            }
        )
        print(progress[-1], flush=True)
        if args.max_insert_seconds and insert_s >= args.max_insert_seconds:
            stopped_early = start + len(x) < args.n
            break
    inserted = len(index)
    rss_built = rss_mb()

    noise = rng.standard_normal(originals.shape).astype(np.float32)
    queries = originals + 0.25 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def timed_search(ix: VectorIndex) -> tuple[np.ndarray, float]:
        latencies, hits = [], 0
        for q, truth in zip(queries, query_ids, strict=True):
            t = time.perf_counter()
            keys, _ = ix.search(q[None], args.k)
            latencies.append(time.perf_counter() - t)
            hits += int(keys[0, 0] == truth)
        return np.array(latencies) * 1000, hits / len(queries)

    latencies, recall = timed_search(index)
    # Is a miss the index's or the data's? The exact nearest neighbour of each query over the
    # same vectors (regenerated from the seed): where it is not the original either, no index
    # could find the original first.
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    exact = np.full(len(queries), -1, dtype=np.int64)
    for start, x in batches(inserted, args.dim, args.batch, args.seed + 1, centres):
        scores = queries @ x.T
        top = scores.argmax(axis=1)
        better = scores[np.arange(len(queries)), top] > best
        best[better] = scores[np.arange(len(queries)), top][better]
        exact[better] = start + top[better]
    exact_recall = float((exact == query_ids).mean())
    found_first = np.array([index.search(q[None], 1)[0][0, 0] for q in queries])
    agrees = float((found_first == exact).mean())
    # Search effort against recall: the same index at larger ef (query time only).
    sweep = []
    for ef in (96, 256, 512, 1024):
        index.index.expansion_search = ef
        swept_latencies, swept_recall = timed_search(index)
        sweep.append(
            {
                "ef_search": ef,
                "recall_at_1": round(swept_recall, 4),
                "query_p95_ms": round(float(np.percentile(swept_latencies, 95)), 3),
            }
        )
        print(sweep[-1], flush=True)
    index.index.expansion_search = EXPANSION_SEARCH
    hash_latencies = []
    for h in table.hashes[query_ids[:200]]:
        t = time.perf_counter()
        table.nearest(h)
        hash_latencies.append((time.perf_counter() - t) * 1000)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space-1.usearch"
        t = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 2**20
        memory_mb = index.memory_bytes / 2**20
        del index
        rss_freed = rss_mb()
        t = time.perf_counter()
        viewed = VectorIndex.load(path, ndim=args.dim, view=True)
        view_s = time.perf_counter() - t
        view_latencies, view_recall = timed_search(viewed)
        rss_viewed = rss_mb()
        del viewed

    def pct(values: np.ndarray) -> dict:
        return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (50, 95, 99)}

    result = {
        "vectors": inserted,
        "vectors_planned": args.n,
        "stopped_by_max_insert_seconds": stopped_early,
        "dim": args.dim,
        "dtype": (
            f"{DEFAULT_DTYPE} (usearch HNSW, M={CONNECTIVITY}, ef_construction={EXPANSION_ADD},"
            f" ef_search={EXPANSION_SEARCH})"
        ),
        "insert_per_s": round(inserted / insert_s),
        "insert_seconds": round(insert_s, 1),
        "query_ms": pct(latencies),
        "query_p95_ms": round(float(np.percentile(latencies, 95)), 3),
        "recall_at_1": round(recall, 4),
        # The ceiling: queries whose exact nearest neighbour is their original.
        "exact_recall_at_1": round(exact_recall, 4),
        "index_top1_equals_exact_top1": round(agrees, 4),
        "ef_search_sweep": sweep,
        "viewed_query_ms": pct(view_latencies),
        "viewed_recall_at_1": round(view_recall, 4),
        "index_memory_mb": round(memory_mb, 1),
        "process_rss_mb": {
            "start": round(rss_start),
            "built": round(rss_built),
            "after_free": round(rss_freed),
            "viewed_and_searched": round(rss_viewed),
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "file_mb": round(size_mb, 1),
        "save_seconds": round(save_s, 1),
        "view_seconds": round(view_s, 3),
        "hash_scan_ms": pct(np.array(hash_latencies)),
        "insert_progress": progress,
        "goal_vectors": GOAL_VECTORS,
        "goal_measured": inserted >= GOAL_VECTORS,
        **(
            {}
            if inserted >= GOAL_VECTORS
            else {"extrapolated_to_goal": extrapolate(progress, size_mb)}
        ),
        "queries": len(query_ids),
        "k": args.k,
        "threads": args.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "insert_progress"}, indent=2))


if __name__ == "__main__":
    main()
