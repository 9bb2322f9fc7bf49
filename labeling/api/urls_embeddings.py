"""Embedding API (included under ``projects/<slug>/``)."""

from django.urls import path

from labeling.api import embedding_views as views

urlpatterns = [
    path("items/<id:pk>/similar/", views.ItemSimilar.as_view(), name="api-item-similar"),
    path("items/<id:pk>/reuse/", views.ItemReuse.as_view(), name="api-item-reuse"),
    path("reuse/", views.ReuseMatchList.as_view(), name="api-reuse"),
    path("reuse/policy/", views.ReusePolicy.as_view(), name="api-reuse-policy"),
    path("catalog/", views.CatalogList.as_view(), name="api-catalog"),
    path("catalog/<id:pk>/", views.CatalogPhoto.as_view(), name="api-catalog-photo"),
    path("prototypes/", views.PrototypeList.as_view(), name="api-prototypes"),
    path("prototypes/<id:pk>/", views.PrototypeDetail.as_view(), name="api-prototype"),
    path("rechecks/", views.RecheckList.as_view(), name="api-rechecks"),
    path("rechecks/run/", views.RecheckRun.as_view(), name="api-rechecks-run"),
    path("rechecks/<id:pk>/decide/", views.RecheckDecide.as_view(), name="api-recheck-decide"),
    path("embeddings/", views.EmbeddingState.as_view(), name="api-embeddings"),
]
