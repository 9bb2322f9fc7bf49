"""Threshold tuning for admins: the risk-coverage curve of the active model, a preview of what a
setting would do to the waiting queue, and saving a setting (recorded, then the queue re-routed).

Two sources of evidence, shown side by side because they answer different questions:

- the **held-out** calibration set saved with the model (human labels it never trained on): what
  thresholds are derived from, with the Learn-then-Test guarantee (``ml.thresholds``);
- the **live audit**: auto-labels that were also sent to humans (``decision="audit"``), compared
  with the humans' final label. It measures the model on today's images, not last week's.

Saving a setting, and the record of who changed what, live in
``labeling.machine.threshold_changes``.

The preview counts the queued images a new setting would take off the human queue. Its expected
error count comes two ways: the sum of ``1 - calibrated confidence`` over those images (right when
the calibration is), and each class's auto-label count times its held-out error rate at that
threshold (right when today's images look like the held-out ones).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from labeling.credits import credit_machine_outcome, credited_label
from labeling.errors import ServiceError
from labeling.machine.audit import live_precision
from labeling.machine.certification import (
    HOLDOUT_SHARE,
    certified_record,
    derived_thresholds,
    evidence_scores,
)
from labeling.machine.evidence_report import calibration_cost, guarantee_curves

# reroutable_items is the one definition of an "untouched" queued item.
from labeling.machine.predict import reroutable_items
from labeling.machine.predictors import heldout_load
from labeling.machine.recalibration import routing_calibration, routing_probs
from labeling.models import (
    CreditOutcome,
    Item,
    ItemSource,
    ModelStatus,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
    ThresholdMode,
    ThresholdScope,
)
from ml import thresholds

# Enough points for a smooth line; a held-out set of thousands would make the page heavy.
CURVE_POINTS = 200


class ThresholdSettingsInvalid(ServiceError):
    """A threshold setting that cannot be saved; ``field`` names the offending input."""

    status, code = 400, "invalid_thresholds"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ThresholdSettings:
    """What an admin chooses: a target precision (and confidence, and what the guarantee is
    about: each class or all auto-labels) or per-class thresholds; and the calibration share."""

    mode: str
    target_precision: float
    threshold_confidence: float
    manual_thresholds: dict[str, float | None] = field(default_factory=dict)
    scope: str = ThresholdScope.PER_CLASS
    calibration_share: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def threshold_settings_current(project: Project) -> ThresholdSettings:
    return ThresholdSettings(
        mode=project.threshold_mode,
        target_precision=project.target_precision,
        threshold_confidence=project.threshold_confidence,
        manual_thresholds=dict(project.manual_thresholds or {}),
        scope=project.threshold_scope,
        calibration_share=project.calibration_share,
    )


def threshold_settings_clean(
    *,
    project: Project,
    mode: str | None = None,
    target_precision: float | None = None,
    threshold_confidence: float | None = None,
    manual_thresholds: dict[str, float | None] | None = None,
    scope: str | None = None,
    calibration_share: float | None = None,
) -> ThresholdSettings:
    """Validated settings; anything not given keeps the project's current value."""
    current = threshold_settings_current(project)
    mode = current.mode if mode is None else mode
    if mode not in ThresholdMode.values:
        raise ThresholdSettingsInvalid(
            f"Mode must be one of {', '.join(ThresholdMode.values)}.", field="mode"
        )
    scope = current.scope if scope is None else scope
    if scope not in ThresholdScope.values:
        raise ThresholdSettingsInvalid(
            f"Scope must be one of {', '.join(ThresholdScope.values)}.", field="scope"
        )
    share = current.calibration_share if calibration_share is None else calibration_share
    if not _is_number(share) or not 0 <= float(share) < 1:
        raise ThresholdSettingsInvalid(
            "The calibration share must be at least 0 and below 1 (e.g. 0.05 for 5 %).",
            field="calibration_share",
        )
    target = current.target_precision if target_precision is None else target_precision
    confidence = (
        current.threshold_confidence if threshold_confidence is None else threshold_confidence
    )
    for name, value in (("target_precision", target), ("threshold_confidence", confidence)):
        if not _is_number(value) or not 0 < float(value) < 1:
            raise ThresholdSettingsInvalid(
                f"{name.replace('_', ' ').capitalize()} must be between 0 and 1 (exclusive).",
                field=name,
            )
    manual = current.manual_thresholds if manual_thresholds is None else manual_thresholds
    names = project.label_names()
    unknown = sorted(set(manual) - set(names))
    if unknown:
        raise ThresholdSettingsInvalid(
            f"Unknown label {', '.join(unknown)}; the labels are {', '.join(names)}.",
            field="manual_thresholds",
        )
    cleaned: dict[str, float | None] = {}
    for name in names:
        if name not in manual:
            continue
        value = manual[name]
        if value is not None and (not _is_number(value) or not 0 <= float(value) <= 1):
            raise ThresholdSettingsInvalid(
                f"The threshold of {name} must be between 0 and 1, or empty (never auto-label).",
                field="manual_thresholds",
            )
        cleaned[name] = None if value is None else float(value)
    low = thresholds.below_floor(cleaned, float(target)) if mode == ThresholdMode.MANUAL else {}
    if low:
        listed = ", ".join(f"{name} ({value:g})" for name, value in low.items())
        raise ThresholdSettingsInvalid(
            f"Below the target precision {float(target):g}: {listed}. A calibrated confidence "
            "under the target precision is never an auto-label; raise these thresholds to the "
            "target or above, leave them empty (never auto-label), or lower the target.",
            field="manual_thresholds",
        )
    return ThresholdSettings(mode, float(target), float(confidence), cleaned, scope, float(share))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def active_model_of(project: Project) -> ModelVersion | None:
    model = project.active_model
    if model is None or model.status != ModelStatus.ACTIVE:
        return None
    return model


