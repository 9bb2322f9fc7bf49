"""Who belongs to a project, with which role: add an existing user, create one (a password shown
once, or a link to set their own), change a role, remove a member.

A project admin can only give roles in their own project, and never more than admin there: no
function here touches a user's site groups, password or account, except for the account it
creates. Every project keeps at least one admin, so nobody can lock a project out of its own
settings, by mistake or on purpose.
"""

import logging
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from labeling.access import SITE_ADMIN_GROUP, Role, default_role
from labeling.errors import ServiceError
from labeling.models import Assignment, AssignmentStatus, Membership, Project
from labeling.queue import leases_expire

logger = logging.getLogger(__name__)

INVITE_PASSWORD, INVITE_LINK = "password", "link"
INVITE_KINDS = (INVITE_PASSWORD, INVITE_LINK)


class MemberInvalid(ServiceError):
    status, code = 400, "invalid_member"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class MemberNotFound(ServiceError):
    status, code = 404, "no_such_member"


class MemberChangeRefused(ServiceError):
    status, code = 409, "member_change_refused"


@dataclass(frozen=True)
class Invitation:
    """A user created for a project. ``password`` or ``set_password_path`` is shown once to the
    admin who created them and stored nowhere."""

    membership: Membership
    password: str = ""
    set_password_path: str = ""


def _role(value: object) -> Role:
    if value not in Role.values:
        raise MemberInvalid(f"Role must be one of: {', '.join(Role.values)}.", field="role")
    return Role(value)


def members_list(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )


def member_add(
    *, project: Project, user: AbstractBaseUser, role: Role | str | None = None
) -> Membership:
    """Make ``user`` a member of ``project`` with ``role``. Without a role, a new member gets
    their default role (labeling.access.default_role) and an existing one keeps theirs."""
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        chosen = _role(role) if role is not None else default_role(user)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(project=project, user=user, role=chosen)
        except IntegrityError:  # added at the same moment by another request
            membership = Membership.objects.get(project=project, user=user)
    elif role is not None and membership.role != _role(role):
        membership = member_role_set(project=project, user_id=user.pk, role=role)
    return membership


def _find_user(identifier: str) -> AbstractBaseUser:
    User = get_user_model()
    identifier = (identifier or "").strip()
    if not identifier:
        raise MemberInvalid("Name the user to add (user name or e-mail).", field="user")
    user = User.objects.filter(username=identifier).first()
    if user is None and "@" in identifier:
        found = list(User.objects.filter(email__iexact=identifier)[:2])
        if len(found) > 1:
            raise MemberInvalid(
                f"Several users have the e-mail {identifier}; add them by user name.",
                field="user",
            )
        user = found[0] if found else None
    if user is None or not user.is_active:
        raise MemberNotFound(
            f"No active user is called {identifier!r}. Create them instead (user name, role, "
            "and a password or a set-password link)."
        )
    return user


def member_add_existing(*, project: Project, user: str, role: Role | str) -> Membership:
    """Add the existing user named ``user`` (user name, or a unique e-mail) with ``role``."""
    chosen = _role(role)
    found = _find_user(user)
    existing = Membership.objects.filter(project=project, user=found).first()
    if existing is not None:
        raise MemberChangeRefused(
            f"{found.get_username()} is already a member ({existing.get_role_display()}); "
            "change their role instead."
        )
    membership = member_add(project=project, user=found, role=chosen)
    logger.info("%s added to %s as %s", found, project.slug, chosen)
    return membership


def set_password_path(user: AbstractBaseUser) -> str:
    """A link (path) that lets ``user`` choose a password once: Django's password-reset token,
    which stops working when the password is set, on their next login, or after
    PASSWORD_RESET_TIMEOUT."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password-set", kwargs={"uidb64": uid, "token": token})


def member_invite(
    *,
    project: Project,
    username: str,
    role: Role | str,
    email: str = "",
    invite: str = INVITE_PASSWORD,
) -> Invitation:
    """Create a user and make them a member with ``role``. ``invite`` says how they get in: a
    generated password (returned once) or a set-password link (returned once)."""
    chosen = _role(role)
    if invite not in INVITE_KINDS:
        raise MemberInvalid(f"Invite must be one of: {', '.join(INVITE_KINDS)}.", field="invite")
    User = get_user_model()
    username = (username or "").strip()
    field = User._meta.get_field(User.USERNAME_FIELD)
    try:
        field.run_validators(username)
        if not username:
            raise ValidationError("empty")
    except ValidationError:
        raise MemberInvalid(
            "A user name needs 1 to 150 letters, digits and @ . + - _ only.", field="username"
        ) from None
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise MemberInvalid(f"{email!r} is not an e-mail address.", field="email") from None
    password = secrets.token_urlsafe(12) if invite == INVITE_PASSWORD else None
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise IntegrityError
            user = User.objects.create_user(username=username, email=email, password=password)
            membership = Membership.objects.create(project=project, user=user, role=chosen)
    except IntegrityError:
        raise MemberChangeRefused(
            f"The user name {username!r} is taken. Add that user as an existing user, or choose "
            "another name."
        ) from None
    logger.info("%s created and added to %s as %s", username, project.slug, chosen)
    if password:
        return Invitation(membership, password=password)
    return Invitation(membership, set_password_path=set_password_path(user))


def _membership(project: Project, user_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("user").filter(project=project, user_id=user_id).first()
    )
    if membership is None:
        raise MemberNotFound("That user is not a member of this project.")
    return membership


def _keep_an_admin(project: Project, leaving: Membership) -> None:
    others = Membership.objects.filter(project=project, role=Role.ADMIN).exclude(pk=leaving.pk)
    if leaving.role == Role.ADMIN and not others.exists():
        raise MemberChangeRefused(
            f"{leaving.user.get_username()} is the only admin of this project; make someone else "
            "admin first."
        )


def member_role_set(*, project: Project, user_id: int, role: Role | str) -> Membership:
    """Give a member another role in this project (and only here)."""
    chosen = _role(role)
    with transaction.atomic():
        # Lock the project's admin rows, so two admins demoting each other at once cannot
        # leave it without one.
        list(Membership.objects.select_for_update().filter(project=project, role=Role.ADMIN))
        membership = _membership(project, user_id)
        if membership.role != chosen:
            if chosen != Role.ADMIN:
                _keep_an_admin(project, membership)
            membership.role = chosen
            membership.save(update_fields=["role", "updated_at"])
    return membership


def member_remove(*, project: Project, user_id: int) -> None:
    """Take a member out of the project. Their answers stay (answers are never deleted); the
    images they held go back to the queue."""
    with transaction.atomic():
        list(Membership.objects.select_for_update().filter(project=project, role=Role.ADMIN))
        membership = _membership(project, user_id)
        _keep_an_admin(project, membership)
        membership.delete()
        Assignment.objects.filter(
            project=project, annotator_id=user_id, status=AssignmentStatus.OPEN
        ).update(expires_at=timezone.now())
        leases_expire(project=project)
    logger.info("%s removed from %s", membership.user, project.slug)


def site_admin_set(*, user: AbstractBaseUser, on: bool) -> None:
    """Put ``user`` in the site's admin group (may create projects) or take them out. For
    operators (the ``site_admin`` command, the demo): no page or API offers it, so a project
    admin can never grant it."""
    group, _ = Group.objects.get_or_create(name=SITE_ADMIN_GROUP)
    if on:
        user.groups.add(group)
    else:
        user.groups.remove(group)
