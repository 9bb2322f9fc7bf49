"""The evidence thresholds are certified on, and certifying them.

Learn-then-Test's promise (``ml.thresholds``, ``ml.overall_scope``) holds for images that look
like its calibration sample, so the sample must be drawn the way the thresholds' images are:
at random from the stream. The human queue is not such a sample. It holds exactly the images an
earlier model was unsure of, so a model's precision on them says little about the confident
images its thresholds will auto-label (it both understates coverage, since the easy images are
missing, and proves nothing about them). So the evidence is:

- **calibration items** (``Item.is_calibration``): a random ``calibration_share`` of incoming
  images, sent to humans whatever the model said (``labeling.machine.predict.calibration_draw``);
- **blind items** (``Item.routed_blind``) that are held out: images sent to humans while no
  threshold was in force (no model yet, or none certified), answered before any re-route could
  have taken them away, so their stay with humans never depended on a confidence;

- **imported labels** (source ``imported``, a shop's earlier labels from a Ground Truth
  manifest) that are held out: labeled before and outside this service, so which of them exist
  never depended on any model's confidence here. They are evidence under one more assumption,
  stated in docs/ml.md: the imported history was drawn like the images that arrive now (a shop
  that imports only its hard cases breaks it; the audit and the shift check then notice);

labeled by humans (consensus, expert, or imported) and never trained on. Which human labels are held
out is fixed per item (:func:`item_held_out`): calibration items always, every other image by its
hash, so every model version is trained on the same side of the line and scored on the same
held-out images (the promotion gate compares fairly, and a label never moves from evidence to
training). The evidence grows as labels arrive; each model version is scored on all of it
(:func:`evidence_scores`), and the active model's thresholds are certified again when it has
grown (:func:`thresholds_recertify`).

A model's calibration (its temperature and per class map, ``ml.calibration``) can be fitted on
the same kind of sample, where the deployment turns it on (``CALIBRATION_FIT_MIN`` > 0; 0, the
default, is off): the held-out evidence items on one side of a second fixed hash split
(:func:`item_calibration_fit`), once at least ``CALIBRATION_FIT_MIN`` of them exist. Fitted on all
held-out labels (the default), half of them the queue's hard images, it learns how sure to be on
hard images. The items a model's calibration was fitted on (``metrics["calibration_fit_items"]``)
are left out of that model's certification, so the thresholds are still tested on images nothing
about the model was fitted on; later evidence on the same side certifies it as usual. Why it is
off by default (it certified less in the loop at 0.98): docs/loop.md.

Each certification also refits a per class map of the model's confidence on the evidence
(``labeling.machine.recalibration``, per class scope): :func:`evidence_scores` returns the
mapped probabilities (and the model's own as ``model_probs``), the record stores the map, and
routing reads the confidence through it.

Audit answers are the other half of the design's evidence: a random share of a model's
auto-labels, they measure that model's live precision (``labeling.machine.audit``) and pause a
class that falls short. They are not pooled into certification: they are drawn from the images an
earlier model was *sure* of, the mirror image of the queue's bias, so pooling them unweighted
would overstate precision for any other model or threshold. Calibration items that the active
model would have auto-labeled are themselves a uniform sample of its auto-labels, so the audit
page counts them too.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from labeling.machine.evidence_recheck import evidence_recheck_open, evidence_relabeled
from labeling.machine.predictors import checkpoint_path, heldout_load, predictor_for
from labeling.machine.recalibration import recalibration_fit, routing_probs, scope_calibration
from labeling.models import Item, ItemSource, LabelReview, ModelVersion, Prediction, Project
from ml import overall_scope, thresholds

logger = logging.getLogger(__name__)

# Share of human labels (other than calibration items) held out from training, fixed per item.
HOLDOUT_SHARE = 0.2
HUMAN_SOURCES = (ItemSource.CONSENSUS, ItemSource.EXPERT)
# Re-certify the active model when its evidence grew by this many items (or by 10 %).
RECERTIFY_AFTER = 25
# Share of evidence items (by a hash of their content, fixed) a model's calibration may be
# fitted on; the rest certifies it.
CALIBRATION_FIT_SHARE = 0.5


def item_held_out(*, sha256: str, is_calibration: bool) -> bool:
    """The item's fixed side: calibration items always, others by a hash of their content, so
    the assignment never changes between model versions (or when an image is re-uploaded)."""
    if is_calibration:
        return True
    return _hash_bucket("holdout", sha256) < HOLDOUT_SHARE


def _hash_bucket(salt: str, sha256: str) -> float:
    """A number in [0, 1) fixed by the image's content; a different ``salt`` per split keeps
    the splits independent."""
    return int(hashlib.sha256(f"{salt}:{sha256}".encode()).hexdigest()[:8], 16) / 2**32


def item_calibration_fit(*, sha256: str) -> bool:
    """Whether a held-out evidence item is on the side a model's calibration may be fitted on
    (a hash of its content, independent of :func:`item_held_out`'s, so fixed across versions)."""
    return _hash_bucket("calibration-fit", sha256) < CALIBRATION_FIT_SHARE


def evidence_ids(project: Project, item_ids: list[int]) -> set[int]:
    """Which of ``item_ids`` are evidence (:func:`evidence_items`): held-out images drawn at
    random from the stream, which alone calibrate the shift check's window test."""
    return set(evidence_items(project).filter(pk__in=item_ids).values_list("pk", flat=True))


def calibration_fit_ids(project: Project, held_out_ids: list[int]) -> list[int]:
    """Of a training's held-out items, the evidence items its calibration is fitted on: those on
    the fit side of :func:`item_calibration_fit`, when there are at least
    ``settings.CALIBRATION_FIT_MIN`` of them; otherwise, or with the setting at 0 (off), none
    (the calibration is then fitted on all held-out labels). Whether there are enough depends on
    counts only, never on labels."""
    if settings.CALIBRATION_FIT_MIN <= 0:  # off
        return []
    rows = evidence_items(project).filter(pk__in=held_out_ids).values_list("pk", "sha256")
    fit = [pk for pk, sha in rows if item_calibration_fit(sha256=sha)]
    return fit if len(fit) >= settings.CALIBRATION_FIT_MIN else []


def calibration_fit_items(model: ModelVersion) -> set[int]:
    """The evidence items ``model``'s calibration was fitted on (left out of its certification)."""
    return set((model.metrics or {}).get("calibration_fit_items") or [])


def held_out_filter(items: QuerySet) -> tuple[list[int], list[int]]:
    """Split an item query into (held-out ids, training ids) by :func:`item_held_out`."""
    held, train = [], []
    for pk, sha, calibration in items.values_list("pk", "sha256", "is_calibration"):
        (held if item_held_out(sha256=sha, is_calibration=calibration) else train).append(pk)
    return held, train


def heldout_labels(project: Project) -> QuerySet:
    """The project's held-out human labels: what every model version is scored on and never
    trained on (consensus, expert and imported labels on the held-out side)."""
    labeled = Item.objects.filter(
        project=project,
        final_label__isnull=False,
        final_source__in=(*HUMAN_SOURCES, ItemSource.IMPORTED),
    )
    held, _ = held_out_filter(labeled)
    return Item.objects.filter(pk__in=held)


def evidence_items(project: Project) -> QuerySet:
    """Human-labeled held-out items whose route to humans did not depend on a confidence, and
    held-out imported labels (never routed here at all)."""
    routed = Q(final_source__in=HUMAN_SOURCES) & (Q(is_calibration=True) | Q(routed_blind=True))
    # An evidence label an expert rechecked stays evidence whatever its source became.
    rechecked = Q(final_source=ItemSource.EXPERT) & Exists(
        LabelReview.objects.filter(item=OuterRef("pk"), was_evidence=True)
    )
    candidates = Item.objects.filter(project=project, final_label__isnull=False).filter(
        routed | Q(final_source=ItemSource.IMPORTED) | rechecked
    )
    held, _ = held_out_filter(candidates)
    return Item.objects.filter(pk__in=held)


def _evidence_cache(model: ModelVersion) -> Path:
    return checkpoint_path(model) / "evidence.npz"


def evidence_scores(
    project: Project, model: ModelVersion, *, predict_missing: bool
) -> dict[str, np.ndarray]:
    """``model``'s calibrated probabilities and the human label positions on the project's
    evidence: from its held-out predictions, its routing predictions, a cache, and (in a worker,
    with ``predict_missing``) by running the model on the rest, which are cached. The items the
    model's calibration was fitted on are left out (``"fitted"`` counts them)."""
    fitted = calibration_fit_items(model)
    every = list(evidence_items(project).values_list("pk", "final_label__position"))
    rows = [row for row in every if row[0] not in fitted]
    n_fitted = len(every) - len(rows)
    ids = np.array([pk for pk, _ in rows], dtype=np.int64)
    labels = np.array([pos for _, pos in rows], dtype=np.int64)
    known: dict[int, np.ndarray] = {}
    cache = _evidence_cache(model) if model.checkpoint_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            known.update(zip(data["item_ids"].tolist(), data["probs"], strict=True))
    heldout = heldout_load(model) if model.checkpoint_dir else None
    if heldout is not None and "item_ids" in heldout:
        known.update(zip(heldout["item_ids"].tolist(), heldout["probs"], strict=True))
    missing = [pk for pk in ids.tolist() if pk not in known]
    if missing:
        for pk, probs in Prediction.objects.filter(
            model_version=model, item_id__in=missing
        ).values_list("item_id", "probabilities"):
            if probs:
                known[pk] = np.asarray(probs, dtype=np.float64)
        missing = [pk for pk in missing if pk not in known]
    if missing and predict_missing and model.checkpoint_dir:
        fresh = _predict(model, missing)
        known.update(fresh)
        if cache is not None:
            cached_ids = np.array(list(known), dtype=np.int64)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, item_ids=cached_ids, probs=np.stack([known[i] for i in cached_ids]))
            tmp.replace(cache)
    have = np.array([pk in known for pk in ids.tolist()], dtype=bool)
    k = project.labels.count()
    probs = np.stack([known[pk] for pk in ids[have].tolist()]) if have.any() else np.zeros((0, k))
    usable = ~np.isnan(probs).any(axis=1) if len(probs) else np.zeros(0, bool)
    probs, labels = probs[usable], labels[have][usable]
    # The project's own calibration of this model, fitted on this evidence
    # (labeling.machine.recalibration); the thresholds read the mapped confidence.
    remap = recalibration_fit(probs, labels) if probs.shape[1:] == (k,) else None
    return {
        "item_ids": ids[have][usable],
        # as the project's scope reads them; ``model_probs`` and the map serve the other scope
        "probs": routing_probs(scope_calibration(project.threshold_scope, remap), probs),
        "model_probs": probs,
        "labels": labels,
        "unscored": int((~have).sum()),
        "fitted": int(n_fitted),
        "recalibration": remap,
    }


