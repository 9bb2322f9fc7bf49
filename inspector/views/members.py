"""The Members page: who works on a project with which role; add an existing user, create one
(their password or set-password link is shown once, on the page that answers the form), change a
role, remove someone. All through ``labeling.members``."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from labeling.access import Role, project_for_user
from labeling.errors import ServiceError
from labeling.members import (
    member_add_existing,
    member_invite,
    member_remove,
    member_role_set,
    members_list,
)

ADMINS = (Role.ADMIN,)


def _page(request, project, *, invitation=None, link="", error="", status=200) -> HttpResponse:
    return render(
        request,
        "members.html",
        {
            "project": project,
            "members": members_list(project=project),
            "roles": Role.choices,
            "invitation": invitation,
            "link": link,
            "error": error,
            "values": request.POST if error else {},  # typed again only after a refusal
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    if request.method == "GET":
        return _page(request, project)
    post = request.POST
    try:
        if post.get("action") == "create":
            invitation = member_invite(
                project=project,
                username=post.get("username", ""),
                email=post.get("email", ""),
                role=post.get("role", ""),
                invite=post.get("invite", ""),
            )
            link = ""
            if invitation.set_password_path:
                link = request.build_absolute_uri(invitation.set_password_path)
            # Shown on this response only: the password is stored nowhere, the link works once.
            return _page(request, project, invitation=invitation, link=link)
        membership = member_add_existing(
            project=project, user=post.get("user", ""), role=post.get("role", "")
        )
    except ServiceError as exc:
        return _page(request, project, error=exc.message, status=400)
    messages.success(
        request, f"{membership.user.get_username()} joined as {membership.get_role_display()}."
    )
    return redirect("members", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def member_role(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    try:
        membership = member_role_set(
            project=project, user_id=user_id, role=request.POST.get("role")
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{membership.user.get_username()} is now {membership.get_role_display()} here.",
        )
    return redirect("members", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def member_remove_view(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    try:
        member_remove(project=project, user_id=user_id)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Removed from the project; their answers stay.")
    return redirect("members", slug=project.slug)
