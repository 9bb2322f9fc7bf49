"""The human side: leases, answers (append-only), inspector skill and gold answers."""

from django.conf import settings
from django.db import models

from labeling.models.base import TimeStamped, choices_check


class AssignmentStatus(models.TextChoices):
    OPEN = "open", "Open"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(TimeStamped):
    """A lease of one item to one inspector for one answer slot; it expires unless renewed."""

    Status = AssignmentStatus

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    expires_at = models.DateTimeField(db_index=True)
    is_gold = models.BooleanField(default=False)
    skip_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["item", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=models.Q(status="open"),
                name="assignment_one_open_per_annotator",
            ),
            choices_check("status", AssignmentStatus, "assignment_status_valid"),
        ]


class Annotation(models.Model):
    """One answer. Rows are never updated: a correction or an undo is a new row that
    ``supersedes`` the previous one (an undo has no label)."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label = models.ForeignKey(
        "labeling.Label", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    time_on_task_ms = models.PositiveIntegerField(default=0)
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="superseded_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One answer per inspector per item; later rows can only correct it.
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=models.Q(supersedes__isnull=True),
                name="annotation_one_per_annotator_item",
            ),
            models.CheckConstraint(
                condition=models.Q(label__isnull=False) | models.Q(supersedes__isnull=False),
                name="annotation_undo_needs_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} → {self.label or 'undo'} on {self.item_id}"


class AnnotatorSkill(TimeStamped):
    """Dawid-Skene evidence for one inspector in one project.

    ``counts[true][given]`` holds soft evidence (posterior-weighted answers, gold answers as
    one-hot); the confusion matrix is its posterior mean under the project's pooled prior.
    """

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="skills")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skills"
    )
    counts = models.JSONField(default=list)
    confusion = models.JSONField(default=list)
    estimated_accuracy = models.FloatField(null=True, blank=True)
    gold_answers = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    answers = models.PositiveIntegerField(default=0)
    # What the last applied refit's checks found (labeling.crowd_checks): near chance with its
    # test, per-class biases, the inspectors this one copies with. Shown on the Inspectors page.
    flags = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["project", "annotator"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="skill_unique"),
            models.CheckConstraint(
                condition=models.Q(gold_correct__lte=models.F("gold_answers")),
                name="skill_gold_correct_le_answers",
            ),
        ]

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None


class GoldOrigin(models.TextChoices):
    SEEDED = "seeded", "Seeded by an admin"
    EXPERT = "expert", "Resolved dispute"


class GoldItem(TimeStamped):
    """An item with a known answer, mixed into the queue to anchor inspector trust."""

    Origin = GoldOrigin

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="gold")
    item = models.OneToOneField("labeling.Item", on_delete=models.CASCADE, related_name="gold")
    label = models.ForeignKey("labeling.Label", on_delete=models.RESTRICT, related_name="+")
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.SEEDED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [choices_check("origin", GoldOrigin, "gold_origin_valid")]