def _predict(model: ModelVersion, item_ids: list[int]) -> dict[int, np.ndarray]:
    items = Item.objects.filter(pk__in=item_ids).only("pk", "image")
    ids, images = [], []
    for item in items:
        try:
            with item.image.open("rb") as fh:
                images.append(fh.read())
            ids.append(item.pk)
        except OSError:
            logger.warning("Evidence item %s cannot be read", item.pk)
    result = predictor_for(model).predict(images, batch_size=settings.PREDICTION_BATCH_SIZE)
    return {pk: result.probs[i] for i, pk in enumerate(ids) if i not in result.errors}


def threshold_floor(project: Project) -> float:
    """The lowest threshold any class may have: the target precision (a calibrated confidence
    under the target is never an auto-label, ``ml.thresholds.threshold_floor``); the overall
    family never goes below it either."""
    return float(project.target_precision)


def certify(
    project: Project,
    model: ModelVersion,
    *,
    target: float,
    confidence: float,
    scope: str,
    predict_missing: bool,
    scored: dict[str, np.ndarray] | None = None,
) -> dict:
    """Thresholds for ``model`` certified on the project's evidence in ``scope``: the record
    stored as ``ModelVersion.thresholds`` (per class, evidence size, the rule's details).
    ``scored``: the evidence as :func:`evidence_scores` gave it, when the caller has it."""
    names = model.metrics.get("class_names") or project.label_names()
    if scored is None:
        scored = evidence_scores(project, model, predict_missing=predict_missing)
    # The evidence-refitted map serves the per class scope only (labeling.machine.recalibration):
    # another scope, previewed or chosen, is certified on the model's own confidence.
    remap = scope_calibration(scope, scored["recalibration"])
    probs, labels = routing_probs(remap, scored["model_probs"]), scored["labels"]
    record = {
        "target": target,
        "confidence": confidence,
        "scope": scope,
        "evidence": int(len(labels)),
        # Evidence the model's calibration was fitted on, left out of this certification.
        "calibration_fit": scored.get("fitted", 0),
        # The per class map the evidence fitted (labeling.machine.recalibration); routing reads
        # the confidence through it. None: the model's own calibration stands.
        "recalibration": remap.to_list() if remap is not None else None,
        "recalibrated_on": int(len(labels)) if remap is not None else 0,
        "relabeled": evidence_relabeled(project),
        "unscored": scored["unscored"],
        "certified_at": timezone.now().isoformat(timespec="seconds"),
    }
    if len(labels) == 0 or probs.shape[1] != len(names):
        reason = "no calibration items labeled yet: nothing can be certified"
        # Per class, how many calibration images (all right) the walk needs before it can pass.
        needed = (
            thresholds.items_needed(
                0,
                0,
                target=target,
                delta=1 - confidence,
                min_support=settings.THRESHOLD_MIN_SUPPORT,
            )
            if scope == overall_scope.PER_CLASS
            else None
        )
        return {
            **record,
            "per_class": dict.fromkeys(names),
            "coverage": 0.0,
            "accepted": 0,
            "precision": None,
            "reason": reason,
            "classes": {
                name: {"support": 0, "accepted": 0, "errors": 0, "upper_bound": None,
                       "reason": reason, "needed": needed}
                for name in names
            },
        }  # fmt: skip
    values, details = overall_scope.certify(
        probs,
        labels,
        scope=scope,
        target=target,
        delta=1 - confidence,
        min_support=settings.THRESHOLD_MIN_SUPPORT,
        floor=threshold_floor(project),
    )
    record["per_class"] = dict(zip(names, values, strict=True))
    outcome = thresholds.evaluate_thresholds(probs, labels, values)
    record["coverage"] = round(outcome.coverage, 6)
    record["accepted"] = outcome.accepted
    record["precision"] = None if outcome.accepted == 0 else round(outcome.precision, 6)
    if isinstance(details, overall_scope.OverallThreshold):
        record["overall"] = {
            "level": details.level,
            "accepted": details.accepted,
            "errors": details.errors,
            "upper_bound": details.upper_bound,
            "reason": details.reason,
        }
        pred = probs.argmax(axis=1)
        accepted = thresholds.accept_mask(probs.max(axis=1), pred, values)
        record["classes"] = {
            name: {
                "support": row["predicted"],
                "accepted": row["accepted"],
                "errors": int((accepted & (pred == c) & (labels != c)).sum()),
                "upper_bound": None,
                "reason": f"overall scope: {details.reason}",
            }
            for c, (name, row) in enumerate(zip(names, outcome.per_class, strict=True))
        }
    else:
        record["classes"] = {
            name: {
                "support": d.support,
                "accepted": d.accepted,
                "errors": d.errors,
                "upper_bound": d.upper_bound,
                "reason": d.reason,
                "needed": d.needed,
            }
            for name, d in zip(names, details, strict=True)
        }
    return record


