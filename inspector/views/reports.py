"""Manager pages: what labeling cost and saved, and the credit decisions table (with CSV)."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.credit_report import (
    CreditFilters,
    credit_decisions_filter,
    credit_filters_parse,
    credit_review_types,
    credit_rows,
)
from labeling.csv_export import csv_lines
from labeling.models import CreditOutcome, ItemSource
from labeling.reports import (
    COST_TABLES,
    ReportError,
    cost_report_build,
    cost_report_table,
    report_period_parse,
)

REPORT_ROLES = (Role.MANAGER, Role.ADMIN)
CREDITS_PAGE_SIZE = 50
QUICK_RANGES = (7, 30, 90)


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET"])
def costs(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=REPORT_ROLES)
    today = timezone.localdate()
    params = request.GET
    try:
        period = report_period_parse(start=params.get("start"), end=params.get("end"), today=today)
        if params.get("format") == "csv":
            table = params.get("table", "summary")
            if table not in COST_TABLES:
                raise ReportError(f"'table' must be one of: {', '.join(COST_TABLES)}.")
    except ReportError as exc:
        if params.get("format") == "csv":
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        context = {
            "project": project,
            "error": exc.message,
            "start": params.get("start", ""),
            "end": params.get("end", ""),
        }
        return render(request, "costs.html", context, status=400)

    report = cost_report_build(project=project, period=period)
    if params.get("format") == "csv":
        header, rows = cost_report_table(report=report, table=table)
        name = f"costs-{project.slug}-{table}-{period.start}-{period.end}.csv"
        return _csv_response(csv_lines([header, *rows]), name)

    chart = {
        "days": [row.day.isoformat() for row in report.daily],
        "machine": [row.auto_labeled for row in report.daily],
        "human": [row.human_labeled for row in report.daily],
        "imported": [row.imported + row.seeded_gold for row in report.daily],
    }
    period_query = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    quick = [
        (
            f"Last {days} days",
            urlencode(
                {"start": (today - timedelta(days=days - 1)).isoformat(), "end": today.isoformat()}
            ),
        )
        for days in QUICK_RANGES
    ]
    return render(
        request,
        "costs.html",
        {
            "project": project,
            "report": report,
            "summary": report.summary,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "chart": chart,
            "quick": quick,
            "csv": {
                table: urlencode({**period_query, "format": "csv", "table": table})
                for table in COST_TABLES
            },
        },
    )


@login_required
@require_http_methods(["GET"])
def credits(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=REPORT_ROLES)
    error = ""
    try:
        filters = credit_filters_parse(request.GET)
    except ReportError as exc:
        if request.GET.get("format") == "csv":
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        error, filters = exc.message, None

    if filters is not None and request.GET.get("format") == "csv":
        decisions = credit_decisions_filter(project=project, filters=filters)
        name = f"credits-{project.slug}-{timezone.localdate()}.csv"
        return _csv_response(csv_lines(credit_rows(decisions)), name)

    page = None
    if filters is not None:
        decisions = credit_decisions_filter(project=project, filters=filters)
        page = Paginator(decisions, CREDITS_PAGE_SIZE).get_page(request.GET.get("page"))
    query = (filters or CreditFilters()).as_query()
    return render(
        request,
        "credits.html",
        {
            "project": project,
            "error": error,
            "page": page,
            "values": request.GET,
            "outcomes": CreditOutcome.choices,
            "sources": ItemSource.choices,
            "review_types": credit_review_types(project=project),
            "query": urlencode(query),
            "csv_query": urlencode({**query, "format": "csv"}),
        },
        status=400 if error else 200,
    )
