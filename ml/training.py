"""Fine-tuning with a small hyperparameter search, calibration and thresholds: ``train(config)``.

Called by a Celery task and a management command alike; everything it needs is in
:class:`TrainConfig` and everything it produces is in :class:`TrainResult` and the checkpoint
directory (``model.pt`` + ``config.json``, see :mod:`ml.checkpoint`).

Why it is fast enough on two CPU cores:

* Every image is decoded and resized once, in a streaming pass, and immediately pushed through
  the frozen trunk (stem + lower blocks, ImageNet weights, eval mode). Only the trunk's output is
  kept, as float16 for the training split (float32 for validation, so that validation logits, and
  therefore the temperature and thresholds, are exactly what inference computes).
* Trials that train fewer top blocks reuse that cache: their deeper cut is computed from it by
  running the extra frozen blocks once, never by decoding again.
* Each trial trains only the top blocks and the head from the cache, with AdamW, a cosine
  schedule, early stopping on the validation NLL after temperature scaling, and a time budget
  checked between epochs.
"""

from __future__ import annotations

import copy
import itertools
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from ml import backbone, calibration, thresholds
from ml.checkpoint import save_checkpoint
from ml.evaluation import evaluation_metrics
from ml.factory import DEFAULT_ARCHITECTURE, create_model, preprocess_config
from ml.feature_cache import build_cache, derive, extra_blocks, pick_views
from ml.preprocess import ImageSource, normalize
from ml.progress import ProgressCallback, ProgressReporter, TrainingProgress
from ml.shift import ShiftReference

__all__ = ["ProgressCallback", "TrainConfig", "TrainResult", "TrainingProgress", "train"]

Sample = tuple[ImageSource, int]


@dataclass
class TrainConfig:
    """Everything one training run needs. Only plain values end up in ``config.json``."""

    samples: Sequence[Sample]
    class_names: Sequence[str]
    output_dir: str | Path
    architecture: str = DEFAULT_ARCHITECTURE
    weights: str = "offline"  # see ml.factory.create_model
    # 96 px for 28 px Fashion-MNIST: see docs/ml.md for the measurement behind it. Real photos
    # would use more (e.g. 160-224) at a proportionally higher caching cost.
    input_size: int = 96
    resize_mode: str = "pad"
    # Held-out share per class, used for early stopping, the grid choice, temperature and
    # thresholds. ``validation_samples`` replaces the split with an explicit held-out set.
    val_fraction: float = 0.15
    validation_samples: Sequence[Sample] | None = None
    # Which validation samples the temperature and the per class map are fitted on (default:
    # all). A caller whose held-out set mixes a biased sample (images a model was unsure of)
    # with a random one fits on part of the random one, so the confidences the thresholds read
    # are calibrated for the images they will be applied to.
    calibration_mask: Sequence[bool] | None = None
    # The grid: trainable top blocks × epochs × learning rate, tried in that nesting order
    # (deepest cut first, so later depths are derived from the first cache).
    # The recipe bench/learning_curve.py measured (docs/ml.md): 8 blocks reach 94.6 % on 60,000
    # Fashion-MNIST labels and still fit a 10,000-label search in 10 minutes on 2 cores.
    trainable_blocks: Sequence[int] = (8,)
    epochs: Sequence[int] = (8,)
    learning_rates: Sequence[float] = (2e-3, 4e-3)
    batch_size: int = 128
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    drop_rate: float = 0.2
    patience: int = 2  # epochs without improvement before a trial stops
    # Wall-clock budget for the whole call (caching included). The first trial always completes
    # at least one epoch; later epochs and trials start only if they are expected to fit.
    time_budget_s: float = 600.0
    flip_augment: bool = False  # also cache mirrored training images and pick one per epoch
    # Photo augmentation (ml.augment): this many extra views of each training image (rescaled,
    # padded, cropped, tinted, blurred, rotated, re-encoded) are cached; each epoch trains on one
    # of them with probability ``augment_share``, otherwise on the image itself.
    augment_views: int = 0
    augment_share: float = 0.5
    target_precision: float = thresholds.DEFAULT_TARGET_PRECISION
    delta: float = thresholds.DEFAULT_DELTA
    min_support: int = thresholds.DEFAULT_MIN_SUPPORT
    seed: int = 0
    # Seeds the head's initialisation, the augmented views and the batch order, where ``seed``
    # still draws the train/validation split: members of an ensemble differ in the first and
    # share the second, so they are calibrated and compared on the same held-out items.
    # None: ``seed``.
    init_seed: int | None = None
    num_threads: int | None = 2
    max_cache_bytes: int = 6 << 30
    progress: ProgressCallback | None = None


