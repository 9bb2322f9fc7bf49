"""Admins set up their own work: create a project (site admins), change its settings and label
set, archive or restore it. The form sends text; ``labeling.project_setup`` cleans it, the same
as for the API and the ``project`` command."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import Role, may_create_projects, project_for_user
from labeling.errors import ServiceError
from labeling.models import ModelStatus, Project
from labeling.project_settings import CHOICE_TYPES, MAX_LABELS, SETTINGS
from labeling.project_setup import project_archive, project_create, project_restore, project_update

ADMINS = (Role.ADMIN,)
# The form's sections, in order: (title, settings shown there).
SECTIONS = (
    ("Answers and consensus", ("min_answers", "max_answers", "consensus_target", "lease_seconds")),
    ("Checks", ("audit_rate", "gold_rate", "show_model_suggestion")),
    ("Auto-labeling", ("calibration_share", "threshold_scope")),
    ("Retraining", ("retrain_every", "train_on_machine_labels")),
    (
        "Costs",
        ("cost_mode", "price_per_answer", "hourly_rate", "machine_price_per_1000", "currency"),
    ),
    ("Credits", ("credit_grant_threshold", "credit_deny_threshold", "reuse_policy")),
)
TITLES = {
    "name": "Name",
    "description": "Description",
    "min_answers": "Min answers per image",
    "max_answers": "Max answers per image",
    "consensus_target": "Consensus target",
    "lease_seconds": "Lease (seconds)",
    "show_model_suggestion": "Show the model's suggestion",
    "audit_rate": "Audit rate",
    "gold_rate": "Gold rate",
    "retrain_every": "Retrain every … new labels",
    "cost_mode": "Pay inspectors",
    "price_per_answer": "Price per answer",
    "hourly_rate": "Hourly rate",
    "machine_price_per_1000": "Price per 1,000 predictions",
    "currency": "Currency",
    "credit_rules": "Credit rules",
    "credit_grant_threshold": "Grant at P ≥",
    "credit_deny_threshold": "Deny at P ≤",
    "reuse_policy": "Reused photos",
    "calibration_share": "Calibration share",
    "threshold_scope": "Precision promise",
    "train_on_machine_labels": "Train on audited auto-labels",
}
BLANK_LABEL_ROWS = 2
BLANK_RULE_ROWS = 2


def _form_settings(post: QueryDict) -> dict:
    """The settings the form sent, as text (booleans from their checkbox)."""
    values = {}
    for name, spec in SETTINGS.items():
        if spec.kind == "bool":
            values[name] = name in post
        elif spec.kind == "rules":
            types, labels = post.getlist("rule_type"), post.getlist("rule_label")
            values[name] = {
                kind.strip(): label.strip()
                for kind, label in zip(types, labels, strict=False)
                if kind.strip()
            }
        elif name in post:
            values[name] = post[name]
    return values


def _form_labels(post: QueryDict) -> list[dict]:
    names, displays, keys = (
        post.getlist("label_name"),
        post.getlist("label_display"),
        post.getlist("label_key"),
    )
    return [
        {"name": name, "display_name": display, "key": key}
        for name, display, key in zip(names, displays, keys, strict=False)
        if name.strip()
    ]


def _values_of(project: Project | None) -> dict:
    """What the form shows for a project (or the defaults for a new one), as text."""
    values = {}
    for name in SETTINGS:
        value = getattr(project, name) if project else Project._meta.get_field(name).get_default()
        values[name] = value
    return values


def _context(*, project: Project | None, values: dict, labels: list[dict], error=None) -> dict:
    rules = list((values.get("credit_rules") or {}).items())
    fields = {
        name: {
            "name": name,
            "title": TITLES[name],
            "help": spec.help,
            "kind": spec.kind,
            "value": values.get(name),
            "choices": CHOICE_TYPES[name].choices if name in CHOICE_TYPES else (),
        }
        for name, spec in SETTINGS.items()
    }
    active = project.active_model if project else None
    return {
        "project": project,
        "fields": fields,
        "sections": [(title, [fields[name] for name in names]) for title, names in SECTIONS],
        "labels": labels + [{"name": "", "display_name": "", "key": ""}] * BLANK_LABEL_ROWS,
        "rules": rules + [("", "")] * BLANK_RULE_ROWS,
        "max_labels": MAX_LABELS,
        "error": error,
        "active_model": active if active and active.status == ModelStatus.ACTIVE else None,
    }


def _error(exc: ServiceError) -> dict:
    return {"message": exc.message, "field": getattr(exc, "field", None)}


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest) -> HttpResponse:
    if not may_create_projects(request.user):
        raise PermissionDenied(
            "Only site admins may create projects. Ask one to create it for you, or to make you a "
            "site admin."
        )
    if request.method == "POST":
        labels = _form_labels(request.POST)
        values = _form_settings(request.POST)
        try:
            project = project_create(
                name=values.pop("name", ""),
                slug=request.POST.get("slug", "").strip(),
                labels=labels,
                by=request.user,
                **values,
            )
        except ServiceError as exc:
            values["name"] = request.POST.get("name", "")
            context = _context(project=None, values=values, labels=labels, error=_error(exc))
            context["slug"] = request.POST.get("slug", "")
            return render(request, "project_form.html", context, status=400)
        messages.success(request, f"{project.name} is ready. Add the people who will work on it.")
        return redirect("members", slug=project.slug)
    return render(
        request, "project_form.html", _context(project=None, values=_values_of(None), labels=[])
    )


def _labels_of(project: Project) -> list[dict]:
    return [
        {"name": label.name, "display_name": label.display_name, "key": label.key}
        for label in project.labels.all()
    ]


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    if request.method == "POST":
        labels = _form_labels(request.POST)
        values = _form_settings(request.POST)
        try:
            result = project_update(
                project=project,
                by=request.user,
                labels=labels,
                retire_model="retire_model" in request.POST,
                **values,
            )
        except ServiceError as exc:
            context = _context(project=project, values=values, labels=labels, error=_error(exc))
            return render(request, "project_form.html", context, status=400)
        (messages.success if result.changed else messages.info)(request, result.summary())
        return redirect("project-settings", slug=project.slug)
    context = _context(project=project, values=_values_of(project), labels=_labels_of(project))
    return render(request, "project_form.html", context)


@login_required
@require_http_methods(["POST"])
def project_archive_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    project_archive(project=project, by=request.user)
    messages.success(
        request,
        f"{project.name} is archived: it left the project lists and takes no new images or "
        "answers. Restore it here at any time.",
    )
    return redirect("project-settings", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def project_restore_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    project_restore(project=project, by=request.user)
    messages.success(request, f"{project.name} is active again.")
    return redirect("project-settings", slug=project.slug)
