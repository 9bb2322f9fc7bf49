"""Report endpoints for managers and admins: the cost report and the credit decisions."""

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.api.permissions import api_project
from labeling.api.report_serializers import CostReportSerializer, CreditDecisionSerializer
from labeling.credit_report import (
    credit_decisions_filter,
    credit_filters_parse,
)
from labeling.models import CreditOutcome, ItemSource
from labeling.reports import (
    cost_report_build,
    report_period_parse,
)

REPORT_ROLES = (Role.MANAGER, Role.ADMIN)
BAD_QUERY = OpenApiResponse(description="A malformed date or filter value; `detail` says which.")


class CostReportView(APIView):
    @extend_schema(
        operation_id="reports_costs",
        summary="Cost report: summary, per-inspector and per-day tables with totals",
        parameters=[
            OpenApiParameter(
                "start", OpenApiTypes.DATE, description="First day (default: 29 days before end)"
            ),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Last day (default: today)"),
        ],
        responses={200: CostReportSerializer, 400: BAD_QUERY},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = api_project(request, slug, roles=REPORT_ROLES)
        period = report_period_parse(
            start=request.query_params.get("start"), end=request.query_params.get("end")
        )
        report = cost_report_build(project=project, period=period)
        return Response(CostReportSerializer(report).data)


@extend_schema_view(
    get=extend_schema(
        operation_id="credits_list",
        summary="Credit decisions, newest first, filtered",
        parameters=[
            OpenApiParameter("outcome", str, enum=CreditOutcome.values),
            OpenApiParameter("source", str, enum=ItemSource.values),
            OpenApiParameter("review_type", str),
            OpenApiParameter("review_id", str, description="Any part of the review id, any case"),
            OpenApiParameter("start", OpenApiTypes.DATE, description="Decided on or after"),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Decided on or before"),
        ],
        responses={200: CreditDecisionSerializer(many=True), 400: BAD_QUERY},
    )
)
class CreditList(generics.ListAPIView):
    serializer_class = CreditDecisionSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=REPORT_ROLES)
        filters = credit_filters_parse(self.request.query_params)
        return credit_decisions_filter(project=project, filters=filters)
