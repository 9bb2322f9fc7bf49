"""Who may see and do what.

Two levels (docs/people.md):

* **Per project**, a member holds one role there (``Membership.role``): inspector (labels),
  manager (reads reports), admin (everything in that project, labeling and reports included).
  A role never reaches beyond its project: an admin of one project is nobody in another.
* **Site level**, a Django group: members of the ``admin`` group (and superusers) may create
  projects, and become the first admin of each project they create. Nothing a project admin does
  can put anyone, themselves included, in a site group.

Superusers are operators: they are admins of every project. Outsiders get a 404 for a project
they do not belong to, never a 403, so they cannot learn that it exists.
"""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404

from labeling.models import MemberRole, Membership, Project

Role = MemberRole
ALL_ROLES = tuple(Role)
# The site-level group whose members may create projects.
SITE_ADMIN_GROUP = "admin"
# Which role a caller that does not name one gets (scripts, tests): the user's site group that
# ranks highest, else inspector. Pages and the API always name the role.
ROLE_RANK = (Role.ADMIN, Role.MANAGER, Role.INSPECTOR)

User = AbstractBaseUser | AnonymousUser


def roles_ensure() -> None:
    """Create the role groups (idempotent; called by migrations and the demo)."""
    for role in Role:
        Group.objects.get_or_create(name=role.value)


def may_create_projects(user: User) -> bool:
    """Site admins (the ``admin`` group) and superusers may create projects."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=SITE_ADMIN_GROUP).exists()


def default_role(user: AbstractBaseUser) -> Role:
    """The role a new membership gets when the caller names none (see ROLE_RANK)."""
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((role for role in ROLE_RANK if role.value in names), Role.INSPECTOR)


def projects_for_user(user: User, *, include_archived: bool = False) -> QuerySet[Project]:
    """The projects ``user`` belongs to (all of them for superusers); archived ones only when
    asked for."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    projects = (
        Project.objects.all()
        if user.is_superuser
        else Project.objects.filter(memberships__user=user)
    )
    return projects if include_archived else projects.filter(archived_at__isnull=True)


def project_roles(user: User, project: Project) -> set[Role]:
    """The roles ``user`` holds in ``project``: one for a member, all for a superuser."""
    cached = getattr(project, "_viewer_roles", None)
    if cached is not None and getattr(project, "_viewer_id", None) == user.pk:
        return cached
    if not user.is_authenticated or not user.is_active:
        roles: set[Role] = set()
    elif user.is_superuser:
        roles = set(Role)
    else:
        role = (
            Membership.objects.filter(project=project, user=user)
            .values_list("role", flat=True)
            .first()
        )
        roles = {Role(role)} if role else set()
    project._viewer_roles, project._viewer_id = roles, user.pk
    return roles


def project_lookup(user: User, slug: str, roles: Iterable[Role]) -> tuple[Project | None, bool]:
    """(the project if ``user`` belongs to it, whether their role is one of ``roles``). Archived
    projects are found: their members can still read what they hold."""
    if user.is_authenticated and user.is_active and not user.is_superuser:
        # The project and the caller's role in it in one query, not two: this runs on every
        # page and API call, the inspector's answer included (see docs/hot_path.md).
        project = (
            Project.objects.filter(slug=slug, memberships__user=user)
            .annotate(viewer_role=F("memberships__role"))
            .first()
        )
        if project is not None:
            project._viewer_roles = {Role(project.viewer_role)}
            project._viewer_id = user.pk
    else:
        project = projects_for_user(user, include_archived=True).filter(slug=slug).first()
    if project is None:
        return None, False
    return project, bool(project_roles(user, project) & set(roles))


def project_for_user(user: User, slug: str, *, roles: Iterable[Role] = ALL_ROLES) -> Project:
    """The project if ``user`` belongs to it (else 404) and holds one of ``roles`` there (else
    403)."""
    project, allowed = project_lookup(user, slug, roles)
    if project is None:
        raise Http404("No such project.")
    if not allowed:
        raise PermissionDenied("Your role in this project does not allow this.")
    return project


def has_role(user: User, *roles: Role, project: Project) -> bool:
    """Whether ``user`` holds one of ``roles`` in ``project``."""
    return bool(project_roles(user, project) & set(roles))