def model_certify(*, project: Project, model: ModelVersion, predict_missing: bool = True) -> dict:
    """Certify ``model`` at the project's current settings and store the result; the evidence
    labels it contradicts at an acceptable confidence go to an expert (``evidence_recheck``),
    and their answers lead to certifying again (:func:`thresholds_recertify`)."""
    # Scored once, for the certification and for the rechecks it raises.
    scored = evidence_scores(project, model, predict_missing=predict_missing)
    record = certify(
        project,
        model,
        target=project.target_precision,
        confidence=project.threshold_confidence,
        scope=project.threshold_scope,
        predict_missing=predict_missing,
        scored=scored,
    )
    ModelVersion.objects.filter(pk=model.pk).update(thresholds=record)
    model.thresholds = record
    floor = threshold_floor(project)
    evidence_recheck_open(project=project, model=model, scored=scored, floor=floor)
    return record


def thresholds_recertify(*, project: Project) -> bool:
    """Certify the active model again when its evidence has grown since the last time (new
    calibration labels arrive all the time). Returns True when the thresholds changed, so the
    caller re-routes the waiting queue."""
    model = project.active_model
    if model is None or model.status != ModelVersion.Status.ACTIVE or not model.checkpoint_dir:
        return False
    stored = model.thresholds or {}
    seen = int(stored.get("evidence", 0)) + int(stored.get("calibration_fit", 0))
    grown = evidence_items(project).count() - seen
    settings_same = (
        stored.get("target") == project.target_precision
        and stored.get("confidence") == project.threshold_confidence
        and stored.get("scope") == project.threshold_scope
    )
    # An expert corrected evidence labels since: even one can decide the walk near the target.
    relabeled = evidence_relabeled(project) != stored.get("relabeled", 0)
    if (
        settings_same
        and not relabeled
        and grown < max(RECERTIFY_AFTER, 0.1 * stored.get("evidence", 0))
    ):
        return False
    before = (stored.get("per_class"), stored.get("recalibration"))
    record = model_certify(project=project, model=model)
    # A new map moves which waiting images clear the thresholds as much as new thresholds do.
    return (record.get("per_class"), record.get("recalibration")) != before


