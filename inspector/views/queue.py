"""The inspector's page: one large image, label keys, and a prefetch buffer of leases.

The page itself is static; everything it does goes through the queue API
(``labeling.api.queue``), the same endpoints other clients use.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user

LABELERS = (Role.INSPECTOR, Role.ADMIN)
API_ENDPOINTS = {
    "next": "api-queue-next",
    "leases": "api-queue-leases",
    "answer": "api-queue-answer",
    "skip": "api-queue-skip",
    "undo": "api-queue-undo",
    "renew": "api-queue-renew",
    "me": "api-queue-me",
}


@login_required
@require_http_methods(["GET"])
def inspect(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=LABELERS)
    labels = list(project.labels.all())
    config = {
        "urls": {
            name: reverse(route, args=[project.slug]) for name, route in API_ENDPOINTS.items()
        },
        "labels": [
            {"name": label.name, "display": str(label), "key": label.key} for label in labels
        ],
    }
    return render(
        request, "inspect.html", {"project": project, "labels": labels, "inspect_config": config}
    )