@dataclass
class TrainResult:
    output_dir: Path
    config: dict  # as saved in config.json
    metrics: dict
    thresholds: list[float | None]
    temperature: float
    trials: list[dict]
    timings: dict
    skipped_samples: dict[int, str] = field(default_factory=dict)
    model: nn.Module | None = None  # the trained model (eval mode), same weights as model.pt
    # Validation logits (before temperature) and labels, for callers that study thresholds.
    val_logits: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    # The per class map after the temperature (ml.calibration), as saved in config.json.
    class_calibration: calibration.ClassCalibration | None = None


class TrainingError(RuntimeError):
    """Training cannot run with the given data or settings."""


# --- data -------------------------------------------------------------------------------------


def _init_seed(config: TrainConfig) -> int:
    return config.seed if config.init_seed is None else config.init_seed


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a ``val_fraction`` share (at least one if the class has two or more items)."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


# --- one trial --------------------------------------------------------------------------------


@torch.inference_mode()
def _logits(top: nn.Module, features: torch.Tensor, batch: int = 512) -> torch.Tensor:
    out = []
    for start in range(0, len(features), batch):
        x = features[start : start + batch].float().contiguous(memory_format=torch.channels_last)
        out.append(top(x).float())
    return torch.cat(out) if out else torch.empty((0, 0))


