"""Predict and route: run the active model on new images, save predictions, route each item.

Routing rule (DESIGN.md): an item is auto-labeled when its calibrated confidence reaches its
predicted class's accept threshold, unless that class is paused by the live audit or its review
credit falls between the two credit thresholds; otherwise it goes to the human queue. A random
``audit_rate`` share of would-be auto-labels goes to humans as well, to measure live precision.

Before any of that, a random ``calibration_share`` of new images goes to humans whatever the
model says (:func:`calibration_draw`): the unbiased sample thresholds are certified on
(``labeling.machine.certification``).
"""

import logging
import random

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labeling.answers import item_finalize
from labeling.costs import cost_record_predictions
from labeling.credits import credit_decide, credited_label
from labeling.dispatch import prediction_queue
from labeling.machine.certification import project_thresholds
from labeling.machine.predictors import class_names_mismatch, predictor_for
from labeling.models import (
    Assignment,
    GoldItem,
    Item,
    ItemSource,
    ItemStatus,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
)
from ml import thresholds as routing

logger = logging.getLogger(__name__)


def _image_bytes(item: Item) -> bytes:
    with item.image.open("rb") as fh:
        return fh.read()


def reroutable_items(project: Project):
    """Queued items no human has touched: a better model or a lower threshold may take them off
    the queue. The one definition of "untouched" (also used by the threshold preview)."""
    return (
        Item.objects.filter(
            project=project,
            status=ItemStatus.QUEUED,
            answer_count=0,
            is_audit=False,
            is_calibration=False,
        )
        .exclude(Exists(GoldItem.objects.filter(item=OuterRef("pk"))))
        .exclude(Exists(Assignment.objects.filter(item=OuterRef("pk"))))
    )


def calibration_draw(*, project: Project, rng: random.Random) -> bool:
    """The calibration-share hook: True sends a new image to humans whatever its confidence.
    The draw depends on nothing about the image, so the calibration items are a uniform random
    sample of the stream (the human queue is not: it holds what the model was unsure of)."""
    return rng.random() < project.calibration_share


def _queue_unrouted(item: Item, *, calibration: bool) -> bool:
    """No model to trust yet: to humans, blind to any confidence. False if it was not new."""
    return bool(
        Item.objects.filter(pk=item.pk, status=ItemStatus.NEW).update(
            status=ItemStatus.QUEUED, is_calibration=calibration, routed_blind=True
        )
    )


def _blind(item: Item, *, first_route: bool, thresholds) -> bool:
    """Whether the item's stay with humans still does not depend on any confidence: drawn for
    calibration, or routed (and every re-route so far) with no threshold in force."""
    no_threshold = all(t is None for t in thresholds)
    return item.is_calibration or ((first_route or item.routed_blind) and no_threshold)


def items_predict(
    *, item_ids: list[int], reroute: bool = False, rng: random.Random | None = None
) -> dict:
    """Predict and route a batch. Idempotent: only ``new`` items are predicted (or, with
    ``reroute``, untouched queued ones), each under its row lock, and the unique (item, model
    version) constraint means a repeated batch never predicts an item twice. Re-routing an item
    the active model already saw reuses its stored probabilities instead of running the model."""
    rng = rng or random.Random()
    counts = {"auto_labeled": 0, "queued": 0, "audit": 0, "failed": 0, "skipped": 0}
    items = list(
        Item.objects.filter(pk__in=item_ids).select_related("project__active_model").order_by("pk")
    )
    by_project: dict[int, list[Item]] = {}
    for item in items:
        by_project.setdefault(item.project_id, []).append(item)
    for group in by_project.values():
        project = group[0].project
        model = project.active_model
        if model is None or not model.is_calibrated or model.status != ModelVersion.Status.ACTIVE:
            # No model to trust yet: everything goes to humans.
            for item in group:
                queued = _queue_unrouted(
                    item, calibration=calibration_draw(project=project, rng=rng)
                )
                counts["queued" if queued else "skipped"] += 1
            continue
        stored = {
            p.item_id: p
            for p in Prediction.objects.filter(model_version=model, item__in=group).exclude(
                decision=PredictionDecision.FAILED
            )
        }
        fresh = [i for i in group if i.pk not in stored and (reroute or i.status == ItemStatus.NEW)]
        known = [i for i in group if i.pk in stored] if reroute else []
        counts["skipped"] += len(group) - len(fresh) - len(known)
        scored: list[tuple[Item, np.ndarray, Prediction | None]] = [
            (i, np.asarray(stored[i.pk].probabilities, dtype=float), stored[i.pk]) for i in known
        ]
        if fresh:
            probs, errors = _predict(project, model, fresh)
            for item in fresh:
                if item.pk in errors:
                    _record_failure(model, item, errors[item.pk])
                    counts["failed"] += 1
                else:
                    scored.append((item, probs[item.pk], None))
        if scored:
            _route_batch(project, model, scored, counts, rng, reroute=reroute)
    return counts


