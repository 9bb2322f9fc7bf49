"""The admin's threshold tuning page: the risk-coverage curve, per-class thresholds, a live
preview (the page's JS asks the API) and saving, which records the change and re-routes."""

import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.errors import ServiceError
from labeling.machine.evidence_report import calibration_cost, evidence_summary
from labeling.machine.threshold_changes import (
    shift_status,
    threshold_changes_recent,
    threshold_resume,
    threshold_shift_resume,
    thresholds_save,
)
from labeling.machine.threshold_tuning import (
    threshold_classes,
    threshold_curve,
    threshold_preview,
)


def _number(raw: str | None, what: str) -> float | None:
    """A form field as a float; empty means None. Refuses text and NaN with a message."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ServiceError(f"{what} must be a number, not {raw!r}.") from None
    if not math.isfinite(value):
        raise ServiceError(f"{what} must be a number, not {raw!r}.")
    return value


def _settings_from_form(request: HttpRequest, names: list[str]) -> dict:
    manual = {}
    for name in names:
        manual[name] = _number(request.POST.get(f"manual_{name}"), f"The threshold of {name}")
    return {
        "mode": request.POST.get("mode") or None,
        "target_precision": _number(request.POST.get("target_precision"), "Target precision"),
        "threshold_confidence": _number(request.POST.get("threshold_confidence"), "Confidence"),
        "manual_thresholds": manual,
        "scope": request.POST.get("scope") or None,
        "calibration_share": _number(request.POST.get("calibration_share"), "Calibration share"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def thresholds(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    if request.method == "POST":
        try:
            chosen = _settings_from_form(request, project.label_names())
            change, rerouted = thresholds_save(project=project, by=request.user, **chosen)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            if change is None:
                messages.info(request, "Nothing changed.")
            else:
                messages.success(
                    request,
                    f"Thresholds saved; {rerouted} waiting image(s) are being routed again.",
                )
        return redirect("thresholds", slug=project.slug)
    return render(
        request,
        "thresholds.html",
        {
            "project": project,
            "model": project.active_model if project.active_model_id else None,
            "curve": threshold_curve(project=project),
            "classes": threshold_classes(project=project),
            "preview": threshold_preview(project=project),
            "changes": threshold_changes_recent(project=project),
            "shift": shift_status(project=project),
            "calibration": {
                "cost": calibration_cost(project=project),
                "summary": evidence_summary(project=project),
            },
        },
    )


@login_required
@require_http_methods(["POST"])
def thresholds_resume(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    label_name = request.POST.get("label", "")
    try:
        _change, rerouted = threshold_resume(
            project=project, by=request.user, label_name=label_name
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Auto-labeling of {label_name} resumed; {rerouted} waiting image(s) are being "
            "routed again.",
        )
    return redirect("thresholds", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def thresholds_resume_shift(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    try:
        _change, rerouted = threshold_shift_resume(project=project, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Auto-labeling resumed after the shift alert; {rerouted} waiting image(s) are being "
            "routed again, and every class is audited more for a while.",
        )
    return redirect("thresholds", slug=project.slug)
