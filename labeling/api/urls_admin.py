"""Admin API (included under ``projects/<slug>/``): thresholds and model versions."""

from django.urls import path

from labeling.api import admin_views

urlpatterns = [
    path("thresholds/", admin_views.ThresholdSettings.as_view(), name="api-thresholds"),
    path(
        "thresholds/preview/",
        admin_views.ThresholdPreview.as_view(),
        name="api-thresholds-preview",
    ),
    path("models/", admin_views.ModelList.as_view(), name="api-models"),
    path("models/train/", admin_views.ModelTrain.as_view(), name="api-models-train"),
    path("models/rollback/", admin_views.ModelRollback.as_view(), name="api-models-rollback"),
    path("models/import/", admin_views.ModelImport.as_view(), name="api-models-import"),
    path("models/<id:version>/", admin_views.ModelDetail.as_view(), name="api-model"),
    path(
        "models/<id:version>/promote/",
        admin_views.ModelPromote.as_view(),
        name="api-model-promote",
    ),
]
