"""A project's members from the command line: list, add an existing user, create one, change a
role, remove one. The same service (labeling.members) as the Members page and the API."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.access import Role
from labeling.errors import ServiceError
from labeling.members import (
    INVITE_KINDS,
    member_add_existing,
    member_invite,
    member_remove,
    member_role_set,
    members_list,
)
from labeling.models import Project

ROLES = [role.value for role in Role]


class Command(BaseCommand):
    help = "List, add, create, re-role or remove the members of a project."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser("list", help="members and their roles").add_argument("project")
        add = commands.add_parser("add", help="add an existing user")
        add.add_argument("project")
        add.add_argument("user", help="user name or e-mail")
        add.add_argument("--role", required=True, choices=ROLES)
        create = commands.add_parser("create", help="create a user and add them")
        create.add_argument("project")
        create.add_argument("username")
        create.add_argument("--role", required=True, choices=ROLES)
        create.add_argument("--email", default="")
        create.add_argument(
            "--invite",
            choices=INVITE_KINDS,
            default=INVITE_KINDS[0],
            help="print a generated password (default) or a set-password link, once",
        )
        create.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="where the service is reached, for the set-password link",
        )
        role = commands.add_parser("role", help="change a member's role")
        role.add_argument("project")
        role.add_argument("user")
        role.add_argument("role", choices=ROLES)
        remove = commands.add_parser("remove", help="remove a member (their answers stay)")
        remove.add_argument("project")
        remove.add_argument("user")

    def handle(self, *args, action: str, project: str, **options) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        try:
            getattr(self, f"_{action}")(target, options)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc

    def _user_id(self, name: str) -> int:
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"No user called {name!r}.")
        return user.pk

    def _list(self, project: Project, options: dict) -> None:
        for membership in members_list(project=project):
            self.stdout.write(f"{membership.user.get_username()}\t{membership.role}")

    def _add(self, project: Project, options: dict) -> None:
        membership = member_add_existing(
            project=project, user=options["user"], role=options["role"]
        )
        self.stdout.write(f"Added {membership.user.get_username()} as {membership.role}.")

    def _create(self, project: Project, options: dict) -> None:
        invitation = member_invite(
            project=project,
            username=options["username"],
            email=options["email"],
            role=options["role"],
            invite=options["invite"],
        )
        user = invitation.membership.user.get_username()
        self.stdout.write(f"Created {user} as {invitation.membership.role}.")
        if invitation.password:
            self.stdout.write(f"Password (shown once): {invitation.password}")
        else:
            link = options["base_url"].rstrip("/") + invitation.set_password_path
            self.stdout.write(f"Set-password link (works once): {link}")

    def _role(self, project: Project, options: dict) -> None:
        membership = member_role_set(
            project=project, user_id=self._user_id(options["user"]), role=options["role"]
        )
        self.stdout.write(f"{membership.user.get_username()} is now {membership.role}.")

    def _remove(self, project: Project, options: dict) -> None:
        member_remove(project=project, user_id=self._user_id(options["user"]))
        self.stdout.write(f"Removed {options['user']}.")
