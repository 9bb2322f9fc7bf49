"""The admin's model page: versions with their metrics and promotion gate, training progress,
and the promote / roll back / start training actions."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.errors import ServiceError
from labeling.machine.model_import import model_import_upload
from labeling.machine.promotion import model_promote, model_rollback
from labeling.machine.training import training_start
from labeling.models import ModelStatus, ModelVersion

PROMOTABLE = (ModelStatus.READY, ModelStatus.RETIRED)


def _percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def _model_row(model: ModelVersion) -> dict:
    metrics = model.metrics or {}
    gate = metrics.get("promotion_gate") or {}
    per_class = [
        {
            "name": name,
            "precision": _percent(values.get("precision")),
            "recall": _percent(values.get("recall")),
            "support": values.get("support"),
        }
        for name, values in (metrics.get("per_class") or {}).items()
    ]
    return {
        "model": model,
        "accuracy": _percent(metrics.get("accuracy")),
        "macro_f1": _percent(metrics.get("macro_f1")),
        "ece": metrics.get("ece"),
        "coverage": _percent(metrics.get("coverage_at_target")),
        "target": metrics.get("target_precision"),
        "per_class": per_class,
        "gate": gate.get("decision"),
        "hyperparameters": json.dumps(model.hyperparameters, indent=2, sort_keys=True),
        "promotable": model.status in PROMOTABLE and model.temperature is not None,
    }


@login_required
@require_http_methods(["GET"])
def models(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    versions = list(ModelVersion.objects.filter(project=project).select_related("created_by"))
    can_roll_back = any(
        v.status == ModelStatus.RETIRED and v.promoted_at is not None for v in versions
    )
    return render(
        request,
        "models.html",
        {
            "project": project,
            "rows": [_model_row(v) for v in versions],
            "training": next((v for v in versions if v.status == ModelStatus.TRAINING), None),
            "can_roll_back": can_roll_back,
        },
    )


@login_required
@require_http_methods(["POST"])
def models_train(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    try:
        model = training_start(project=project, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Training of v{model.version} queued.")
    return redirect("models", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def models_promote(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    model = ModelVersion.objects.filter(project=project, version=version).first()
    if model is None:
        raise Http404("No such model version.")
    try:
        model_promote(model=model, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"v{model.version} is now the active model.")
    return redirect("models", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def models_rollback(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    try:
        model = model_rollback(project=project, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rolled back: v{model.version} is the active model again.")
    return redirect("models", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def models_import(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    archive = request.FILES.get("archive")
    if archive is None:
        messages.error(request, "Choose a checkpoint archive (.zip or .tar.gz) to import.")
        return redirect("models", slug=project.slug)
    try:
        model = model_import_upload(project=project, archive=archive, by=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Imported as v{model.version}; a worker is scoring it on held-out labels."
        )
    return redirect("models", slug=project.slug)
