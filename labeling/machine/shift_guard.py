"""Routing's guard against images unlike the ones the thresholds were certified on.

The thresholds' guarantee assumes that incoming images are exchangeable with the model's
held-out calibration images. The worker scores every image against the model's reference
(``ml.shift``: features and image statistics, a conformal p-value against the held-out images),
and this guard, called by ``labeling.machine.predict`` for each image in routing order:

* sends an **unusual** image (p-value ≤ ``SHIFT_ALPHA``) to humans whatever its confidence, and
  lets no machine credit decision stand on it;
* feeds every freshly predicted image to the project's **drift monitor**: a CUSUM on the share
  of images with p-value ≤ 0.1, "odd" ones (ordinary images: at most 10 %), which catches a
  strong shift within a few dozen images, and the **window test**, a rank test per window of
  ``SHIFT_WINDOW`` images against the held-out images drawn at random from the stream, which
  catches a mild one that moves every image a little (``ml.shift``). When either alarms, a
  shift alert is raised (project page, thresholds page, API), auto-labeling of the whole
  project stops until an admin resumes it, and every auto-label since the estimated start of
  the shift (the CUSUM's run, or the first image of the alarming window or of the run of
  suspicious windows, z ≤ -``LOOKBACK_Z``, just before it) goes back to humans with
  its credit reopened (``labeling.machine.recheck``). After the admin resumes, every class is
  audited at the raised rate until it has passed ``AUDIT_PROBATION`` audits
  (``labeling.machine.audit``).

The monitor's state lives on the project row (``shift_monitor``), updated under the row's lock
in the same transaction as the batch's routing, so concurrent batches count every image once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling.machine.recheck import autolabels_recheck
from labeling.models import ModelVersion, Project
from ml.shift import (
    Cusum,
    DriftState,
    WindowState,
    WindowTest,
    drift_update,
    window_suspicious,
    window_update,
)

logger = logging.getLogger(__name__)


def shift_settings(model: ModelVersion) -> dict | None:
    """The model's shift summary (``ml.shift.ShiftReference.summary``) or None without one."""
    summary = (model.metrics or {}).get("shift")
    return summary if isinstance(summary, dict) else None


