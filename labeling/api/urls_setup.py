"""Project setup API (included under ``projects/<slug>/``): archive, members, the answer export."""

from django.urls import path

from labeling.api import project_views

urlpatterns = [
    path("archive/", project_views.ProjectArchive.as_view(), name="api-project-archive"),
    path("restore/", project_views.ProjectRestore.as_view(), name="api-project-restore"),
    path("members/", project_views.MemberList.as_view(), name="api-members"),
    path("members/<id:user_id>/", project_views.MemberDetail.as_view(), name="api-member"),
    path("answers/", project_views.AnswerList.as_view(), name="api-answers"),
]
