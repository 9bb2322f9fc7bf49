"""Operators decide who may create projects: the site's admin group (see labeling.access)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling.access import may_create_projects
from labeling.members import site_admin_set


class Command(BaseCommand):
    help = (
        "Let a user create projects (put them in the site's admin group), or with --remove take "
        "that back. Project roles are given per project, by each project's admins."
    )

    def add_arguments(self, parser):
        parser.add_argument("user", help="user name")
        parser.add_argument("--remove", action="store_true")

    def handle(self, *args, user: str, remove: bool, **options):
        found = get_user_model().objects.filter(username=user).first()
        if found is None:
            raise CommandError(f"No user called {user!r}.")
        site_admin_set(user=found, on=not remove)
        verdict = "may" if may_create_projects(found) else "may not"
        self.stdout.write(f"{found.get_username()} {verdict} create projects.")
