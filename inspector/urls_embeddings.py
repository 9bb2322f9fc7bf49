"""Embedding pages (included under ``p/<slug>/``)."""

from django.urls import path

from inspector.views import embeddings as views

urlpatterns = [
    path("items/<id:pk>/similar/", views.similar, name="similar"),
    path("reuse/", views.reuse, name="reuse"),
    path("reuse/<id:item_id>/decide", views.reuse_decision, name="reuse-decide"),
    path("reuse/policy", views.reuse_policy, name="reuse-policy"),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/<id:pk>/delete", views.catalog_remove, name="catalog-delete"),
    path("catalog/<id:pk>/image", views.catalog_image, name="catalog-image"),
    path("catalog/<id:pk>/thumbnail", views.catalog_thumbnail, name="catalog-thumbnail"),
    path("prototypes/", views.prototypes, name="prototypes"),
    path("recheck/", views.recheck, name="recheck"),
    path("recheck/<id:pk>/decide", views.recheck_decide, name="recheck-decide"),
]
