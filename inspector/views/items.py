"""Images are served through the app, after a membership check, never straight from storage."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_http_methods

from labeling.access import project_for_user
from labeling.models import Item


def serve_file(field, content_type: str) -> HttpResponse:
    response = FileResponse(field.open("rb"), content_type=content_type)
    # The content type is the one validated on ingest; never let the browser sniff another.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_http_methods(["GET"])
def item_image(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = project_for_user(request.user, slug)
    item = get_object_or_404(Item, project=project, pk=pk)
    return serve_file(item.image, item.content_type)


@login_required
@require_http_methods(["GET"])
def item_thumbnail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = project_for_user(request.user, slug)
    item = get_object_or_404(Item, project=project, pk=pk)
    return serve_file(
        item.thumbnail or item.image, "image/jpeg" if item.thumbnail else item.content_type
    )
