"""The admin's model page: versions with their metrics and promotion gate, training progress,
and the promote / roll back / start training actions."""

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
# Hyperparameters in words, in the order a person reads them: what was chosen, then the search.
HYPERPARAMETERS = (
    ("learning_rate", "Learning rate"),
    ("trainable_blocks_chosen", "Blocks fine-tuned"),
    ("epochs_run", "Epochs run"),
    ("best_epoch", "Best epoch"),
    ("epochs_planned", "Epochs planned"),
    ("batch_size", "Batch size"),
    ("input_size", "Image size (px)"),
    ("weight_decay", "Weight decay"),
    ("label_smoothing", "Label smoothing"),
    ("drop_rate", "Dropout"),
    ("flip_augment", "Mirrored copies"),
    ("optimizer", "Optimizer"),
    ("val_fraction", "Held out for checking"),
    ("time_budget_s", "Time budget"),
    ("trainable_blocks", "Searched: blocks fine-tuned"),
    ("epochs", "Searched: epochs"),
    ("learning_rates", "Searched: learning rates"),
)


def _percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def _readable(key: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_readable(key, v) for v in value) or "–"
    if key == "val_fraction" and isinstance(value, int | float):
        return f"{100 * value:g}% of the labels"
    if key == "time_budget_s" and isinstance(value, int | float):
        return f"{value:g} s ({value / 60:.0f} min)" if value >= 120 else f"{value:g} s"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_readable(k, v)}" for k, v in value.items())
    return "–" if value is None else str(value)


def hyperparameter_rows(values: dict) -> list[tuple[str, str]]:
    """(name in words, value in words) for each hyperparameter, known ones first."""
    known = dict(HYPERPARAMETERS)
    rows = [
        (known[key], _readable(key, values[key])) for key, _ in HYPERPARAMETERS if key in values
    ]
    rows += [
        (key.replace("_", " ").capitalize(), _readable(key, value))
        for key, value in sorted(values.items())
        if key not in known
    ]
    return rows


def _model_row(model: ModelVersion, display: dict[str, str]) -> dict:
    metrics = model.metrics or {}
    gate = metrics.get("promotion_gate") or {}
    per_class = [
        {
            "name": display.get(name, name),
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
        "hyperparameters": hyperparameter_rows(model.hyperparameters or {}),
        "promotable": model.status in PROMOTABLE and model.temperature is not None,
    }


@login_required
@require_http_methods(["GET"])
def models(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    versions = list(ModelVersion.objects.filter(project=project).select_related("created_by"))
    display = {label.name: str(label) for label in project.labels.all()}
    can_roll_back = any(
        v.status == ModelStatus.RETIRED and v.promoted_at is not None for v in versions
    )
    return render(
        request,
        "models.html",
        {
            "project": project,
            "rows": [_model_row(v, display) for v in versions],
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
