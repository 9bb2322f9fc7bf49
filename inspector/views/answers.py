"""The Answers page: every raw answer of a project, filtered, paginated, and as CSV (for a shop's
own audits and agreement analyses). Rows and filters come from ``labeling.answer_export``, the
same as GET /api/projects/<slug>/answers/ and the ``export_answers`` command."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.answer_export import (
    STATES,
    AnswerFilters,
    answer_filters_parse,
    answer_inspectors,
    answer_row,
    answer_rows,
    answers_filter,
)
from labeling.csv_export import csv_lines
from labeling.errors import ServiceError

READERS = (Role.ADMIN, Role.MANAGER)
PAGE_SIZE = 100


@login_required
@require_http_methods(["GET"])
def answers(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=READERS)
    csv_wanted = request.GET.get("format") == "csv"
    error, filters = "", None
    try:
        filters = answer_filters_parse(request.GET)
    except ServiceError as exc:
        if csv_wanted:
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        error = exc.message
    if filters is not None and csv_wanted:
        rows = answer_rows(answers_filter(project=project, filters=filters))
        response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
        name = f"answers-{project.slug}-{timezone.localdate()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    page = None
    if filters is not None:
        found = answers_filter(project=project, filters=filters)
        page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
        page.rows = [answer_row(answer) for answer in page.object_list]
    query = (filters or AnswerFilters()).as_query()
    return render(
        request,
        "answers.html",
        {
            "project": project,
            "page": page,
            "error": error,
            "values": request.GET,
            "states": STATES,
            "labels": project.labels.all(),
            "inspectors": answer_inspectors(project=project),
            "query": urlencode(query),
            "csv_query": urlencode({**query, "format": "csv"}),
        },
        status=400 if error else 200,
    )
