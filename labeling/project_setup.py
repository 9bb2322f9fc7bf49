"""Creating and changing projects: their settings, their ordered label sets, archiving.

The pages (``inspector.views.project_admin``), the API (``labeling.api.project_views``) and the
``project`` management command all call these functions, so a setting is checked the same way
wherever it comes from. Values may arrive as text (forms, command lines) or typed (JSON); the
cleaning here turns both into the model's types or refuses with a sentence naming the field.

Label sets and the active model: a trained model's outputs are the project's labels in order.
Display names and keyboard keys can change at any time; adding, removing, renaming or
reordering labels would make the active model's predictions name the wrong labels, so such a
change is refused with the reason, unless the admin confirms retiring the model (everything then
goes to inspectors, and a training on the new label set starts when there are labels enough).
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from labeling.access import Role
from labeling.dispatch import REFIT_PROJECT, job_queue
from labeling.errors import ServiceError
from labeling.machine.predictors import class_names_mismatch
from labeling.machine.threshold_tuning import ThresholdSettingsInvalid, threshold_settings_clean
from labeling.machine.training import training_start
from labeling.members import member_add
from labeling.models import (
    Annotation,
    AnnotatorSkill,
    GoldItem,
    Item,
    Label,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
)
from labeling.project_settings import (
    LabelSpec,
    ProjectSettingsInvalid,
    labels_clean,
    project_settings_clean,
    title,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LabelSpec",
    "LabelSetChangeRefused",
    "ProjectSettingsInvalid",
    "ProjectUpdate",
    "member_add",
    "project_archive",
    "project_create",
    "project_restore",
    "project_update",
]

THRESHOLD_FIELDS = (
    "threshold_mode",
    "target_precision",
    "threshold_confidence",
    "manual_thresholds",
)


class LabelSetChangeRefused(ServiceError):
    status, code = 409, "label_set_change_refused"


def _slug_for(name: str, slug: str) -> str:
    if slug:
        cleaned = slugify(slug)
        if cleaned != slug or len(slug) > 80:
            raise ProjectSettingsInvalid(
                "The short name (slug) may hold lowercase letters, digits, - and _ only "
                "(at most 80).",
                field="slug",
            )
        if Project.objects.filter(slug=slug).exists():
            raise ProjectSettingsInvalid(
                f"The short name '{slug}' is taken; choose another.", field="slug"
            )
        return slug
    base = slugify(name)[:70].strip("-") or "project"
    candidate, n = base, 1
    while Project.objects.filter(slug=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


# --- creating ----------------------------------------------------------------------------------


def project_create(
    *,
    name: str,
    labels: Sequence[LabelSpec | str | Mapping],
    slug: str = "",
    by: AbstractBaseUser | None = None,
    **settings: object,
) -> Project:
    """A project with its ordered label set. Keys default to 1–9, 0, then q, w, e… ``by``, when
    given, becomes the project's first admin. Threshold settings (mode, target precision,
    confidence, manual thresholds) may be given here; later they change on the Thresholds page."""
    specs = labels_clean(labels)
    names = [spec.name for spec in specs]
    thresholds = {key: settings.pop(key) for key in THRESHOLD_FIELDS if key in settings}
    cleaned = project_settings_clean(values={"name": name, **settings}, labels=names)
    chosen = _slug_for(cleaned["name"], slug)
    with transaction.atomic():
        try:
            with transaction.atomic():
                project = Project.objects.create(slug=chosen, **cleaned)
        except IntegrityError:  # the same short name, created a moment ago by someone else
            raise ProjectSettingsInvalid(
                f"The short name '{chosen}' is taken; choose another.", field="slug"
            ) from None
        Label.objects.bulk_create(
            Label(
                project=project,
                name=spec.name,
                display_name=spec.display_name,
                key=spec.key,
                position=position,
            )
            for position, spec in enumerate(specs)
        )
        if thresholds:
            _thresholds_apply(project, thresholds)
        if by is not None and by.is_authenticated:
            member_add(project=project, user=by, role=Role.ADMIN)
    logger.info("Project %s created by %s", project.slug, by)
    return project


def _thresholds_apply(project: Project, values: dict) -> None:
    try:
        chosen = threshold_settings_clean(
            project=project,
            mode=values.get("threshold_mode"),
            target_precision=values.get("target_precision"),
            threshold_confidence=values.get("threshold_confidence"),
            manual_thresholds=values.get("manual_thresholds"),
        )
    except ThresholdSettingsInvalid as exc:
        field = {"mode": "threshold_mode"}.get(exc.field or "", exc.field)
        raise ProjectSettingsInvalid(exc.message, field=field) from exc
    project.threshold_mode = chosen.mode
    project.target_precision = chosen.target_precision
    project.threshold_confidence = chosen.threshold_confidence
    project.manual_thresholds = chosen.manual_thresholds
    project.save()


# --- changing ----------------------------------------------------------------------------------


@dataclass
class ProjectUpdate:
    """What an edit did: the settings that changed, and what a label-set change set off."""

    project: Project
    changed: list[str] = field(default_factory=list)
    retired: ModelVersion | None = None
    training: ModelVersion | None = None
    training_refused: str = ""

    def summary(self) -> str:
        if not self.changed:
            return "Nothing changed."
        parts = [f"Saved: {', '.join(title(name).lower() for name in self.changed)}."]
        if self.retired is not None:
            parts.append(
                f"Model v{self.retired.version} was retired; images go to inspectors until a "
                "model trained on the new labels is promoted."
            )
        if self.training is not None:
            parts.append(f"Training of v{self.training.version} started on the new labels.")
        elif self.training_refused:
            parts.append(f"No training started: {self.training_refused}")
        return " ".join(parts)


def project_update(
    *,
    project: Project,
    by: AbstractBaseUser | None = None,
    labels: Sequence[LabelSpec | str | Mapping] | None = None,
    retire_model: bool = False,
    **settings: object,
) -> ProjectUpdate:
    """Change settings and, with ``labels``, the whole ordered label set (labels are matched by
    name: a name not given is removed, a new name is added). See the module doc for what a label
    change does to the active model; ``retire_model`` confirms retiring it."""
    in_thresholds = [key for key in THRESHOLD_FIELDS if key in settings]
    if in_thresholds:
        raise ProjectSettingsInvalid(
            "Thresholds are set on the Thresholds page (or PUT .../thresholds/), which records "
            "who changed them and re-routes the waiting images.",
            field=in_thresholds[0],
        )
    specs = labels_clean(labels) if labels is not None else None
    result = ProjectUpdate(project=project)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        names = [spec.name for spec in specs] if specs is not None else locked.label_names()
        cleaned = project_settings_clean(values=settings, labels=names, current=locked)
        if specs is not None:
            _labels_apply(locked, specs, retire_model=retire_model, by=by, result=result)
        for name, value in cleaned.items():
            if getattr(locked, name) != value:
                setattr(locked, name, value)
                result.changed.append(name)
        locked.save()
    project.refresh_from_db()
    result.project = project
    logger.info("Project %s changed by %s: %s", project.slug, by, ", ".join(result.changed))
    return result


def _label_uses(label: Label) -> str:
    """What still refers to ``label`` (answers, final labels, gold, predictions), in words."""
    uses = [
        (Annotation.objects.filter(label=label).count(), "answer"),
        (Item.objects.filter(final_label=label).count(), "final label"),
        (GoldItem.objects.filter(label=label).count(), "gold answer"),
        (Prediction.objects.filter(label=label).count(), "prediction"),
    ]
    return ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in uses if n)


def _labels_apply(
    project: Project,
    specs: list[LabelSpec],
    *,
    retire_model: bool,
    by: AbstractBaseUser | None,
    result: ProjectUpdate,
) -> None:
    current = {label.name: label for label in project.labels.all()}
    old_order = list(current)
    new_order = [spec.name for spec in specs]
    for name in sorted(set(old_order) - set(new_order)):
        uses = _label_uses(current[name])
        if uses:
            raise LabelSetChangeRefused(
                f"The label {name} cannot be removed: {uses} use it. Change its display name "
                "instead, or keep it."
            )
    cosmetic = [
        (current[spec.name].display_name, current[spec.name].key) != (spec.display_name, spec.key)
        for spec in specs
        if spec.name in current
    ]
    if old_order == new_order and not any(cosmetic):
        return
    # Positions and keys are unique per project: park every row first, then write the new ones.
    for i, label in enumerate(current.values()):
        Label.objects.filter(pk=label.pk).update(position=1000 + i, key=chr(0xE000 + i))
    Label.objects.filter(project=project, name__in=set(old_order) - set(new_order)).delete()
    for position, spec in enumerate(specs):
        if spec.name in current:
            Label.objects.filter(pk=current[spec.name].pk).update(
                position=position, key=spec.key, display_name=spec.display_name
            )
        else:
            Label.objects.create(
                project=project,
                name=spec.name,
                display_name=spec.display_name,
                key=spec.key,
                position=position,
            )
    result.changed.append("labels")
    model = project.active_model
    if model is not None and model.status == ModelStatus.ACTIVE:
        # The model's classes match labels by name or display name (an imported model may use
        # display names), so even a display-name change can break it.
        mismatch = class_names_mismatch(project, model.metrics.get("class_names") or old_order)
        if mismatch and not retire_model:
            raise LabelSetChangeRefused(
                f"Model v{model.version} is active and {mismatch}. Adding, removing, renaming or "
                "reordering labels would make its predictions name the wrong labels. Change only "
                "display names and keys, or confirm retiring the model: images then go to "
                "inspectors until a model trained on the new labels is promoted."
            )
        if mismatch:
            _model_retire(project, model, result)
    if old_order != new_order:
        # Inspector confusions and the class balance are indexed by label position: start
        # them afresh and let the refit rebuild them from the answers.
        AnnotatorSkill.objects.filter(project=project).update(counts=[], confusion=[])
        project.consensus_state = {}
        project.manual_thresholds = {
            k: v for k, v in (project.manual_thresholds or {}).items() if k in new_order
        }
        project.autolabel_paused = {
            k: v for k, v in (project.autolabel_paused or {}).items() if k in new_order
        }
        job_queue(REFIT_PROJECT, project.pk)
    if result.retired is not None:
        try:
            result.training = training_start(project=project, by=by, reason="label set changed")
        except ServiceError as exc:
            result.training_refused = exc.message


def _model_retire(project: Project, model: ModelVersion, result: ProjectUpdate) -> None:
    ModelVersion.objects.filter(pk=model.pk).update(
        status=ModelStatus.RETIRED, status_reason="retired: the project's label set changed"
    )
    project.active_model = None
    model.refresh_from_db()
    result.retired = model


def project_archive(*, project: Project, by: AbstractBaseUser | None = None) -> Project:
    """Archive: the project leaves every list and takes no uploads, leases, answers or
    trainings; what it holds stays readable by its members until it is restored."""
    if project.archived_at is None:
        project.archived_at = timezone.now()
        project.save(update_fields=["archived_at", "updated_at"])
        logger.info("Project %s archived by %s", project.slug, by)
    return project


def project_restore(*, project: Project, by: AbstractBaseUser | None = None) -> Project:
    """Bring an archived project back into the lists and the queue."""
    if project.archived_at is not None:
        project.archived_at = None
        project.save(update_fields=["archived_at", "updated_at"])
        logger.info("Project %s restored by %s", project.slug, by)
    return project
