"""Creating projects, their label sets and their members."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils.text import slugify

from labeling.access import Role, roles_ensure
from labeling.models import Label, Membership, Project

DEFAULT_KEYS = "1234567890qwertyuiop"


@dataclass(frozen=True)
class LabelSpec:
    name: str
    display_name: str = ""
    key: str = ""


def project_create(
    *, name: str, slug: str = "", labels: Sequence[LabelSpec | str], **settings: object
) -> Project:
    """A project with its ordered label set; keys default to 1–9, 0, then q, w, e…"""
    if not labels:
        raise ValueError("a project needs at least one label")
    if len(labels) > len(DEFAULT_KEYS):
        raise ValueError(f"at most {len(DEFAULT_KEYS)} labels")
    specs = [spec if isinstance(spec, LabelSpec) else LabelSpec(spec) for spec in labels]
    names = {slugify(spec.name) for spec in specs}
    unknown = {
        rule: name
        for rule, name in dict(settings.get("credit_rules") or {}).items()
        if name not in names
    }
    if unknown:
        raise ValueError(f"credit rules name labels the project does not have: {unknown}")
    with transaction.atomic():
        project = Project.objects.create(name=name, slug=slug or slugify(name), **settings)
        Label.objects.bulk_create(
            Label(
                project=project,
                name=slugify(spec.name),
                display_name=spec.display_name or spec.name,
                key=spec.key or DEFAULT_KEYS[position],
                position=position,
            )
            for position, spec in enumerate(specs)
        )
    return project


def member_add(*, project: Project, user: AbstractBaseUser, role: Role | None = None) -> None:
    """Add ``user`` to ``project``; with ``role``, also put them in that role's group."""
    Membership.objects.get_or_create(project=project, user=user)
    if role is not None:
        roles_ensure()
        user.groups.add(Group.objects.get(name=role.value))