# --- per class thresholds --------------------------------------------------------------------


def effective_thresholds(
    project: Project, model: ModelVersion | None, chosen: ThresholdSettings
) -> dict[str, float | None]:
    """Per class name, the threshold routing would use with ``chosen`` (None: never
    auto-label): the same rule as ``labeling.machine.predictors.project_thresholds``."""
    names = project.label_names()
    if chosen.mode == ThresholdMode.MANUAL:
        values = {name: chosen.manual_thresholds.get(name) for name in names}
    elif model is None:
        values = dict.fromkeys(names)
    else:
        derived = derived_thresholds(
            project, model, chosen.target_precision, chosen.threshold_confidence, chosen.scope
        )
        values = {name: derived.get(name) for name in names}
    floored = thresholds.threshold_floor(list(values.values()), chosen.target_precision)
    paused = project.autolabel_paused or {}
    return {
        name: None if name in paused or project.shift_alert else value
        for name, value in zip(values, floored, strict=True)
    }


def threshold_classes(*, project: Project) -> list[dict]:
    """Per class, for the tuning page: derived threshold with its held-out support and reason,
    the manual value, the threshold in force, live audit precision and any pause."""
    model = active_model_of(project)
    labels = list(project.labels.all())
    current = threshold_settings_current(project)
    record = (
        certified_record(
            project, model, current.target_precision, current.threshold_confidence, current.scope
        )
        if model is not None
        else None
    )
    details = (record or {}).get("classes") or {}
    in_force = effective_thresholds(project, model, current)
    live = live_precision(project=project) if model is not None else {}
    paused = project.autolabel_paused or {}
    # The share of human labels held out (fixed per image), on which thresholds are proven.
    held_out_share = HOLDOUT_SHARE if model else None
    rows = []
    for label in labels:
        detail = details.get(label.name) or {}
        if model is None:
            reason = "no active model"
        elif not detail:
            reason = record.get("reason") or "no certification yet"
        else:
            reason = detail["reason"]
        rows.append(
            {
                "name": label.name,
                "display_name": str(label),
                "derived": (record or {}).get("per_class", {}).get(label.name),
                "support": detail.get("support", 0),
                "accepted": detail.get("accepted", 0),
                "errors": detail.get("errors", 0),
                "upper_bound": detail.get("upper_bound"),
                "reason": reason,
                "needed": detail.get("needed"),
                "needed_labels": _labels_for(detail.get("needed"), held_out_share),
                "held_out_percent": round(100 * held_out_share) if held_out_share else None,
                "manual": current.manual_thresholds.get(label.name),
                "in_force": in_force[label.name],
                "live": live.get(label.name),
                "paused": paused.get(label.name),
            }
        )
    return rows


def _labels_for(needed: int | None, held_out_share: float | None) -> int | None:
    """About how many more human labels of a class give ``needed`` more held-out ones."""
    if not needed or not held_out_share:
        return None
    return math.ceil(needed / float(held_out_share))


# --- the risk-coverage curve -----------------------------------------------------------------