def _predict(project: Project, model: ModelVersion, items: list[Item]) -> tuple[dict, dict]:
    """Calibrated probabilities per item id, and the reason per item that could not be read."""
    predictor = predictor_for(model)
    mismatch = class_names_mismatch(project, predictor.class_names)
    if mismatch:
        raise RuntimeError(f"model v{model.version} cannot serve this project: {mismatch}")
    sources, readable, errors = [], [], {}
    for item in items:
        try:
            sources.append(_image_bytes(item))
            readable.append(item)
        except OSError as exc:
            errors[item.pk] = f"cannot read the stored image: {exc}"
    result = predictor.predict(sources, batch_size=settings.PREDICTION_BATCH_SIZE)
    probs = {}
    for index, item in enumerate(readable):
        if index in result.errors:
            errors[item.pk] = result.errors[index]
        else:
            probs[item.pk] = result.probs[index]
    return probs, errors


def _route_batch(project, model, scored, counts: dict, rng, *, reroute: bool) -> None:
    """Route every scored item in one transaction, each under its row lock, re-checking under
    the lock that it is still waiting for a machine decision."""
    labels = list(project.labels.all())
    thresholds = project_thresholds(project, model)
    untouched = set(
        reroutable_items(project)
        .filter(pk__in=[i.pk for i, _, _ in scored])
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        locked = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project")
            .in_bulk([i.pk for i, _, _ in scored])
        )
        new_predictions = []
        for item, probs, prediction in scored:
            current = locked.get(item.pk)
            waiting = current is not None and (
                current.status == ItemStatus.NEW or (reroute and current.pk in untouched)
            )
            if not waiting:
                counts["skipped"] += 1
                continue
            decision, label, confidence = _route_one(
                project, current, probs, labels, thresholds, rng
            )
            if prediction is None:
                new_predictions.append(
                    Prediction(
                        item=current,
                        model_version=model,
                        probabilities=[round(float(p), 6) for p in probs],
                        label=label,
                        confidence=confidence,
                        decision=decision,
                    )
                )
            elif prediction.decision != decision:
                Prediction.objects.filter(pk=prediction.pk).update(decision=decision)
            counts[decision] += 1
        Prediction.objects.bulk_create(new_predictions)
        cost_record_predictions(project=project, count=len(new_predictions))


def _route_one(project, item: Item, probs, labels, thresholds, rng) -> tuple[str, object, float]:
    """The routing rule for one item; applies it to the item and returns the decision."""
    label_index, confidence, auto = routing.route(probs, thresholds)
    label = labels[label_index]
    first_route = item.status == ItemStatus.NEW
    if first_route and calibration_draw(project=project, rng=rng):
        item.is_calibration = True
        auto = False
    item.routed_blind = _blind(item, first_route=first_route, thresholds=thresholds)
    credit_pending = False
    rule = credited_label(item)
    if rule is not None:
        credited = next((lab for lab in labels if lab.name == rule[1]), None)
        p_credit = float(probs[credited.position]) if credited else 0.0
        credit = credit_decide(item=item, source=ItemSource.MACHINE, probability=p_credit)
        credit_pending = credit is not None and credit.outcome == "pending"
    if auto and not credit_pending and rng.random() < project.audit_rate:
        decision = PredictionDecision.AUDIT
    elif auto and not credit_pending:
        decision = PredictionDecision.AUTO_LABELED
    else:
        decision = PredictionDecision.QUEUED
    item.prediction_error = ""
    if decision == PredictionDecision.AUTO_LABELED:
        item_finalize(item=item, label=label, source=ItemSource.MACHINE, confidence=confidence)
    else:
        item.status = ItemStatus.QUEUED
        item.is_audit = decision == PredictionDecision.AUDIT
        item.save(
            update_fields=[
                "status",
                "is_audit",
                "is_calibration",
                "routed_blind",
                "prediction_error",
                "updated_at",
            ]
        )
    return decision, label, confidence


def _record_failure(model: ModelVersion, item: Item, reason: str) -> None:
    logger.warning("Prediction failed for item %s: %s", item.pk, reason)
    with transaction.atomic():
        Prediction.objects.get_or_create(
            item=item,
            model_version=model,
            defaults={"decision": PredictionDecision.FAILED, "error": reason[:2000]},
        )
        Item.objects.filter(pk=item.pk).update(
            prediction_error=reason[:2000], updated_at=timezone.now()
        )
        # Humans can still judge it; the reason stays on the item for admins.
        Item.objects.filter(pk=item.pk, status=ItemStatus.NEW).update(status=ItemStatus.QUEUED)


def project_repredict(*, project: Project, all_untouched: bool = True) -> int:
    """Queue prediction of the project's untouched queued items (and any still new ones) with the
    active model, in batches. Returns the number of items queued for prediction."""
    new_ids = list(
        Item.objects.filter(project=project, status=ItemStatus.NEW).values_list("pk", flat=True)
    )
    queued_ids = (
        list(reroutable_items(project).values_list("pk", flat=True)) if all_untouched else []
    )
    prediction_queue(new_ids)
    prediction_queue(queued_ids, reroute=True)
    return len(new_ids) + len(queued_ids)
