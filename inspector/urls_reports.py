"""Manager surfaces (cost report, credit decisions), mounted under ``p/<slug>/``."""

from django.urls import path

from inspector.views import reports

urlpatterns = [
    path("costs/", reports.costs, name="costs"),
    path("credits/", reports.credits, name="credits"),
]
