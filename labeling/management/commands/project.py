"""Create, change, archive, restore and show projects from the command line: the same service
(labeling.project_setup) as the project pages and the API."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.errors import ServiceError
from labeling.models import Project
from labeling.project_settings import SETTINGS, LabelSpec
from labeling.project_setup import project_archive, project_create, project_restore, project_update


def _label(text: str) -> LabelSpec:
    """``name[:Display name[:key]]``"""
    parts = text.split(":")
    if len(parts) > 3:
        raise CommandError(f"--label {text!r}: use name[:Display name[:key]].")
    return LabelSpec(*parts)


def _rule(text: str) -> tuple[str, str]:
    review_type, sep, label = text.partition("=")
    if not sep:
        raise CommandError(f"--credit-rule {text!r}: use REVIEW_TYPE=LABEL.")
    return review_type.strip(), label.strip()


def _setting_options(parser: CommandParser, *, creating: bool) -> None:
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        type=_label,
        metavar="NAME[:DISPLAY[:KEY]]",
        help="a label, in order (repeat for each)"
        + ("" if creating else "; given, the whole label set is replaced"),
    )
    for name, spec in SETTINGS.items():
        if name == "credit_rules":
            parser.add_argument(
                "--credit-rule",
                dest="credit_rules",
                action="append",
                type=_rule,
                metavar="REVIEW_TYPE=LABEL",
                help=spec.help + " Repeat for each review type.",
            )
        elif name != "name" or not creating:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=spec.help)


def _settings(options: dict) -> dict:
    values = {name: options[name] for name in SETTINGS if options.get(name) is not None}
    if "credit_rules" in values:
        values["credit_rules"] = dict(values["credit_rules"])
    return values


class Command(BaseCommand):
    help = "Create, change, archive, restore or show a project (labels and settings)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        create = commands.add_parser("create", help="create a project")
        create.add_argument("name")
        create.add_argument("--slug", default="", help="short name in URLs (default: from name)")
        create.add_argument("--admin", help="user name of the project's first admin")
        _setting_options(create, creating=True)
        edit = commands.add_parser("edit", help="change settings or the label set")
        edit.add_argument("slug")
        edit.add_argument(
            "--retire-model",
            action="store_true",
            help="confirm retiring the active model if the label change would break it",
        )
        _setting_options(edit, creating=False)
        for action in ("archive", "restore", "show"):
            commands.add_parser(action, help=f"{action} a project").add_argument("slug")

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"_{action}")(options)
        except ServiceError as exc:
            field = getattr(exc, "field", None)
            raise CommandError(f"{field}: {exc.message}" if field else exc.message) from exc

    def _project(self, slug: str) -> Project:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project with slug {slug!r}.")
        return project

    def _create(self, options: dict) -> None:
        if not options.get("labels"):
            raise CommandError("Give the labels, in order: --label package --label product …")
        admin = None
        if options.get("admin"):
            admin = get_user_model().objects.filter(username=options["admin"]).first()
            if admin is None:
                raise CommandError(f"No user called {options['admin']!r}.")
        values = _settings(options)
        project = project_create(
            name=values.pop("name"),
            slug=options["slug"],
            labels=options["labels"],
            by=admin,
            **values,
        )
        self.stdout.write(self.style.SUCCESS(f"Created {project.slug}: {project.name}"))
        self._print(project)

    def _edit(self, options: dict) -> None:
        result = project_update(
            project=self._project(options["slug"]),
            labels=options.get("labels"),
            retire_model=options["retire_model"],
            **_settings(options),
        )
        self.stdout.write(result.summary())

    def _archive(self, options: dict) -> None:
        project = project_archive(project=self._project(options["slug"]))
        self.stdout.write(
            f"{project.slug} is archived (since {project.archived_at:%Y-%m-%d %H:%M})."
        )

    def _restore(self, options: dict) -> None:
        project = project_restore(project=self._project(options["slug"]))
        self.stdout.write(f"{project.slug} is active again.")

    def _show(self, options: dict) -> None:
        self._print(self._project(options["slug"]))

    def _print(self, project: Project) -> None:
        labels = ", ".join(
            f"{label.key}={label.name} ({label.display_name})" for label in project.labels.all()
        )
        self.stdout.write(f"labels: {labels}")
        for name in SETTINGS:
            value = getattr(project, name)
            self.stdout.write(f"{name}: {json.dumps(value, default=str)}")
        state = (
            f"archived since {project.archived_at:%Y-%m-%d}" if project.archived_at else "active"
        )
        self.stdout.write(f"state: {state}")
