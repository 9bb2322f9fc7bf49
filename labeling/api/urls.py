from django.urls import include, path

from labeling.api import manifest_views, project_views, queue, views

urlpatterns = [
    path("projects/", project_views.ProjectList.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", project_views.ProjectDetail.as_view(), name="api-project"),
    path("projects/<slug:slug>/items/", views.ItemList.as_view(), name="api-items"),
    path("projects/<slug:slug>/items/upload/", views.ItemUpload.as_view(), name="api-items-upload"),
    path("projects/<slug:slug>/items/<id:pk>/", views.ItemDetail.as_view(), name="api-item"),
    path(
        "projects/<slug:slug>/items/<id:pk>/predictions/",
        views.ItemPredictions.as_view(),
        name="api-item-predictions",
    ),
    path(
        "projects/<slug:slug>/items/<id:pk>/resolve/",
        views.ItemResolve.as_view(),
        name="api-item-resolve",
    ),
    path(
        "projects/<slug:slug>/manifests/",
        manifest_views.ManifestList.as_view(),
        name="api-manifests",
    ),
    path(
        "projects/<slug:slug>/manifests/import/",
        manifest_views.ManifestImport.as_view(),
        name="api-manifests-import",
    ),
    path(
        "projects/<slug:slug>/manifests/<id:pk>/download/",
        manifest_views.ManifestDownload.as_view(),
        name="api-manifest-download",
    ),
    path("projects/<slug:slug>/queue/next/", queue.NextLease.as_view(), name="api-queue-next"),
    path("projects/<slug:slug>/queue/leases/", queue.OpenLeases.as_view(), name="api-queue-leases"),
    path(
        "projects/<slug:slug>/queue/answers/", queue.SubmitAnswer.as_view(), name="api-queue-answer"
    ),
    path("projects/<slug:slug>/queue/skip/", queue.SkipLease.as_view(), name="api-queue-skip"),
    path("projects/<slug:slug>/queue/undo/", queue.UndoAnswer.as_view(), name="api-queue-undo"),
    path("projects/<slug:slug>/queue/renew/", queue.RenewLeases.as_view(), name="api-queue-renew"),
    path("projects/<slug:slug>/queue/me/", queue.MyStats.as_view(), name="api-queue-me"),
    path("projects/<slug:slug>/", include("labeling.api.urls_admin")),
    path("projects/<slug:slug>/", include("labeling.api.urls_setup")),
    path("projects/<slug:slug>/", include("labeling.api.urls_reports")),
    path("projects/<slug:slug>/", include("labeling.api.urls_embeddings")),
]
