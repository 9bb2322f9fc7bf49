"""Report endpoints, mounted under ``api/projects/<slug>/``."""

from django.urls import path

from labeling.api import report_views

urlpatterns = [
    path("reports/costs/", report_views.CostReportView.as_view(), name="api-report-costs"),
    path("credits/", report_views.CreditList.as_view(), name="api-credits"),
]
