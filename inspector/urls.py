from django.contrib.auth import views as auth_views
from django.urls import include, path

from inspector.views import (
    accounts,
    answers,
    items,
    members,
    project_admin,
    projects,
    queue,
    review,
)

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", projects.home, name="home"),
    path("projects/new/", project_admin.project_new, name="project-new"),
    path("password/", accounts.PasswordChange.as_view(), name="password-change"),
    path("password/set/<uidb64>/<token>/", accounts.PasswordSet.as_view(), name="password-set"),
    path("p/<slug:slug>/", projects.project_home, name="project"),
    path("p/<slug:slug>/upload/", projects.upload, name="upload"),
    path("p/<slug:slug>/items/<id:pk>/image", items.item_image, name="item-image"),
    path("p/<slug:slug>/items/<id:pk>/thumbnail", items.item_thumbnail, name="item-thumbnail"),
    path("p/<slug:slug>/inspect/", queue.inspect, name="inspect"),
    path("p/<slug:slug>/disputed/", review.disputed, name="disputed"),
    path(
        "p/<slug:slug>/disputed/<id:item_id>/resolve",
        review.disputed_resolve,
        name="disputed-resolve",
    ),
    path("p/<slug:slug>/inspectors/", review.inspectors, name="inspectors"),
    path("p/<slug:slug>/settings/", project_admin.project_settings, name="project-settings"),
    path(
        "p/<slug:slug>/settings/archive/",
        project_admin.project_archive_view,
        name="project-archive",
    ),
    path(
        "p/<slug:slug>/settings/restore/",
        project_admin.project_restore_view,
        name="project-restore",
    ),
    path("p/<slug:slug>/members/", members.members, name="members"),
    path("p/<slug:slug>/members/<id:user_id>/role", members.member_role, name="member-role"),
    path(
        "p/<slug:slug>/members/<id:user_id>/remove",
        members.member_remove_view,
        name="member-remove",
    ),
    path("p/<slug:slug>/answers/", answers.answers, name="answers"),
    # Admin surfaces (thresholds, models) and manager surfaces (costs, credits).
    path("p/<slug:slug>/", include("inspector.urls_admin")),
    path("p/<slug:slug>/", include("inspector.urls_reports")),
    path("p/<slug:slug>/", include("inspector.urls_embeddings")),
]
