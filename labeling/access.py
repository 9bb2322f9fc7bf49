"""Who may see and do what: role groups plus project membership.

Outsiders get a 404 for a project they do not belong to, never a 403, so they cannot learn
that it exists.
"""

from collections.abc import Iterable
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from labeling.models import Project


class Role(StrEnum):
    INSPECTOR = "inspector"
    ADMIN = "admin"
    MANAGER = "manager"


ALL_ROLES = tuple(Role)


def roles_ensure() -> None:
    """Create the role groups (idempotent; called by migrations and the demo)."""
    for role in Role:
        Group.objects.get_or_create(name=role.value)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[Role]:
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Role)
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = {role for role in Role if role.value in names}
        user._role_cache = cached
    return cached


def projects_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_for_user(
    user: AbstractBaseUser | AnonymousUser, slug: str, *, roles: Iterable[Role] = ALL_ROLES
) -> Project:
    """The project if ``user`` belongs to it (else 404) and holds one of ``roles`` (else 403)."""
    project = projects_for_user(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    if not user_roles(user) & set(roles):
        raise PermissionDenied("Your role does not allow this in this project.")
    return project


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: Role) -> bool:
    return bool(user_roles(user) & set(roles))