# --- the thresholds in force -------------------------------------------------------------------


def project_thresholds(project: Project, model_version: ModelVersion) -> list[float | None]:
    """Accept threshold per class (label position order); None never auto-labels that class.

    Manual mode: the admin's numbers. Target mode: the thresholds certified on the project's
    evidence at ``target_precision`` with ``threshold_confidence``, in ``threshold_scope``
    (per class or overall). Never below the target precision (the floor); none at all for a
    paused class, or while a shift alert stands."""
    labels = list(project.labels.all())
    if project.threshold_mode == Project.ThresholdMode.MANUAL:
        chosen = [project.manual_thresholds.get(label.name) for label in labels]
    else:
        derived = derived_thresholds(
            project,
            model_version,
            project.target_precision,
            project.threshold_confidence,
            project.threshold_scope,
        )
        chosen = [derived.get(label.name) for label in labels]
    # The floor holds in both modes, also for values stored before it existed.
    chosen = thresholds.threshold_floor(chosen, project.target_precision)
    paused = project.autolabel_paused or {}
    return [
        None if label.name in paused or project.shift_alert else value
        for label, value in zip(labels, chosen, strict=True)
    ]


def certified_record(
    project: Project, model_version: ModelVersion, target: float, confidence: float, scope: str
) -> dict:
    """The stored certification when it was made at these settings, else one computed now from
    the evidence already scored (no model is run: this also serves web requests)."""
    stored = model_version.thresholds or {}
    if (
        stored.get("target") == target
        and stored.get("confidence") == confidence
        and stored.get("scope", overall_scope.PER_CLASS) == scope
        and "per_class" in stored
    ):
        return stored
    return certify(
        project,
        model_version,
        target=target,
        confidence=confidence,
        scope=scope,
        predict_missing=False,
    )


def derived_thresholds(
    project: Project, model_version: ModelVersion, target: float, confidence: float, scope: str
) -> dict[str, float | None]:
    """Per class name: the certified threshold at ``target`` with ``confidence`` in ``scope``."""
    return certified_record(project, model_version, target, confidence, scope)["per_class"]