class ShiftGuard:
    """One routed batch's view of the project's shift state (opened under the project's lock)."""

    def __init__(self, project: Project, model: ModelVersion) -> None:
        self.project = project
        self.model = model
        summary = shift_settings(model) or {}
        self.alpha = float(summary.get("alpha") or settings.SHIFT_ALPHA)
        self.drift_level = float(summary.get("drift_level") or self.alpha)
        cusum = summary.get("cusum")
        self.cusum = Cusum(**cusum) if cusum else None
        window = summary.get("window")
        self.window = WindowTest(**window) if window else None
        monitor = project.shift_monitor or {}
        if monitor.get("model_version") != model.pk:
            monitor = {"model_version": model.pk}
        self.monitor = monitor
        self.state = DriftState.from_dict(monitor.get("state"))
        self.window_state = WindowState.from_dict(monitor.get("window"))
        self.alarm: dict | None = None

    @property
    def paused(self) -> bool:
        """A shift alert stands: nothing is auto-labeled until an admin resumes."""
        return bool(self.project.shift_alert) or self.alarm is not None

    def unusual(self, pvalue: float | None) -> bool:
        return pvalue is not None and pvalue <= self.alpha

    def to_humans(
        self,
        pvalue: float | None,
        *,
        fresh: bool,
        window: tuple[float, float] | None = None,
    ) -> bool:
        """Whether this image must go to humans whatever its confidence. ``fresh``: routed for
        the first time (re-routed images were counted when first routed, and a re-routed queue
        is the images an earlier model was unsure of, not a random part of the stream).
        ``window``: its two p-values for the window test (``ml.shift.ShiftScores
        .window_pvalues``)."""
        flagged = self.unusual(pvalue)
        if fresh and pvalue is not None and self.cusum is not None and not self.paused:
            if self.state.statistic <= 0.0:
                # A new run may start here: remember when, for the look-back if it alarms.
                self.monitor["run_started_at"] = timezone.now().isoformat()
            if drift_update(self.state, pvalue <= self.drift_level, self.cusum):
                self.alarm = self._alert()
        if fresh and window is not None and self.window is not None and not self.paused:
            if self.window_state.count == 0:
                self.monitor["window_started_at"] = timezone.now().isoformat()
            alarmed = window_update(self.window_state, window, self.window)
            if self.window_state.count == 0:  # a window closed: extend or end the suspect run
                if window_suspicious(self.window_state.last):
                    self.monitor.setdefault("suspect_since", self.monitor.get("window_started_at"))
                else:
                    self.monitor.pop("suspect_since", None)
            if alarmed:
                self.alarm = self._window_alert()
        return flagged or self.paused

    def _alert(self) -> dict:
        state = self.state
        run = state.seen - state.run_start
        return {
            "raised_at": timezone.now().isoformat(timespec="seconds"),
            "detector": "cusum",
            "model_version": self.model.version,
            "images_seen": state.seen,
            "run_images": run,
            "run_odd": state.run_flagged,
            "expected_rate": round(self.drift_level, 4),
            "run_rate": round(state.run_flagged / max(run, 1), 4),
            "run_started_at": self.monitor.get("run_started_at"),
            "message": (
                f"{state.run_flagged} of the last {run} images looked unlike model "
                f"v{self.model.version}'s calibration images (about {self.drift_level:.0%} of "
                "ordinary ones do): incoming images no longer look like the ones its thresholds "
                "were certified on. Auto-labeling is paused until an admin resumes it."
            ),
        }

    def _window_alert(self) -> dict:
        last = self.window_state.last or {}
        signals = [
            name
            for name, key in (
                ("the model's features", "feature_z"),
                ("image statistics", "image_z"),
            )
            if last.get(key, 0.0) <= last.get("level", 0.0)
        ]
        return {
            "raised_at": timezone.now().isoformat(timespec="seconds"),
            "detector": "window",
            "model_version": self.model.version,
            "images_seen": self.state.seen,
            "run_images": last.get("images"),
            "window": last,
            # The alarming window and the run of suspicious windows just before it, if any.
            "run_started_at": self.monitor.get("suspect_since")
            or self.monitor.get("window_started_at"),
            "message": (
                f"The last {last.get('images')} images were, as a group, less like model "
                f"v{self.model.version}'s calibration images than ordinary images are "
                f"(in {' and '.join(signals)}; rank test z = "
                f"{min(last.get('feature_z', 0.0), last.get('image_z', 0.0)):.1f}, alarm at "
                f"{last.get('level', 0.0):.1f}): a mild but real change in how photos arrive, "
                "which its thresholds were not certified on. Auto-labeling is paused until an "
                "admin resumes it."
            ),
        }

    def close(self) -> dict | None:
        """Save the monitor; on an alarm, raise the alert and send the auto-labels since the
        shift began back to humans. Call after the batch's predictions are saved."""
        self.monitor["state"] = self.state.as_dict()
        self.monitor["window"] = self.window_state.as_dict()
        fields = ["shift_monitor", "updated_at"]
        self.project.shift_monitor = self.monitor
        if self.alarm is not None:
            since = datetime.fromisoformat(self.alarm["run_started_at"])
            recheck = autolabels_recheck(
                project=self.project,
                model_version_id=self.model.pk,
                since=since,
                reason="a shift alarm: incoming images stopped looking like the calibration images",
            )
            self.alarm.update(recheck)
            self.project.shift_alert = self.alarm
            fields.append("shift_alert")
            logger.warning("Shift alert in %s: %s", self.project.slug, self.alarm["message"])
        self.project.save(update_fields=fields)
        return self.alarm


def shift_guard_open(*, project: Project, model: ModelVersion) -> ShiftGuard:
    """Lock the project's row (the caller's transaction) and open the batch's guard."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    return ShiftGuard(locked, model)


def shift_resume(*, project: Project) -> dict:
    """An admin resumes auto-labeling after a shift alert: the monitor restarts, and every class
    is audited at the raised rate until it has passed ``AUDIT_PROBATION`` audits."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        alert = dict(locked.shift_alert or {})
        locked.shift_alert = {}
        locked.shift_monitor = {}
        state = dict(locked.audit_state or {})
        state["probation_since"] = timezone.now().isoformat()
        locked.audit_state = state
        locked.save(update_fields=["shift_alert", "shift_monitor", "audit_state", "updated_at"])
    return alert
