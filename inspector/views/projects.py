from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import (
    Role,
    has_role,
    may_create_projects,
    project_for_user,
    projects_for_user,
)
from labeling.ingest import item_ingest
from labeling.metadata import (
    MetadataError,
    metadata_for_uploads,
    metadata_format_for,
    metadata_table_parse,
)
from labeling.models import ItemStatus


@login_required
@require_http_methods(["GET"])
def home(request: HttpRequest) -> HttpResponse:
    projects = projects_for_user(request.user).annotate(item_count=Count("items"))
    archived = projects_for_user(request.user, include_archived=True).filter(
        archived_at__isnull=False
    )
    return render(
        request,
        "home.html",
        {
            "projects": projects,
            "archived": archived,
            "may_create": may_create_projects(request.user),
        },
    )


@login_required
@require_http_methods(["GET"])
def project_home(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    counts = dict(
        project.items.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    status_rows = [(label, counts.get(value, 0)) for value, label in ItemStatus.choices]
    return render(
        request,
        "project.html",
        {
            "project": project,
            "status_rows": status_rows,
            "total": sum(counts.values()),
            "is_admin": has_role(request.user, Role.ADMIN, project=project),
            "can_inspect": has_role(request.user, Role.INSPECTOR, Role.ADMIN, project=project),
            "can_report": has_role(request.user, Role.MANAGER, Role.ADMIN, project=project),
            "disputed_count": counts.get(ItemStatus.DISPUTED, 0),
            "paused": project.autolabel_paused,
            "shift_alert": project.shift_alert,
            "recent": project.items.select_related("final_label")[:24],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN,))
    report = None
    if request.method == "POST":
        files = request.FILES.getlist("files")
        table = None
        try:
            sheet = request.FILES.get("metadata_file")
            if sheet:
                text = sheet.read().decode("utf-8-sig", errors="replace")
                table = metadata_table_parse(text, metadata_format_for(sheet.name))
            uploads = metadata_for_uploads(files, request.POST.get("metadata") or None, table)
        except MetadataError as exc:
            messages.error(request, f"Metadata: {exc}")
            return redirect("upload", slug=project.slug)
        if not uploads:
            messages.error(request, "Choose one or more images to upload.")
            return redirect("upload", slug=project.slug)
        report = item_ingest(project=project, uploads=uploads, uploader=request.user)
    return render(request, "upload.html", {"project": project, "report": report})
