"""The promotion gate and manual promote / roll back.

In target mode, candidate and active model are both certified on the project's evidence (the
calibration sample, ``labeling.machine.certification``), which neither trained on: the candidate
is promoted only if the thresholds it earns there auto-label more of it, ties going to the
better calibrated one on the held-out labels. Otherwise it stays ``ready`` with the reason.

A project whose admin set thresholds by hand is judged by those thresholds instead, since they
are what will route its images: the candidate must auto-label more at them, and is refused if it
is both less precise than the active model and below the project's target precision on the
held-out labels (an over-confident model would otherwise win by accepting more). The target
floor matters: an active model that accepts three held-out images, all right, must not block a
candidate that accepts fifty at 98 %.
"""

import logging

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.errors import ServiceError
from labeling.machine.certification import model_certify, thresholds_recertify
from labeling.machine.predict import project_repredict
from labeling.machine.predictors import class_names_mismatch, heldout_load, predictor_for
from labeling.manifests import manifest_labels
from labeling.models import Item, ModelStatus, ModelVersion, Project
from ml import thresholds
from ml.calibration import expected_calibration_error

logger = logging.getLogger(__name__)

COVERAGE_TIE = 0.005
MIN_FAIR_ITEMS = 50


PRECISION_TOLERANCE = 0.005  # manual mode: how much less precise a candidate may be


def heldout_score(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    target: float,
    confidence: float,
    manual: list[float | None] | None = None,
) -> dict:
    """Coverage (share auto-labeled) and realised precision of one model on held-out labels,
    plus its calibration error: at ``target`` with guaranteed thresholds, or at the admin's
    ``manual`` thresholds (one per class, None never auto-labels) when given."""
    k = probs.shape[1]
    if manual is not None:
        chosen = list(manual)
    else:
        chosen = thresholds.select_thresholds(
            probs,
            None,
            labels,
            k,
            target=target,
            delta=1 - confidence,
            min_support=settings.THRESHOLD_MIN_SUPPORT,
        )
    accept = thresholds.accept_mask(probs.max(axis=1), probs.argmax(axis=1), chosen)
    correct = probs.argmax(axis=1) == labels
    return {
        "coverage": float(accept.mean()) if len(accept) else 0.0,
        "precision": float(correct[accept].mean()) if accept.any() else None,
        "accuracy": float(correct.mean()) if len(correct) else 0.0,
        "ece": float(expected_calibration_error(probs, labels)),
        "n": int(len(labels)),
    }


def promotion_gate(*, model: ModelVersion) -> bool:
    """Promote ``model`` if it beats the active model on the same held-out labels."""
    project = model.project
    active = project.active_model
    heldout = heldout_load(model)
    if heldout is None:
        _keep_ready(model, "No held-out predictions were saved; promote by hand after checking.")
        return False
    target, confidence = project.target_precision, project.threshold_confidence
    manual = _manual_thresholds(project, model)
    gate = {"target": target, "confidence": confidence}
    if manual is not None:
        gate["manual_thresholds"] = manual
    score = {"target": target, "confidence": confidence, "manual": manual}
    if active is None or active.status != ModelStatus.ACTIVE:
        gate["candidate"] = heldout_score(heldout["probs"], heldout["labels"], **score)
        gate["decision"] = "promoted: no active model"
        _record_gate(model, gate)
        model_promote(model=model, reason="first model")
        return True
    # Score both on held-out images neither trained on: the active model has usually seen most
    # of the candidate's held-out images, and would win on them by memory, not by skill.
    seen = _trained_item_ids(active)
    fair = np.array([item_id not in seen for item_id in heldout["item_ids"].tolist()])
    if fair.sum() >= MIN_FAIR_ITEMS:
        heldout = {key: value[fair] for key, value in heldout.items()}
        gate["compared_on"] = f"{int(fair.sum())} held-out images neither model trained on"
    else:
        gate["compared_on"] = (
            f"all {len(fair)} held-out images; only {int(fair.sum())} were unseen by the active "
            "model, so the comparison favours it"
        )
    candidate = heldout_score(heldout["probs"], heldout["labels"], **score)
    if manual is None:
        gate["evidence"] = _evidence_scores(project, model, active, candidate)
        candidate = {**candidate, **gate["evidence"]["candidate"]}
    gate["candidate"] = candidate
    items = {i.pk: i for i in Item.objects.filter(pk__in=heldout["item_ids"].tolist())}
    images = []
    for item_id in heldout["item_ids"].tolist():
        with items[item_id].image.open("rb") as fh:
            images.append(fh.read())
    try:
        active_probs = predictor_for(active).predict(images).probs
    except Exception as exc:  # the active model cannot be run any more: replace it
        logger.exception("Active model v%s failed on the held-out set", active.version)
        gate["decision"] = f"promoted: the active model failed to predict ({exc})"
        _record_gate(model, gate)
        model_promote(model=model, reason="active model unusable")
        return True
    usable = ~np.isnan(active_probs).any(axis=1)
    current = heldout_score(active_probs[usable], heldout["labels"][usable], **score)
    if manual is None:
        current = {**current, **gate["evidence"]["active"]}
    gate["active"] = {**current, "version": active.version}
    better = candidate["coverage"] > current["coverage"] + COVERAGE_TIE
    tie = abs(candidate["coverage"] - current["coverage"]) <= COVERAGE_TIE
    less_precise = manual is not None and less_precise_than_active(candidate, current, target)
    at = "the admin's thresholds" if manual is not None else f"{target:.0%} precision"
    if (better or (tie and candidate["ece"] < current["ece"])) and not less_precise:
        gate["decision"] = (
            f"promoted: auto-labels {candidate['coverage']:.1%} vs {current['coverage']:.1%} "
            f"at {at}" + (" (tie, better calibrated)" if tie else "")
        )
        _record_gate(model, gate)
        model_promote(model=model, reason=gate["decision"])
        return True
    reason = (
        f"Not promoted: auto-labels {candidate['coverage']:.1%} of held-out images at {at}, "
        f"the active v{active.version} {current['coverage']:.1%}"
        + (f"; calibration error {candidate['ece']:.3f} vs {current['ece']:.3f}" if tie else "")
        + (
            f"; realised precision {candidate['precision']:.1%} vs {current['precision']:.1%}"
            if less_precise
            else ""
        )
        + "."
    )
    gate["decision"] = reason
    _record_gate(model, gate)
    _keep_ready(model, reason)
    return False


