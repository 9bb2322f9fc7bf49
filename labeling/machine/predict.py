"""Predict and route: run the active model on new images, save predictions, route each item.

Routing rule (DESIGN.md): an item is auto-labeled when its calibrated confidence reaches its
predicted class's accept threshold, unless that class is paused by the live audit or its review
credit falls between the two credit thresholds; otherwise it goes to the human queue. A random
``audit_rate`` share of would-be auto-labels goes to humans as well, to measure live precision
(more of a suspect class: ``labeling.machine.audit.audit_rates``); calibration draws among them
count towards that share. The shift guard (``labeling.machine.shift_guard``) sends images unlike
the model's calibration images to humans and pauses the project on a sustained shift.

Before any of that, a random ``calibration_share`` of new images goes to humans whatever the
model says (:func:`calibration_draw`): the unbiased sample thresholds are certified on
(``labeling.machine.certification``).
"""

import logging
import random

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from labeling.answers import item_finalize
from labeling.costs import cost_record_predictions
from labeling.credits import credit_decide, credited_label
from labeling.dispatch import prediction_queue
from labeling.embeddings.prototypes import model_labels
from labeling.embeddings.record import BatchEmbeddings, batch_embeddings_record
from labeling.machine.audit import audit_rates, audit_top_up_rate
from labeling.machine.certification import project_thresholds
from labeling.machine.predictors import class_names_mismatch, predictor_for
from labeling.machine.recalibration import routing_calibration, routing_probs
from labeling.machine.shift_guard import shift_guard_open
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
from ml.embeddings import normalize as unit_vectors

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
        # Sent to humans on purpose (unusual images, auto-labels taken back): they stay there.
        .exclude(
            Exists(
                Prediction.objects.filter(item=OuterRef("pk")).filter(
                    Q(unusual=True) | Q(decision=PredictionDecision.RECHECK)
                )
            )
        )
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
    counts = {
        "auto_labeled": 0,
        "queued": 0,
        "audit": 0,
        "failed": 0,
        "skipped": 0,
        "unusual": 0,
    }
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
            # No model to trust yet: everything goes to humans (embedded by the ImageNet
            # backbone on the way, for reused-photo checks and similar-image search).
            _embed_without_model(project, [i for i in group if i.status == ItemStatus.NEW])
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
        embedded = BatchEmbeddings()
        pvalues = {i.pk: stored[i.pk].shift_pvalue for i in known}
        window_pvalues: dict = {}
        if fresh:
            probs, errors, fresh_pvalues, window_pvalues, embedded = _predict(project, model, fresh)
            pvalues.update(fresh_pvalues)
            for item in fresh:
                if item.pk in errors:
                    _record_failure(model, item, errors[item.pk])
                    counts["failed"] += 1
                else:
                    scored.append((item, probs[item.pk], None))
        if scored:
            _route_batch(
                project,
                model,
                scored,
                counts,
                rng,
                reroute=reroute,
                pvalues=pvalues,
                window_pvalues=window_pvalues,
                embedded=embedded,
            )
    return counts


def _embed_without_model(project: Project, items: list[Item]) -> None:
    sources, readable = [], []
    for item in items:
        try:
            sources.append(_image_bytes(item))
            readable.append(item)
        except OSError:
            continue  # the prediction step records unreadable images; nothing to embed here
    batch_embeddings_record(project=project, model=None, items=readable, sources=sources)


def _predict(
    project: Project, model: ModelVersion, items: list[Item]
) -> tuple[dict, dict, dict, dict, BatchEmbeddings]:
    """Calibrated probabilities per item id, the reason per item that could not be read, per
    item id how usual the image is for the model (``ml.shift`` p-value; None without a
    reference) and its two p-values for the window test (``ml.shift.ShiftScores
    .window_pvalues``), and the embedding step's result: all from the same forward pass."""
    predictor = predictor_for(model)
    # Labels that a prototype covers and the model was not trained on are not the model's.
    labels = model_labels(project, predictor.class_names)
    mismatch = class_names_mismatch(project, predictor.class_names, labels=labels)
    if mismatch:
        raise RuntimeError(f"model v{model.version} cannot serve this project: {mismatch}")
    sources, readable, errors = [], [], {}
    for item in items:
        try:
            sources.append(_image_bytes(item))
            readable.append(item)
        except OSError as exc:
            errors[item.pk] = f"cannot read the stored image: {exc}"
    result = predictor.score(sources, batch_size=settings.PREDICTION_BATCH_SIZE)
    shift = predictor.shift_scores(result)
    probs, pvalues, window_pvalues = {}, {}, {}
    for index, item in enumerate(readable):
        if index in result.errors:
            errors[item.pk] = result.errors[index]
        else:
            probs[item.pk] = result.probs[index]
            pvalues[item.pk] = None if shift is None else float(shift.pvalue[index])
            window_pvalues[item.pk] = None if shift is None else shift.window_pvalues(index)
    embedded = batch_embeddings_record(
        project=project,
        model=model,
        items=readable,
        sources=sources,
        vectors=unit_vectors(result.features),
    )
    return probs, errors, pvalues, window_pvalues, embedded


