"""Admin review pages: resolve disputed images, and see how far each inspector can be trusted."""

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.answers import item_resolve_expert
from labeling.crowd_checks import COLLUSION_MIN_OVERLAP, NEAR_CHANCE_MIN_ANSWERS
from labeling.errors import ServiceError
from labeling.models import Annotation, ItemStatus
from labeling.trust_report import floor_percent, inspector_trust_table

DISPUTED_PAGE_SIZE = 100


def _disputed_rows(project, labels) -> tuple[list[dict], int]:
    """The oldest disputed items with their current answers (who said what) and posterior."""
    disputed = project.items.filter(status=ItemStatus.DISPUTED).order_by("updated_at", "pk")
    total = disputed.count()
    items = list(disputed[:DISPUTED_PAGE_SIZE])
    # The answer that counts is the latest row of each inspector's chain, unless it is an undo
    # (as labeling.trust.current_answers does), fetched for the whole page in one query.
    latest: dict[int, dict[int, Annotation]] = defaultdict(dict)
    rows = (
        Annotation.objects.filter(item__in=items)
        .select_related("annotator", "label")
        .order_by("created_at", "id")
    )
    for row in rows:
        latest[row.item_id][row.annotator_id] = row
    result = []
    for item in items:
        posterior = item.posterior if item.posterior and len(item.posterior) == len(labels) else []
        result.append(
            {
                "item": item,
                "answers": [a for a in latest[item.pk].values() if a.label_id is not None],
                "posterior": [
                    {"label": label, "percent": round(100 * p, 1)}
                    for label, p in zip(labels, posterior, strict=True)
                ],
            }
        )
    return result, total


@login_required
@require_http_methods(["GET"])
def disputed(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    labels = list(project.labels.all())
    rows, total = _disputed_rows(project, labels)
    return render(
        request,
        "disputed.html",
        {"project": project, "labels": labels, "rows": rows, "total": total},
    )


@login_required
@require_http_methods(["POST"])
def disputed_resolve(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    label_name = request.POST.get("label", "")
    try:
        item = item_resolve_expert(
            item_id=item_id, project=project, label_name=label_name, user=request.user
        )
    except ServiceError as exc:
        messages.error(request, f"Image {item_id}: {exc.message}")
    else:
        messages.success(request, f"Image {item_id} is now labeled {item.final_label}.")
    return redirect("disputed", slug=project.slug)


@login_required
@require_http_methods(["GET"])
def inspectors(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    labels = list(project.labels.all())
    return render(
        request,
        "inspectors.html",
        {
            "project": project,
            "labels": labels,
            "rows": inspector_trust_table(project=project),
            "floor_percent": floor_percent(project),
            "min_answers": NEAR_CHANCE_MIN_ANSWERS,
            "min_overlap": COLLUSION_MIN_OVERLAP,
            "last_refit": project.consensus_state.get("last_refit"),
        },
    )