def _evidence_scores(
    project: Project, model: ModelVersion, active: ModelVersion, candidate: dict
) -> dict:
    """Target mode: both models certified on the same evidence; coverage and precision there
    replace the held-out figures (which are kept for calibration error and accuracy)."""
    mine = model.thresholds or model_certify(project=project, model=model)
    theirs = model_certify(project=project, model=active)

    def figures(record: dict) -> dict:
        return {
            "coverage": record.get("coverage", 0.0),
            "precision": record.get("precision"),
            "evidence": record.get("evidence", 0),
            "scope": record.get("scope"),
        }

    return {"candidate": figures(mine), "active": figures(theirs)}


def _manual_thresholds(project: Project, model: ModelVersion) -> list[float | None] | None:
    """The admin's thresholds in the model's class order, or None in target mode."""
    if project.threshold_mode != Project.ThresholdMode.MANUAL:
        return None
    names = model.metrics.get("class_names") or list(project.label_names())
    return [project.manual_thresholds.get(name) for name in names]


def less_precise_than_active(candidate: dict, current: dict, target: float) -> bool:
    """Manual mode's precision check on two ``heldout_score`` results: the candidate is refused
    when it is less precise than both the active model and the target (within a tolerance)."""
    if candidate["precision"] is None or current["precision"] is None:
        return False  # one accepts nothing: coverage alone decides
    floor = min(current["precision"], target)
    return candidate["precision"] < floor - PRECISION_TOLERANCE


def _trained_item_ids(model: ModelVersion) -> set[int]:
    """Items ``model`` was trained on: its manifest less its held-out items."""
    if model.manifest is None:
        return set()
    names = list(manifest_labels(model.manifest))
    trained = set(
        Item.objects.filter(project_id=model.project_id, image__in=names).values_list(
            "pk", flat=True
        )
    )
    return trained - set(model.validation_items or [])


def _record_gate(model: ModelVersion, gate: dict) -> None:
    metrics = dict(model.metrics)
    metrics["promotion_gate"] = gate
    ModelVersion.objects.filter(pk=model.pk).update(metrics=metrics)
    model.metrics = metrics


def _keep_ready(model: ModelVersion, reason: str) -> None:
    ModelVersion.objects.filter(pk=model.pk).update(status=ModelStatus.READY, status_reason=reason)


def model_promote(
    *, model: ModelVersion, by: AbstractBaseUser | None = None, reason: str = ""
) -> ModelVersion:
    """Make ``model`` the project's active model (the previous one retires) and re-route the
    queue: untouched queued items the new model is sure about leave the human queue."""
    if model.status not in (ModelStatus.READY, ModelStatus.RETIRED, ModelStatus.ACTIVE):
        raise ServiceError(
            f"Model v{model.version} is {model.status}; only a trained model can be promoted."
        )
    if model.temperature is None or not model.checkpoint_dir:
        raise ServiceError(f"Model v{model.version} has no calibrated checkpoint.")
    # A version trained before the label set changed would name the wrong labels.
    trained_on = (model.metrics or {}).get("class_names")
    mismatch = class_names_mismatch(model.project, trained_on) if trained_on else None
    if mismatch:
        raise ServiceError(f"Model v{model.version} cannot serve this project: {mismatch}.")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=model.project_id)
        ModelVersion.objects.filter(project=project, status=ModelStatus.ACTIVE).exclude(
            pk=model.pk
        ).update(status=ModelStatus.RETIRED)
        ModelVersion.objects.filter(pk=model.pk).update(
            status=ModelStatus.ACTIVE,
            promoted_at=timezone.now(),
            status_reason=reason or (f"promoted by {by}" if by else "promoted"),
        )
        project.active_model_id = model.pk
        # A new model starts with a clean audit record: pauses were about the old one.
        project.autolabel_paused = {}
        project.save(update_fields=["active_model", "autolabel_paused", "updated_at"])
        project_repredict(project=project)
    model.refresh_from_db()
    return model


def model_rollback(*, project: Project, by: AbstractBaseUser | None = None) -> ModelVersion:
    """Re-activate the most recently retired model (the one before the current)."""
    previous = (
        ModelVersion.objects.filter(
            project=project, status=ModelStatus.RETIRED, promoted_at__isnull=False
        )
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise ServiceError("There is no earlier model to roll back to.")
    return model_promote(
        model=previous, by=by, reason=f"rolled back by {by}" if by else "rolled back"
    )


def thresholds_refresh(*, project: Project) -> bool:
    """Certify the active model again on the evidence that arrived since (target mode) and, if
    its thresholds moved, re-route the waiting queue with them."""
    if project.threshold_mode != Project.ThresholdMode.TARGET:
        return False
    if not thresholds_recertify(project=project):
        return False
    project_repredict(project=project)
    return True


def thresholds_refresh_all() -> int:
    """:func:`thresholds_refresh` for every project; returns how many were re-routed."""
    return sum(
        thresholds_refresh(project=project)
        for project in Project.objects.select_related("active_model")
    )