def _val_score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(calibrated NLL, temperature, accuracy): what a trial is judged by."""
    temperature = calibration.fit_temperature(logits, labels)
    return (
        calibration.nll(logits, labels, temperature),
        temperature,
        float((logits.argmax(1) == labels).mean()),
    )


def _lr_at(step: int, total: int, base_lr: float) -> float:
    # Short linear warm-up (the new head starts random) then cosine decay to zero.
    warmup = max(1, total // 20)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


# --- the public entry point -------------------------------------------------------------------


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune, search the grid, calibrate, pick thresholds and save a checkpoint."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _train(config, started, timings)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config: TrainConfig, started: float, timings: dict[str, float]) -> TrainResult:
    class_names = list(config.class_names)
    k = len(class_names)
    if k < 2:
        raise TrainingError("need at least two classes")
    samples = list(config.samples)
    labels = np.array([int(y) for _, y in samples], dtype=np.int64)
    if len(samples) == 0 or labels.min() < 0 or labels.max() >= k:
        raise TrainingError(f"labels must be class indices in 0..{k - 1}")
    if config.validation_samples is not None:
        val_samples = list(config.validation_samples)
        train_samples = samples
    else:
        train_idx, val_idx = stratified_split(labels, config.val_fraction, config.seed)
        train_samples = [samples[i] for i in train_idx]
        val_samples = [samples[i] for i in val_idx]
    if not val_samples:
        raise TrainingError("no validation items: add samples or raise val_fraction")
    if config.calibration_mask is not None and len(config.calibration_mask) != len(val_samples):
        raise TrainingError(
            f"calibration_mask has {len(config.calibration_mask)} entries for "
            f"{len(val_samples)} validation samples"
        )
    train_y = np.array([y for _, y in train_samples], dtype=np.int64)
    val_y = np.array([y for _, y in val_samples], dtype=np.int64)

    grid = list(
        itertools.product(
            sorted(set(config.trainable_blocks), reverse=True),
            list(config.epochs),
            list(config.learning_rates),
        )
    )
    pre = preprocess_config(
        config.architecture, input_size=config.input_size, resize_mode=config.resize_mode
    )

    # Phases and an estimate of the time left built from what has been measured (ml.progress).
    progress = ProgressReporter(
        config.progress,
        budget_s=config.time_budget_s,
        epochs_per_trial=[epochs for _, epochs, _ in grid],
        n_train=len(train_samples),
        n_val=len(val_samples),
        started=started,
    )

    # The model: ImageNet weights plus a new head, initialised from the seed.
    torch.manual_seed(_init_seed(config))
    model = create_model(
        config.architecture,
        num_classes=k,
        weights=config.weights,
        drop_rate=config.drop_rate,
    )
    model = model.eval().to(memory_format=torch.channels_last)
    initial_state = copy.deepcopy(model.state_dict())
    total_blocks = backbone.num_blocks(model)
    deepest = grid[0][0]
    if deepest > total_blocks:
        raise TrainingError(f"{config.architecture} has only {total_blocks} blocks")

    # --- cache ---
    trunk, _ = backbone.split(model, deepest)
    with torch.inference_mode():
        probe = trunk(normalize(np.zeros((1, 3, pre.input_size, pre.input_size), np.uint8), pre))
    feature_shape = tuple(probe.shape[1:])
    per_item = int(np.prod(feature_shape))
    copies = 1 + int(config.flip_augment) + max(0, config.augment_views)
    estimate = per_item * (len(train_samples) * copies * 2 + len(val_samples) * 4)
    if estimate > config.max_cache_bytes:
        raise TrainingError(
            f"feature cache would take {estimate / 2**30:.2f} GiB > max_cache_bytes "
            f"({config.max_cache_bytes / 2**30:.2f} GiB): lower input_size or trainable_blocks"
        )
    skipped: dict[int, str] = {}

    def cache_progress(done, total):
        progress.preparing(done, total)

    t0 = time.perf_counter()
    cache = build_cache(
        trunk,
        feature_shape,
        [s for s, _ in train_samples],
        train_y,
        [s for s, _ in val_samples],
        val_y,
        pre,
        config.flip_augment,
        skipped,
        cache_progress,
        augment_views=max(0, config.augment_views),
        seed=_init_seed(config),
    )
    timings["cache_s"] = time.perf_counter() - t0
    n_train_items = len(cache.train_labels) // copies
    if n_train_items == 0 or len(cache.val_labels) == 0:
        raise TrainingError(f"no decodable images left ({len(skipped)} failed)")

    # --- trials ---
    trials: list[dict] = []
    best: dict | None = None
    best_state: dict[str, torch.Tensor] | None = None
    caches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {deepest: (cache.train, cache.val)}
    seconds_per_item_epoch: dict[int, float] = {}
    val_labels_np = cache.val_labels.numpy()
    train_t0 = time.perf_counter()
    for trial_no, (depth, n_epochs, lr) in enumerate(grid, start=1):
        elapsed = time.perf_counter() - started
        remaining = config.time_budget_s - elapsed
        known = seconds_per_item_epoch.get(depth) or (
            max(seconds_per_item_epoch.values()) if seconds_per_item_epoch else None
        )
        if trials and known is not None and known * n_train_items * copies > remaining:
            trials.append(
                {"trial": trial_no, "trainable_blocks": depth, "epochs": n_epochs, "lr": lr}
                | {"status": "skipped: time budget"}
            )
            continue
        # Reset first: the extra frozen blocks below may have been trained by a deeper trial.
        model.load_state_dict(initial_state)
        if depth not in caches:
            extra = extra_blocks(model, deepest, depth)
            caches = {
                deepest: caches[deepest],
                depth: (
                    derive(extra, cache.train, torch.float16),
                    derive(extra, cache.val, torch.float32),
                ),
            }
        train_x, val_x = caches[depth]
        _, top = backbone.split(model, depth)
        record, state = _run_trial(
            config,
            model,
            top,
            train_x,
            cache.train_labels,
            val_x,
            val_labels_np,
            n_train_items,
            (copies, cache.clean_views),
            depth,
            n_epochs,
            lr,
            trial_no,
            started,
            progress,
        )
        trials.append(record)
        seconds_per_item_epoch[depth] = record["seconds_per_epoch"] / (n_train_items * copies)
        if state is not None and (best is None or record["val_nll"] < best["val_nll"]):
            best, best_state = record, state
    timings["search_s"] = time.perf_counter() - train_t0
    if best is None or best_state is None:
        raise TrainingError("no trial finished an epoch")

    # --- final model, calibration, thresholds ---
    progress.calibrating()
    model.load_state_dict(best_state)
    model.eval()
    depth = best["trainable_blocks"]
    _, top = backbone.split(model, depth)
    if depth in caches:
        val_x = caches[depth][1]
    else:  # only the first and the latest depth's caches are kept; rebuild the small val part
        val_x = derive(extra_blocks(model, deepest, depth), cache.val, torch.float32)
    logits = _logits(top, val_x).numpy().astype(np.float64)
    for p in model.parameters():
        p.requires_grad_(False)
    fit = _calibration_rows(config, len(train_samples), len(val_samples), skipped)
    temperature = calibration.fit_temperature(logits[fit], val_labels_np[fit])
    # Then per predicted class (ml.calibration): what the floor and the thresholds read.
    class_calibration = calibration.fit_class_calibration(
        calibration.softmax(logits[fit], temperature), val_labels_np[fit]
    )
    probs = calibration.calibrated(logits, temperature, class_calibration)
    metrics = evaluation_metrics(
        probs,
        val_labels_np,
        class_names,
        target=config.target_precision,
        delta=config.delta,
        min_support=config.min_support,
    )
    metrics["ece_uncalibrated"] = calibration.expected_calibration_error(
        calibration.softmax(logits), val_labels_np
    )
    metrics["val_nll"] = calibration.nll(logits, val_labels_np, temperature)
    metrics["calibration_items"] = int(fit.sum())
    chosen = metrics["thresholds"]
    reference = _shift_reference(model, top, depth, deepest, caches, cache, n_train_items, val_x)
    timings["total_s"] = time.perf_counter() - started

    resolved = {
        "architecture": config.architecture,
        "class_names": class_names,
        "num_classes": k,
        "preprocess": pre.to_dict(),
        "temperature": temperature,
        "class_calibration": class_calibration.to_list(),
        "trainable_blocks": depth,
        "hyperparameters": {
            "learning_rate": best["lr"],
            "epochs_planned": best["epochs"],
            "epochs_run": best["epochs_run"],
            "best_epoch": best["best_epoch"],
            "batch_size": config.batch_size,
            "weight_decay": config.weight_decay,
            "label_smoothing": config.label_smoothing,
            "drop_rate": config.drop_rate,
            "flip_augment": config.flip_augment,
            "augment_views": config.augment_views,
            "augment_share": config.augment_share if config.augment_views else 0.0,
            "optimizer": "AdamW, warm-up + cosine",
        },
        "search": {
            "trainable_blocks": list(config.trainable_blocks),
            "epochs": list(config.epochs),
            "learning_rates": list(config.learning_rates),
            "time_budget_s": config.time_budget_s,
            "patience": config.patience,
            "selection": "validation NLL after temperature scaling",
        },
        "thresholds": {
            "target_precision": config.target_precision,
            "delta": config.delta,
            "min_support": config.min_support,
            "method": "learn-then-test, fixed sequences from count-chosen starts, exact binomial",
            "per_class": chosen,
        },
        "metrics": metrics,
        "data": {
            "train_items": n_train_items,
            "validation_items": int(len(val_labels_np)),
            "skipped_items": len(skipped),
            "val_fraction": config.val_fraction if config.validation_samples is None else None,
        },
        "weights_source": str(config.weights),
        "seed": config.seed,
        "init_seed": _init_seed(config),
        "trials": trials,
        "timings": timings,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "torch": torch.__version__,
            "timm": timm.__version__,
            "python": platform.python_version(),
        },
    }
    save_checkpoint(config.output_dir, model, resolved)
    reference.save(config.output_dir)
    timings["total_s"] = time.perf_counter() - started
    progress.done(
        f"saved {config.output_dir}: val accuracy {metrics['accuracy']:.4f}, "
        f"coverage {metrics['coverage_at_target']:.3f} at precision ≥ {config.target_precision}",
    )
    return TrainResult(
        output_dir=Path(config.output_dir),
        config=resolved,
        metrics=metrics,
        thresholds=chosen,
        temperature=temperature,
        trials=trials,
        timings=timings,
        skipped_samples=skipped,
        model=model.eval(),
        val_logits=logits,
        val_labels=val_labels_np,
        class_calibration=class_calibration,
    )


def _calibration_rows(
    config: TrainConfig, n_train: int, n_val: int, skipped: dict[int, str]
) -> np.ndarray:
    """Mask over the decodable validation rows the calibration is fitted on: the caller's
    ``calibration_mask`` less the images that failed to decode (the feature cache keys them
    after the training samples), or every row when no mask was given or none of it is left."""
    kept = [i for i in range(n_val) if n_train + i not in skipped]
    if config.calibration_mask is None:
        return np.ones(len(kept), dtype=bool)
    mask = np.array([bool(config.calibration_mask[i]) for i in kept], dtype=bool)
    return mask if mask.any() else np.ones(len(kept), dtype=bool)


def _shift_reference(
    model, top, depth, deepest, caches, cache, n_items, val_x: torch.Tensor, limit: int = 5000
) -> ShiftReference:
    """The shift check's reference (``ml.shift``): penultimate features and image statistics of
    the training images as they are (view 0, not mirrors or augmented views: the guarantee is
    calibrated on ordinary images), calibrated on the validation images. At most ``limit``
    training images (a fixed random subset) are used: the metric needs a few thousand, and a
    forward pass over more would only lengthen training."""
    rows = torch.arange(n_items)
    if n_items > limit:
        generator = torch.Generator().manual_seed(0)
        rows = torch.sort(torch.randperm(n_items, generator=generator)[:limit])[0]
    if depth in caches:
        train_x = caches[depth][0][rows]
    else:
        train_x = derive(extra_blocks(model, deepest, depth), cache.train[rows], torch.float16)
    reference = ShiftReference.fit(
        _features(top, train_x),
        cache.train_labels[rows].numpy(),
        cache.train_stats[rows.numpy()],
        source=f"{len(rows)} training images",
    )
    return reference.calibrate(_features(top, val_x), cache.val_stats)


@torch.inference_mode()
def _features(top: backbone.Top, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    out = [
        top.features(x[s : s + batch].float().contiguous(memory_format=torch.channels_last))
        for s in range(0, len(x), batch)
    ]
    return torch.cat(out).float().numpy() if out else np.zeros((0, 0), np.float32)


def _run_trial(
    config: TrainConfig,
    model: nn.Module,
    top: backbone.Top,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: np.ndarray,
    n_items: int,
    views: tuple[int, int],
    depth: int,
    n_epochs: int,
    lr: float,
    trial_no: int,
    started: float,
    progress: ProgressReporter,
) -> tuple[dict, dict[str, torch.Tensor] | None]:
    torch.manual_seed(_init_seed(config) * 1000 + trial_no)
    rng = np.random.default_rng(_init_seed(config) * 1000 + trial_no)
    params = top.parameters_with_head()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    batches_per_epoch = max(1, math.ceil(n_items / config.batch_size))
    total_steps = batches_per_epoch * n_epochs
    record = {
        "trial": trial_no,
        "trainable_blocks": depth,
        "epochs": n_epochs,
        "lr": lr,
        "epochs_run": 0,
        "best_epoch": 0,
        "val_nll": math.inf,
        "val_accuracy": 0.0,
        "seconds_per_epoch": 0.0,
        "history": [],
    }
    best_state = None
    stale = 0
    step = 0
    trial_t0 = time.perf_counter()
    planned_epochs = n_epochs
    for epoch in range(1, n_epochs + 1):
        epoch_t0 = time.perf_counter()
        model.train()
        order = rng.permutation(n_items)
        if views[0] > 1:  # one cached view of each item (itself, mirror, augmented), independently
            order = (
                order + pick_views(rng, n_items, views[0], views[1], config.augment_share)[order]
            )
        running = 0.0
        for b in range(batches_per_epoch):
            idx = torch.as_tensor(order[b * config.batch_size : (b + 1) * config.batch_size])
            if len(idx) < 2:  # BatchNorm cannot train on a single item
                continue
            x = train_x[idx].float().contiguous(memory_format=torch.channels_last)
            y = train_y[idx]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total_steps, lr)
            loss = F.cross_entropy(top(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach().item()
            step += 1
            if epoch == 1 and b + 1 == min(20, batches_per_epoch // 10 + 1):
                # Early estimate of the epoch cost. If fewer epochs fit in the budget than
                # planned, compress the cosine schedule now, so the learning rate still decays
                # to zero by the last epoch that fits instead of stopping at a high rate.
                per_epoch = (time.perf_counter() - epoch_t0) / (b + 1) * batches_per_epoch
                remaining = config.time_budget_s - (time.perf_counter() - started)
                fit = max(1, int(remaining // per_epoch))
                if fit < planned_epochs:
                    planned_epochs = fit
                    total_steps = fit * batches_per_epoch
                    record["epochs_compressed_to"] = planned_epochs
        model.eval()
        logits = _logits(top, val_x).numpy().astype(np.float64)
        val_nll, temperature, val_acc = _val_score(logits, val_y)
        seconds = time.perf_counter() - epoch_t0
        record["history"].append(
            {
                "epoch": epoch,
                "train_loss": running / batches_per_epoch,
                "val_nll": val_nll,
                "val_accuracy": val_acc,
                "temperature": temperature,
                "seconds": seconds,
            }
        )
        record["epochs_run"] = epoch
        record["seconds_per_epoch"] = (time.perf_counter() - trial_t0) / epoch
        if val_nll < record["val_nll"]:
            record.update(val_nll=val_nll, val_accuracy=val_acc, best_epoch=epoch)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
        elapsed = time.perf_counter() - started
        remaining_budget = config.time_budget_s - elapsed
        progress.epoch_done(
            trial_no,
            epoch,
            n_epochs,
            record["seconds_per_epoch"],
            f"{depth} blocks, lr {lr:g}: val acc {val_acc:.4f}, nll {val_nll:.4f}",
        )
        if stale >= config.patience:
            record["status"] = f"early stop after epoch {epoch}"
            break
        if planned_epochs < n_epochs and epoch >= planned_epochs:
            record["status"] = f"time budget: schedule compressed to {planned_epochs} epochs"
            break
        fit = int(remaining_budget // max(record["seconds_per_epoch"], 1e-9))
        if fit < 1:
            record["status"] = f"time budget reached after epoch {epoch}"
            break
        if epoch + fit < planned_epochs:
            planned_epochs = epoch + fit
            total_steps = step + fit * batches_per_epoch
            record["epochs_compressed_to"] = planned_epochs
    else:
        record["status"] = "completed"
    return record, best_state
