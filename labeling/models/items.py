"""Items: one stored image each, and where its final label came from."""

from django.db import models

from labeling.models.base import TimeStamped, choices_check


class ItemStatus(models.TextChoices):
    NEW = "new", "New"
    PREDICTED = "predicted", "Predicted"
    AUTO_LABELED = "auto_labeled", "Auto-labeled"
    QUEUED = "queued", "Queued for humans"
    IN_REVIEW = "in_review", "In review"
    LABELED = "labeled", "Labeled"
    DISPUTED = "disputed", "Disputed"


class ItemSource(models.TextChoices):
    MACHINE = "machine", "Machine"
    CONSENSUS = "consensus", "Consensus"
    EXPERT = "expert", "Expert"
    IMPORTED = "imported", "Imported"


FINISHED_STATUSES = (ItemStatus.AUTO_LABELED, ItemStatus.LABELED)
HUMAN_QUEUE_STATUSES = (ItemStatus.QUEUED, ItemStatus.IN_REVIEW)


class Item(TimeStamped):
    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="items")
    image = models.FileField(max_length=300)
    thumbnail = models.FileField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    metadata = models.JSONField(default=dict, blank=True)
    uploaded_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    status = models.CharField(
        max_length=16, choices=ItemStatus.choices, default=ItemStatus.NEW, db_index=True
    )
    final_label = models.ForeignKey(
        "labeling.Label", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    final_source = models.CharField(max_length=10, choices=ItemSource.choices, blank=True)
    final_confidence = models.FloatField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Current consensus posterior over the project's labels (ordered as Label.position).
    posterior = models.JSONField(null=True, blank=True)
    # Current (not undone) human answers and the top posterior: the queue serves items closest
    # to a decision first.
    answer_count = models.PositiveSmallIntegerField(default=0)
    posterior_max = models.FloatField(default=0.0)
    # Auto-labeled, but also sent to humans to measure live machine precision.
    is_audit = models.BooleanField(default=False)
    # Drawn for the calibration share: sent to humans whatever the model said, never trained on.
    is_calibration = models.BooleanField(default=False)
    # Sent to humans while no threshold was in force, so its route did not depend on any
    # model's confidence (cleared when a re-route with thresholds in force keeps it queued).
    routed_blind = models.BooleanField(default=False)
    prediction_error = models.TextField(blank=True)
    # The photo is an earlier image or a shop catalog photo again (labeling.embeddings.reuse);
    # the match itself, with the image it links to, is its ReuseMatch.
    reused = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status", "created_at"]),
            # The queue's order (closest to a decision first, then oldest), only over items
            # waiting for humans: the lease query reads it instead of sorting the queue.
            models.Index(
                fields=["project", "-answer_count", "-posterior_max", "created_at", "id"],
                condition=models.Q(status__in=["queued", "in_review"]),
                name="item_queue_order",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="item_unique_sha256"),
            models.UniqueConstraint(fields=["project", "id"], name="item_unique_project_id"),
            choices_check("status", ItemStatus, "item_status_valid"),
            models.CheckConstraint(
                condition=models.Q(final_source="") | models.Q(final_source__in=ItemSource.values),
                name="item_final_source_valid",
            ),
            # A final label always says where it came from, and only finished items carry one.
            models.CheckConstraint(
                condition=(
                    models.Q(final_label__isnull=True, final_source="")
                    | (models.Q(final_label__isnull=False) & ~models.Q(final_source=""))
                ),
                name="item_final_label_has_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}#{self.pk}"
