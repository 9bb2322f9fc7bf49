"""Reused-photo detection on Fashion-MNIST photos: precision and recall against sha256.

Photos: Fashion-MNIST test images upscaled to 224 px ("as photos"). Earlier uploads: a gallery
of them in the vector index, as the project's history. Queries, as new uploads:
  - positives: an edited copy of a gallery photo (re-encoded, resized, cropped up to 20 %,
    tinted, slightly rotated, padded like a screenshot; and apart, as a harder set, three of
    these combined);
  - hard negatives: a different photo of a class the gallery holds (Fashion-MNIST's classes are
    uniform, so same-class photos look alike: the test of precision).
Every query goes through the service's own steps: embedding (ml.inference), perceptual hashes
(ml.perceptual_hash), the usearch index (ml.vector_index), the rule and its calibration
(ml.reuse). The thresholds are calibrated on one split (copies of one half of the gallery, half
the negatives) and reported on the other. The baseline is the sha256 de-duplication that ingest
does today: a copy is caught only if its bytes are identical.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/duplicates.py \\
        [--checkpoint DIR]   # also measure the fine-tuned model's embedding space

The headline is the ImageNet space: the service looks for reused photos in its photo space
(the ImageNet backbone's vectors, whatever the model; labeling.embeddings.spaces). A
fine-tuned model's space is measured beside it for comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml import reuse  # noqa: E402
from ml.fashion_mnist import load_split  # noqa: E402
from ml.inference import Predictor  # noqa: E402
from ml.perceptual_hash import HashTable, hash_distance  # noqa: E402
from ml.reuse_verify import batch_signatures, match_scores  # noqa: E402
from ml.vector_index import VectorIndex  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "duplicates.json"
PHOTO_SIZE = 224
CANDIDATES = 10  # nearest neighbours the service looks at per new photo (REUSE_CANDIDATES)
SETTINGS_SWEPT = (0.001, 0.002, 0.005, 0.01)  # false-match bounds also reported


def min_queries(max_false_match: float, confidence: float = 0.95) -> int:
    """Calibration queries needed, all without a false match, before the Clopper-Pearson bound
    can prove ``max_false_match``: with fewer, calibration flags nothing (recall 0)."""
    return int(np.ceil(np.log(1 - confidence) / np.log(1 - max_false_match)))


def as_photo(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).resize((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.BICUBIC)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def embed(predictor: Predictor, sources: list[bytes]) -> tuple[np.ndarray, np.ndarray, list]:
    result = predictor.predict_and_embed(sources, batch_size=128)
    hashes, prints, errors = batch_signatures(sources)
    if result.errors or errors:
        raise RuntimeError(f"unreadable benchmark images: {result.errors or errors}")
    return result.embeddings, hashes, prints


def evidence(
    index: VectorIndex,
    table: HashTable,
    gallery_vectors: np.ndarray,
    gallery_hashes: np.ndarray,
    vectors: np.ndarray,
    hashes: np.ndarray,
    originals: np.ndarray,
    gallery_prints: list[bytes],
    prints: list[bytes],
    candidates: int = CANDIDATES,
) -> reuse.Evidence:
    """As the service (labeling.embeddings.reuse.reuse_check): candidates are the index's
    nearest neighbours plus the closest hash among all earlier photos; each candidate is
    scored by its exact cosine similarity, hash distance and alignment score."""
    keys, _ = index.search(vectors, candidates)
    hash_keys = np.array([table.nearest(h)[0] for h in hashes])
    keys = np.concatenate([keys, hash_keys[:, None]], axis=1)
    safe = np.maximum(keys, 0)
    similarity = np.einsum("qd,qkd->qk", vectors, gallery_vectors[safe])
    similarity = np.where(keys >= 0, similarity, -1.0)
    dist = hash_distance(hashes[:, None, :], gallery_hashes[safe])
    dist = np.where(keys >= 0, dist, 999)
    aligned = np.full(keys.shape, -1.0)
    for q, row in enumerate(keys):
        kept = [j for j, key in enumerate(row) if key >= 0]
        aligned[q, kept] = match_scores(prints[q], [gallery_prints[row[j]] for j in kept])
    rows = np.arange(len(keys))
    by_sim, by_hash, by_aligned = similarity.argmax(1), dist.argmin(1), aligned.argmax(1)
    return reuse.Evidence(
        similarity=similarity[rows, by_sim],
        hash_distance=dist[rows, by_hash],
        similar_is_original=keys[rows, by_sim] == originals,
        hashed_is_original=keys[rows, by_hash] == originals,
        aligned=aligned[rows, by_aligned],
        aligned_is_original=keys[rows, by_aligned] == originals,
    )


def step_costs(predictor: Predictor, sources: list[bytes], candidates: int = CANDIDATES) -> dict:
    """Milliseconds per image of what the embedding step adds to a prediction batch: the
    features from the same forward pass (predict_and_embed against predict) and the hashes."""
    sources = sources[:512]
    t = time.perf_counter()
    predictor.predict(sources, batch_size=64)
    plain = time.perf_counter() - t
    t = time.perf_counter()
    predictor.predict_and_embed(sources, batch_size=64)
    both = time.perf_counter() - t
    t = time.perf_counter()
    _, prints, _ = batch_signatures(sources)
    hashing = time.perf_counter() - t
    # The alignment check of one new photo against the service's candidates (its nearest
    # neighbours plus the closest hash): here the next photos stand in for them.
    t = time.perf_counter()
    checked = prints[: len(prints) // 4]
    for i, query in enumerate(checked):
        match_scores(query, [prints[(i + j) % len(prints)] for j in range(1, candidates + 2)])
    aligning = time.perf_counter() - t
    per = 1000 / len(sources)
    return {
        "predict_ms_per_image": round(plain * per, 2),
        "predict_and_embed_ms_per_image": round(both * per, 2),
        "hashes_and_fingerprint_ms_per_image": round(hashing * per, 2),
        "alignment_ms_per_image": round(aligning * 1000 / len(checked), 2),
        "alignment_candidates": candidates + 1,
        "images": len(sources),
    }


def measure_space(name: str, predictor: Predictor, data: dict, args) -> dict:
    costs = step_costs(predictor, data["queries"], args.candidates)
    started = time.perf_counter()
    gallery_vectors, gallery_hashes, gallery_prints = embed(predictor, data["gallery"])
    query_vectors, query_hashes, query_prints = embed(predictor, data["queries"])
    embed_s = time.perf_counter() - started
    index = VectorIndex(gallery_vectors.shape[1])
    index.add(np.arange(len(gallery_vectors)), gallery_vectors)
    table = HashTable()
    table.add(np.arange(len(gallery_hashes)), gallery_hashes)
    ev = evidence(
        index,
        table,
        gallery_vectors,
        gallery_hashes,
        query_vectors,
        query_hashes,
        data["originals"],
        gallery_prints,
        query_prints,
        args.candidates,
    )
    is_copy, split, all_kinds = data["is_copy"], data["split"], data["kinds"]
    # The edits (one at a time) are the positives that calibrate and the headline;
    # three edits combined are reported apart, as a harder set nobody calibrated for.
    listed = all_kinds != "combined"
    calibration_part = (split == 0) & listed

    def calibrated(max_false_match: float) -> reuse.Calibration:
        return reuse.calibrate(
            ev.subset(calibration_part),
            is_copy[calibration_part],
            max_false_match=max_false_match,
        )

    cal = calibrated(args.max_false_match)
    t = cal.thresholds
    if t == reuse.NEVER:
        print(
            f"{name}: calibration proved no thresholds: {cal.queries} calibration queries, at"
            f" least {min_queries(args.max_false_match)} without a false match are needed to"
            f" bound the false-match rate at {args.max_false_match} with 95 % confidence",
            file=sys.stderr,
        )

    def score(mask: np.ndarray) -> dict:
        part = ev.subset(mask)
        copies, kinds = is_copy[mask], all_kinds[mask]
        true, false = reuse.outcome(part, t)
        flagged, _ = reuse.decide(part, t)
        found = reuse.names_original(part, t)
        return {
            "precision": round(true / (true + false), 4) if true + false else None,
            "recall": round(true / int(copies.sum()), 4),
            "false_matches": false,
            "negatives_flagged": int(flagged[~copies].sum()),
            "recall_by_edit": {
                kind: round(float(found[copies & (kinds == kind)].mean()), 4)
                for kind in sorted(set(kinds[copies].tolist()))
            },
            "copies_with_original_nearest": round(
                float(part.similar_is_original[copies].mean()), 4
            ),
            "negative_similarity_quantiles": {
                q: round(float(np.quantile(part.similarity[~copies], q)), 4)
                for q in (0.5, 0.99, 1.0)
            },
            "copies_with_original_best_aligned": round(
                float(part.aligned_is_original[copies].mean()), 4
            ),
            "negative_alignment_quantiles": {
                q: round(float(np.quantile(part.aligned[~copies], q)), 4) for q in (0.5, 0.99, 1.0)
            },
            "copy_alignment_quantiles": {
                q: round(float(np.quantile(part.aligned[copies], q)), 4) for q in (0.01, 0.05, 0.5)
            },
        }

    # The false-match bound is a product setting (the service's REUSE_MAX_FALSE_MATCH): what
    # the same evidence gives at other settings, each calibrated on the calibration split.
    reported = (split == 1) & listed
    by_setting = {}
    for m in sorted({args.max_false_match, *SETTINGS_SWEPT}):
        other = calibrated(m).thresholds
        true, false = reuse.outcome(ev.subset(reported), other)
        by_setting[str(m)] = {
            "thresholds": other.as_dict(),
            "precision": round(true / (true + false), 4) if true + false else None,
            "recall": round(true / int(is_copy[reported].sum()), 4),
            "false_matches": false,
        }
    return {
        "space": name,
        "embedding_dim": int(gallery_vectors.shape[1]),
        **score(reported),
        "with_combined_edits": score(split == 1),
        "thresholds": t.as_dict(),
        "calibration": cal.as_dict(),
        "calibration_proved_bound": t != reuse.NEVER,
        "by_max_false_match": by_setting,
        "step_costs": costs,
        "embed_seconds": round(embed_s, 1),
    }


def build_queries(args) -> dict:
    rng = np.random.default_rng(args.seed)
    images, labels = load_split("test")
    order = rng.permutation(len(images))
    gallery_idx = order[: args.gallery]
    negative_idx = order[args.gallery : args.gallery + args.negatives]
    gallery_photos = [as_photo(images[i]) for i in gallery_idx]
    queries, originals, kinds, split = [], [], [], []
    half = args.gallery // 2
    for part in (0, 1):  # copies of the first half calibrate, of the second half are reported
        for kind in reuse.ALL_EDITS:
            for _ in range(args.copies_per_edit):
                g = int(rng.integers(part * half, (part + 1) * half))
                copy, _ = reuse.reused_copy(gallery_photos[g], rng, kind)
                queries.append(png(copy) if kind != "reencode" else _jpeg_bytes(copy))
                originals.append(g)
                kinds.append(kind)
                split.append(part)
    for n, i in enumerate(negative_idx):
        queries.append(png(as_photo(images[i])))
        originals.append(-1)
        kinds.append("negative")
        split.append(n % 2)
    gallery = [png(p) for p in gallery_photos]
    gallery_sha = {hashlib.sha256(g).hexdigest() for g in gallery}
    is_copy = np.array(originals) >= 0
    sha_found = np.array([hashlib.sha256(q).hexdigest() in gallery_sha for q in queries])
    return {
        "gallery": gallery,
        "queries": queries,
        "originals": np.array(originals),
        "kinds": np.array(kinds),
        "split": np.array(split),
        "is_copy": is_copy,
        "sha_found": sha_found,
        "classes_in_gallery": sorted(set(labels[gallery_idx].tolist())),
        "negative_classes_in_gallery": bool(
            set(labels[negative_idx].tolist()) <= set(labels[gallery_idx].tolist())
        ),
    }


def _jpeg_bytes(image: Image.Image) -> bytes:
    # A re-encoded copy is uploaded as the JPEG it is, not re-wrapped in a PNG.
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery", type=int, default=3000)
    parser.add_argument("--copies-per-edit", type=int, default=150)
    parser.add_argument("--negatives", type=int, default=3000)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--checkpoint", help="a trained checkpoint: also measure its space")
    parser.add_argument(
        "--candidates", type=int, default=CANDIDATES, help="nearest neighbours per new photo"
    )
    parser.add_argument(
        "--skip-imagenet", action="store_true", help="with --checkpoint: only the model's space"
    )
    parser.add_argument("--max-false-match", type=float, default=reuse.DEFAULT_MAX_FALSE_MATCH)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    load_before = os.getloadavg()
    data = build_queries(args)
    test_copies = data["is_copy"] & (data["split"] == 1) & (data["kinds"] != "combined")
    baseline_recall = float(data["sha_found"][test_copies].mean())
    spaces = {}
    if not (args.skip_imagenet and args.checkpoint):
        spaces["imagenet"] = measure_space(
            "imagenet",
            Predictor.imagenet(
                input_size=args.input_size, num_threads=args.threads, resize_mode="pad"
            ),
            data,
            args,
        )
    if args.checkpoint:
        spaces["model"] = measure_space(
            "model", Predictor.load(args.checkpoint, num_threads=args.threads), data, args
        )
    # What the service does: reuse is looked for in the photo space (ImageNet) with or without
    # a model; the fine-tuned space is the comparison that shows why.
    headline = spaces.get("imagenet") or spaces["model"]
    result = {
        "precision": headline["precision"],
        "recall": headline["recall"],
        "baseline_recall": round(baseline_recall, 4),
        "baseline_precision": 1.0,
        "headline_space": headline["space"],
        "goal": {"recall": 0.95, "precision": 0.99},
        "spaces": spaces,
        "setup": {
            "gallery": args.gallery,
            "copies_per_edit": args.copies_per_edit,
            "edits": list(reuse.ALL_EDITS),
            "negatives": args.negatives,
            "reported_copies": int(test_copies.sum()),
            "headline_edits": [k for k in reuse.ALL_EDITS if k != "combined"],
            "reported_negatives": int((~data["is_copy"] & (data["split"] == 1)).sum()),
            "negatives_share_gallery_classes": data["negative_classes_in_gallery"],
            "photo_size": PHOTO_SIZE,
            "input_size": args.input_size,
            "candidates": args.candidates,
            "max_false_match": args.max_false_match,
            "calibration_queries": int(
                ((data["split"] == 0) & (data["kinds"] != "combined")).sum()
            ),
            "min_calibration_queries_to_prove_bound": min_queries(args.max_false_match),
            "seed": args.seed,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "spaces"}, indent=2))
    for name, space in spaces.items():
        print(name, {k: space[k] for k in ("precision", "recall", "thresholds", "recall_by_edit")})


if __name__ == "__main__":
    main()
