"""API access: the same role + membership rules as the pages (labeling.access)."""

from rest_framework.exceptions import NotFound, PermissionDenied

from labeling.access import ALL_ROLES, Role, member_project, user_roles
from labeling.models import Project


def api_project(request, slug: str, *, roles: tuple[Role, ...] = ALL_ROLES) -> Project:
    """The project for an API call: 404 for outsiders (they must not learn it exists), 403 for
    members whose role does not allow the call."""
    project = member_project(request.user, slug)
    if project is None:
        raise NotFound("No such project.")
    if not user_roles(request.user) & set(roles):
        raise PermissionDenied("Your role does not allow this in this project.")
    return project