def _thin(curve, limit: int = CURVE_POINTS) -> list[dict]:
    """Chart points (x coverage, y precision, t threshold, n accepted), at most ``limit``,
    always keeping both ends."""
    n = len(curve.thresholds)
    if n == 0:
        return []
    keep = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))
    return [
        {
            "x": round(float(curve.coverage[i]), 5),
            "y": round(float(curve.precision[i]), 5),
            "t": round(float(curve.thresholds[i]), 5),
            "n": int(curve.accepted[i]),
        }
        for i in keep
    ]


def _curves(probs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    overall, per_class = thresholds.risk_coverage_curve(probs, labels)
    predicted = np.bincount(probs.argmax(axis=1), minlength=len(names))
    return {
        "n": int(len(labels)),
        "overall": _thin(overall),
        "per_class": {
            name: {"n": int(predicted[c]), "points": _thin(per_class[c])}
            for c, name in enumerate(names)
        },
    }


def _audited(project: Project, model: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and human labels of the active model's audited auto-labels that humans
    have decided (consensus or expert)."""
    index = {label.pk: i for i, label in enumerate(project.labels.all())}
    rows = Prediction.objects.filter(
        model_version=model,
        decision=PredictionDecision.AUDIT,
        item__final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT),
    ).values_list("probabilities", "item__final_label_id")
    probs, labels = [], []
    for p, label_id in rows:
        if label_id in index and len(p) == len(index):
            probs.append(p)
            labels.append(index[label_id])
    k = len(index)
    return np.asarray(probs, dtype=np.float64).reshape(-1, k), np.asarray(labels, dtype=np.int64)


def threshold_curve(*, project: Project) -> dict:
    """Risk-coverage curves of the active model: precision of auto-labels against the share
    auto-labeled as one threshold moves, overall and per predicted class, on the evidence (the
    calibration sample thresholds are certified on), the held-out set and the decided audit
    sample; and the coverage each guarantee scope certifies on the evidence, target by target.
    Any of them is None when there is nothing to draw."""
    model = active_model_of(project)
    names = project.label_names()
    result = {
        "model": model.version if model else None,
        "evidence": None,
        "guarantee": None,
        "heldout": None,
        "audit": None,
        "calibration_fit": 0,
        "recalibrated_on": 0,
    }
    if model is None:
        return result
    scored = evidence_scores(project, model, predict_missing=False)
    # Evidence this model's calibration was fitted on, left out of its curves and certification.
    result["calibration_fit"] = scored["fitted"]
    if len(scored["labels"]) and scored["probs"].shape[1] == len(names):
        result["evidence"] = _curves(scored["probs"], scored["labels"], names)
        result["guarantee"] = guarantee_curves(project=project, model=model)
    # Every curve on the confidence the thresholds are compared with (the evidence's already is).
    remap = routing_calibration(model)
    result["recalibrated_on"] = (model.thresholds or {}).get("recalibrated_on", 0) if remap else 0
    heldout = heldout_load(model)
    if heldout is not None and heldout["probs"].shape[1] == len(names) and len(heldout["labels"]):
        probs = routing_probs(remap, heldout["probs"])
        result["heldout"] = _curves(probs, heldout["labels"], names)
    probs, labels = _audited(project, model)
    if len(labels):
        result["audit"] = _curves(routing_probs(remap, probs), labels, names)
    return result


# --- preview -----------------------------------------------------------------------------------


def _queued_predictions(project: Project, model: ModelVersion) -> list[Prediction]:
    """The active model's predictions of queued images no human has touched: exactly the items
    a save re-routes (``project_repredict``)."""
    rows = list(
        Prediction.objects.filter(model_version=model, item__in=reroutable_items(project))
        .exclude(decision=PredictionDecision.FAILED)
        .select_related("item")
        .only("probabilities", "item__id", "item__metadata", "item__project_id")
    )
    for row in rows:
        row.item.project = project  # credited_label reads the project's rules
    return rows


def _credit_pending(project: Project, item: Item, probs: np.ndarray, names: list[str]) -> bool:
    """Whether the item's review credit would wait for a human (between the two credit
    thresholds), which keeps it in the queue whatever the accept threshold says."""
    rule = credited_label(item)
    if rule is None:
        return False
    p = float(probs[names.index(rule[1])]) if rule[1] in names else 0.0
    outcome = credit_machine_outcome(
        probability=p,
        grant_at=project.credit_grant_threshold,
        deny_at=project.credit_deny_threshold,
    )
    return outcome == CreditOutcome.PENDING


def threshold_preview(
    *,
    project: Project,
    mode: str | None = None,
    target_precision: float | None = None,
    threshold_confidence: float | None = None,
    manual_thresholds: dict[str, float | None] | None = None,
    scope: str | None = None,
    calibration_share: float | None = None,
) -> dict:
    """What saving this setting would do now: how many queued images would be auto-labeled and
    how many errors to expect among them (see the module docstring for the two estimates)."""
    chosen = threshold_settings_clean(
        project=project,
        mode=mode,
        target_precision=target_precision,
        threshold_confidence=threshold_confidence,
        manual_thresholds=manual_thresholds,
        scope=scope,
        calibration_share=calibration_share,
    )
    model = active_model_of(project)
    names = project.label_names()
    per_threshold = effective_thresholds(project, model, chosen)
    result = {
        "settings": chosen.as_dict(),
        "model": model.version if model else None,
        "thresholds": per_threshold,
        "queued": 0,
        "auto_label": 0,
        "credit_pending": 0,
        "audit_rate": project.audit_rate,
        "calibration_cost": calibration_cost(project=project, share=chosen.calibration_share),
        "expected_errors_calibrated": 0.0,
        "expected_errors_heldout": None,
        "heldout": None,
        "per_class": [],
    }
    if model is None:
        return result
    values = [per_threshold[name] for name in names]
    rows = [r for r in _queued_predictions(project, model) if len(r.probabilities) == len(names)]
    probs = np.asarray([r.probabilities for r in rows], dtype=np.float64).reshape(-1, len(names))
    probs = routing_probs(routing_calibration(model), probs)  # as routing will read them
    predicted, confidence, accept = thresholds.route_batch(probs, values)
    pending = np.array(
        [_credit_pending(project, r.item, probs[i], names) for i, r in enumerate(rows)],
        dtype=bool,
    )
    auto = accept & ~pending
    heldout_precision = _heldout_precision(model, names, values)
    # Held-out estimate: each class's auto-labels times its held-out error rate; unknown when a
    # class auto-labels here but never did on the held-out set.
    expected_heldout: float | None = 0.0 if heldout_precision else None
    per_class = []
    for c, name in enumerate(names):
        in_class = auto & (predicted == c)
        n_auto = int(in_class.sum())
        precision = heldout_precision["per_class"][c] if heldout_precision else None
        if expected_heldout is not None and n_auto:
            expected_heldout = (
                None if precision is None else expected_heldout + n_auto * (1 - precision)
            )
        per_class.append(
            {
                "name": name,
                "threshold": per_threshold[name],
                "queued": int((predicted == c).sum()),
                "auto_label": n_auto,
                "expected_errors_calibrated": round(float((1 - confidence[in_class]).sum()), 3),
                "heldout_precision": precision,
                "heldout_coverage": (
                    heldout_precision["per_class_coverage"][c] if heldout_precision else None
                ),
            }
        )
    result.update(
        {
            "queued": len(rows),
            "auto_label": int(auto.sum()),
            "credit_pending": int((accept & pending).sum()),
            "expected_errors_calibrated": round(float((1 - confidence[auto]).sum()), 3),
            "expected_errors_heldout": (
                None if expected_heldout is None else round(expected_heldout, 3)
            ),
            "heldout": (
                {k: heldout_precision[k] for k in ("n", "coverage", "precision")}
                if heldout_precision
                else None
            ),
            "per_class": per_class,
        }
    )
    return result


def _heldout_precision(model: ModelVersion, names: list[str], values: list) -> dict | None:
    """Coverage and realised precision on the held-out set at ``values``, overall and per
    predicted class (None where a class auto-labels nothing there)."""
    heldout = heldout_load(model)
    if heldout is None or heldout["probs"].shape[1] != len(names) or not len(heldout["labels"]):
        return None
    probs = routing_probs(routing_calibration(model), heldout["probs"])
    outcome = thresholds.evaluate_thresholds(probs, heldout["labels"], values)
    return {
        "n": outcome.total,
        "coverage": round(outcome.coverage, 5),
        "precision": None if math.isnan(outcome.precision) else round(outcome.precision, 5),
        "per_class": [
            None if math.isnan(row["precision"]) else round(row["precision"], 5)
            for row in outcome.per_class
        ],
        "per_class_coverage": [round(row["coverage"], 5) for row in outcome.per_class],
    }
