"""The results table the shop's systems read: credit decisions, and what each act cost."""

from django.conf import settings
from django.db import models

from labeling.models.base import TimeStamped, choices_check
from labeling.models.items import ItemSource


class CreditOutcome(models.TextChoices):
    GRANTED = "granted", "Credit granted"
    DENIED = "denied", "Credit denied"
    PENDING = "pending", "Waiting for a human"


class CreditDecision(TimeStamped):
    Outcome = CreditOutcome

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="credits"
    )
    item = models.OneToOneField("labeling.Item", on_delete=models.CASCADE, related_name="credit")
    review_id = models.CharField(max_length=100, blank=True, db_index=True)
    review_type = models.CharField(max_length=40)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    source = models.CharField(max_length=10, choices=ItemSource.choices, blank=True)
    probability = models.FloatField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Why, when it is not the label alone (a reused photo).
    reason = models.CharField(max_length=200, blank=True)
    # Set when a decision the machine made is taken back (its auto-label returned to humans
    # after a failed audit or a shift alarm): the shop's systems see that and why.
    reopened_at = models.DateTimeField(null=True, blank=True)
    reopen_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("outcome", CreditOutcome, "credit_outcome_valid"),
            models.CheckConstraint(
                condition=models.Q(source="") | models.Q(source__in=ItemSource.values),
                name="credit_source_valid",
            ),
        ]


class CostKind(models.TextChoices):
    HUMAN_ANSWER = "human_answer", "Human answer"
    PREDICTION = "prediction", "Machine prediction"


class CostEntry(models.Model):
    """One billable act: a human answer or a machine prediction."""

    Kind = CostKind

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="costs")
    kind = models.CharField(max_length=14, choices=Kind.choices)
    item = models.ForeignKey(
        "labeling.Item", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Acts this row stands for: 1 per human answer; a prediction batch's size for the machine.
    units = models.PositiveIntegerField(default=1)
    seconds = models.FloatField(default=0)
    amount = models.DecimalField(max_digits=12, decimal_places=6)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("kind", CostKind, "costentry_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(seconds__gte=0), name="costentry_seconds_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.project_id})"
