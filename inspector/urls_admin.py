"""Admin surfaces: threshold tuning and models (included under ``p/<slug>/``)."""

from django.urls import path

from inspector.views import admin_models, admin_thresholds

urlpatterns = [
    path("thresholds/", admin_thresholds.thresholds, name="thresholds"),
    path("thresholds/resume/", admin_thresholds.thresholds_resume, name="thresholds-resume"),
    path("models/", admin_models.models, name="models"),
    path("models/train/", admin_models.models_train, name="models-train"),
    path("models/rollback/", admin_models.models_rollback, name="models-rollback"),
    path("models/import/", admin_models.models_import, name="models-import"),
    path("models/<id:version>/promote/", admin_models.models_promote, name="models-promote"),
]
