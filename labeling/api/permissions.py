"""API access: the same role + membership rules as the pages (labeling.access)."""

from rest_framework.exceptions import NotFound, PermissionDenied

from labeling.access import ALL_ROLES, Role, project_lookup
from labeling.models import Project


def api_project(request, slug: str, *, roles: tuple[Role, ...] = ALL_ROLES) -> Project:
    """The project for an API call: 404 for outsiders (they must not learn it exists), 403 for
    members whose role does not allow the call."""
    project, allowed = project_lookup(request.user, slug, roles)
    if project is None:
        raise NotFound("No such project.")
    if not allowed:
        raise PermissionDenied("Your role in this project does not allow this.")
    return project
