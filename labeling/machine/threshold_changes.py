"""Saving a threshold setting: record who changed what (``ThresholdChange``), then re-route the
waiting queue with it. Also resuming a class the live audit paused or the whole project after a
shift alert, and the change history.

The setting itself (validation, the effective per-class thresholds) is
``labeling.machine.threshold_tuning``'s.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeling.errors import ServiceError
from labeling.machine.audit import autolabel_resume
from labeling.machine.certification import model_certify
from labeling.machine.predict import project_repredict
from labeling.machine.shift_guard import shift_resume, shift_settings
from labeling.machine.threshold_tuning import (
    active_model_of,
    effective_thresholds,
    threshold_classes,
    threshold_settings_clean,
    threshold_settings_current,
)
from labeling.models import Project, ThresholdChange, ThresholdMode
from ml.shift import MIN_WINDOW_CALIBRATION

RECENT_CHANGES = 10


def _snapshot(project: Project) -> dict:
    return {
        **threshold_settings_current(project).as_dict(),
        "thresholds": effective_thresholds(
            project, active_model_of(project), threshold_settings_current(project)
        ),
        "paused": sorted(project.autolabel_paused or {}),
        "shift_alert": bool(project.shift_alert),
    }


def _queue_reroute(project: Project) -> int:
    """Send the untouched queued images through routing again with the project's thresholds
    (the worker re-routes from the active model's stored probabilities; no image is re-run)."""
    return project_repredict(project=project)


def thresholds_save(
    *,
    project: Project,
    by: AbstractBaseUser | None,
    mode: str | None = None,
    target_precision: float | None = None,
    threshold_confidence: float | None = None,
    manual_thresholds: dict[str, float | None] | None = None,
    scope: str | None = None,
    calibration_share: float | None = None,
) -> tuple[ThresholdChange | None, int]:
    """Save a threshold setting, record who changed what, and re-route the waiting queue with
    it. Returns the change (None when nothing changed) and how many images go back through
    routing."""
    chosen = threshold_settings_clean(
        project=project,
        mode=mode,
        target_precision=target_precision,
        threshold_confidence=threshold_confidence,
        manual_thresholds=manual_thresholds,
        scope=scope,
        calibration_share=calibration_share,
    )
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if threshold_settings_current(locked) == chosen:
            return None, 0
        before = _snapshot(locked)
        locked.threshold_mode = chosen.mode
        locked.target_precision = chosen.target_precision
        locked.threshold_confidence = chosen.threshold_confidence
        locked.manual_thresholds = chosen.manual_thresholds
        locked.threshold_scope = chosen.scope
        locked.calibration_share = chosen.calibration_share
        locked.save(
            update_fields=[
                "threshold_mode",
                "target_precision",
                "threshold_confidence",
                "manual_thresholds",
                "threshold_scope",
                "calibration_share",
                "updated_at",
            ]
        )
        model = active_model_of(locked)
        if model is not None and chosen.mode == ThresholdMode.TARGET:
            # Store the certification at the new setting, so routing reads it instead of
            # computing it for every batch (the worker re-certifies with fresh evidence later).
            model_certify(project=locked, model=model, predict_missing=False)
        change = ThresholdChange.objects.create(
            project=locked, changed_by=_user(by), before=before, after=_snapshot(locked)
        )
        rerouted = _queue_reroute(locked)
    project.refresh_from_db()
    return change, rerouted


def threshold_resume(
    *, project: Project, by: AbstractBaseUser | None, label_name: str
) -> tuple[ThresholdChange, int]:
    """Resume auto-labeling of a class the live audit paused, record it, and re-route."""
    if label_name not in (project.autolabel_paused or {}):
        raise ServiceError(f"Auto-labeling of {label_name or '(none)'} is not paused.")
    with transaction.atomic():
        before = _snapshot(project)
        autolabel_resume(project=project, label_name=label_name)
        project.refresh_from_db()
        change = ThresholdChange.objects.create(
            project=project, changed_by=_user(by), before=before, after=_snapshot(project)
        )
        rerouted = _queue_reroute(project)
    return change, rerouted


def threshold_shift_resume(
    *, project: Project, by: AbstractBaseUser | None
) -> tuple[ThresholdChange, int]:
    """Resume auto-labeling after a shift alert, record it, and re-route the waiting queue. The
    drift monitor restarts, and every class is audited at the raised rate for a while."""
    if not project.shift_alert:
        raise ServiceError("There is no shift alert to resume from.")
    with transaction.atomic():
        before = _snapshot(project)
        shift_resume(project=project)
        project.refresh_from_db()
        change = ThresholdChange.objects.create(
            project=project, changed_by=_user(by), before=before, after=_snapshot(project)
        )
        rerouted = _queue_reroute(project)
    return change, rerouted


def shift_status(*, project: Project) -> dict:
    """The shift check as the pages and the API show it: the alert (empty when none), the
    model's level and drift alarm, and the monitor's count so far."""
    model = active_model_of(project)
    summary = shift_settings(model) if model is not None else None
    monitor = project.shift_monitor or {}
    state = monitor.get("state") or {}
    current = model is not None and monitor.get("model_version") == model.pk
    return {
        "alert": project.shift_alert or None,
        "checking": bool(summary and summary.get("cusum")),
        "alpha": summary.get("alpha") if summary else None,
        "calibration_items": summary.get("calibration_items") if summary else None,
        "images_seen": state.get("seen", 0) if current else 0,
        "unusual": state.get("flagged", 0) if current else 0,
        # The window test (ml.shift): its size and level, the random held-out images it
        # compares with, and the last window's statistics.
        "window": summary.get("window") if summary else None,
        "random_calibration_items": summary.get("random_calibration_items") if summary else None,
        "window_short": bool(summary and summary.get("window_size") and not summary.get("window")),
        "window_needs": MIN_WINDOW_CALIBRATION,
        "window_last": (monitor.get("window") or {}).get("last") if current else None,
    }


def _user(by: AbstractBaseUser | None):
    return by if by is not None and by.is_authenticated else None


def threshold_changes_recent(*, project: Project, limit: int = RECENT_CHANGES) -> list[dict]:
    """The latest changes, each with a short list of what differs, for the page and the API."""
    changes = ThresholdChange.objects.filter(project=project).select_related("changed_by")
    return [
        {
            "at": change.created_at,
            "by": change.changed_by.get_username() if change.changed_by else None,
            "before": change.before,
            "after": change.after,
            "summary": change_summary(change.before, change.after),
        }
        for change in changes[:limit]
    ]


def change_summary(before: dict, after: dict) -> list[str]:
    """What differs between two snapshots, in words."""
    lines = []
    for key, title in (
        ("mode", "mode"),
        ("target_precision", "target precision"),
        ("threshold_confidence", "confidence"),
        ("scope", "scope"),
        ("calibration_share", "calibration share"),
    ):
        if before.get(key) != after.get(key):
            lines.append(f"{title} {before.get(key)} → {after.get(key)}")
    old, new = before.get("thresholds") or {}, after.get("thresholds") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            lines.append(f"{name} {_fmt(old.get(name))} → {_fmt(new.get(name))}")
    resumed = sorted(set(before.get("paused", [])) - set(after.get("paused", [])))
    if resumed:
        lines.append(f"resumed {', '.join(resumed)}")
    if before.get("shift_alert") and not after.get("shift_alert"):
        lines.append("resumed after a shift alert")
    return lines or ["no effective change"]


def _fmt(value) -> str:
    return "never" if value is None else f"{value:.4g}"


def threshold_state(*, project: Project) -> dict:
    """The project's setting, per-class thresholds and recent changes (the API's GET)."""
    return {
        **threshold_settings_current(project).as_dict(),
        "model": project.active_model.version if active_model_of(project) else None,
        "classes": threshold_classes(project=project),
        "changes": threshold_changes_recent(project=project),
        "shift": shift_status(project=project),
    }