def _route_batch(
    project,
    model,
    scored,
    counts: dict,
    rng,
    *,
    reroute: bool,
    pvalues: dict,
    window_pvalues: dict,
    embedded: BatchEmbeddings,
) -> None:
    """Route every scored item in one transaction, each under its row lock, re-checking under
    the lock that it is still waiting for a machine decision."""
    labels = model_labels(project, (model.metrics or {}).get("class_names") or [])
    thresholds = project_thresholds(project, model)
    # The thresholds were certified on the confidence as the project's evidence calibrated it;
    # predictions keep the model's own probabilities.
    remap = routing_calibration(model)
    rates = audit_rates(project=project, model_version_id=model.pk)
    untouched = set(
        reroutable_items(project)
        .filter(pk__in=[i.pk for i, _, _ in scored])
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        # The shift guard first: it locks the project's row (always before items' rows).
        guard = shift_guard_open(project=project, model=model)
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
            pvalue = pvalues.get(current.pk)
            # Only an image's first routing feeds the drift monitors: a queued image re-routed
            # by a newly promoted model is one the last model was unsure of, not a random draw
            # from the stream (the window test alarmed on those in the loop).
            to_humans = guard.to_humans(
                pvalue,
                fresh=prediction is None and current.status == ItemStatus.NEW,
                window=window_pvalues.get(current.pk),
            )
            decision, label, confidence = _route_one(
                project,
                current,
                routing_probs(remap, probs),
                labels,
                thresholds,
                rng,
                embedded.prototype_routes.get(current.pk),
                to_humans=to_humans,
                rates=rates,
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
                        shift_pvalue=pvalue,
                        unusual=guard.unusual(pvalue),
                    )
                )
            elif prediction.decision != decision or _moved(prediction.confidence, confidence):
                Prediction.objects.filter(pk=prediction.pk).update(
                    decision=decision, confidence=confidence
                )
            counts[decision] += 1
            counts["unusual"] += int(guard.unusual(pvalue))
        Prediction.objects.bulk_create(new_predictions)
        cost_record_predictions(project=project, count=len(new_predictions))
        guard.close()


def _moved(stored: float | None, now: float) -> bool:
    """Whether a re-route's confidence differs from the stored one: it moves with the evidence's
    calibration (stored probabilities are rounded to 6 places, so smaller differences are not
    moves, and re-routes need not rewrite every row)."""
    return stored is None or abs(stored - now) > 1e-6


def _route_one(
    project,
    item: Item,
    probs,
    labels,
    thresholds,
    rng,
    prototype=None,
    *,
    to_humans: bool,
    rates: dict,
) -> tuple[str, object, float]:
    """The routing rule for one item; applies it to the item and returns the decision.
    ``prototype``: a prototype class's say (labeling.embeddings.prototypes), which overrides
    the model: accept labels the item with that class, maybe sends it to humans.
    ``to_humans``: the shift guard's verdict (an unusual image, or a shift alert standing)."""
    label_index, confidence, auto = routing.route(probs, thresholds)
    label = labels[label_index]
    if prototype is not None:
        auto = prototype.decision == "accept"
        label = prototype.label
        confidence = 1.0 - prototype.distance if prototype.distance is not None else 0.0
    first_route = item.status == ItemStatus.NEW
    drawn = first_route and calibration_draw(project=project, rng=rng)
    would_auto = auto and not to_humans
    if drawn:
        item.is_calibration = True
        auto = False
    item.routed_blind = _blind(item, first_route=first_route, thresholds=thresholds)
    credit_pending = False
    rule = credited_label(item)
    if rule is not None and to_humans:
        # The model's probabilities say nothing reliable about an unusual image: a human decides.
        credit_decide(item=item, source="", label_name=None)
        credit_pending = True
    elif rule is not None:
        credited = next((lab for lab in labels if lab.name == rule[1]), None)
        p_credit = float(probs[labels.index(credited)]) if credited in labels else 0.0
        if prototype is not None:
            p_credit = 1.0 if auto and label.name == rule[1] else (0.0 if auto else 0.5)
        credit = credit_decide(item=item, source=ItemSource.MACHINE, probability=p_credit)
        # A reused photo's credit waits for an admin's look at the pair, not for inspectors.
        credit_pending = credit is not None and credit.outcome == "pending" and not item.reused
    auto = auto and not to_humans
    if drawn and would_auto and not credit_pending:
        # The calibration draw ignored the image, so among would-be auto-labels it is a uniform
        # draw too: the same human answer is the live audit's sample (audit_top_up_rate).
        decision = PredictionDecision.AUDIT
    elif (
        auto
        and not credit_pending
        and rng.random()
        < audit_top_up_rate(
            rates.get(label.name, project.audit_rate),
            project.calibration_share if first_route else 0.0,
        )
    ):
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
