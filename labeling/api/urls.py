from django.urls import path

from labeling.api import views

urlpatterns = [
    path("projects/", views.ProjectList.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", views.ProjectDetail.as_view(), name="api-project"),
    path("projects/<slug:slug>/items/", views.ItemList.as_view(), name="api-items"),
    path("projects/<slug:slug>/items/upload/", views.ItemUpload.as_view(), name="api-items-upload"),
    path("projects/<slug:slug>/items/<int:pk>/", views.ItemDetail.as_view(), name="api-item"),
]
