"""Embeddings and what they serve: the spaces they live in, the shop catalog, reused-photo
matches, prototype classes and the label-error review queue (docs/embeddings.md)."""

from django.conf import settings
from django.db import models

from labeling.models.base import TimeStamped, choices_check


class SpaceStatus(models.TextChoices):
    BUILDING = "building", "Building"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class EmbeddingSpace(TimeStamped):
    """The vectors one network makes: the ImageNet backbone's (the photo space, where reused
    photos are looked for; ``model_version`` null) or a model's penultimate features (the label
    space, for similar images and prototypes). Vectors of different spaces are never compared; a
    new model's space is built (every image embedded again) before it replaces the old one
    (``labeling.embeddings.spaces``)."""

    Status = SpaceStatus

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="embedding_spaces"
    )
    name = models.CharField(max_length=120)
    # The model that makes these vectors; null for the ImageNet backbone.
    model_version = models.ForeignKey(
        "labeling.ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    dim = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    # Reused-photo rule calibrated in this space (ml.reuse.Calibration.as_dict()); empty: the
    # defaults from settings.
    reuse_calibration = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="space_unique_name"),
            # One active model space (the label space); the photo space (ImageNet, no model)
            # stays active beside it.
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status="active", model_version__isnull=False),
                name="space_one_active_model",
            ),
            choices_check("status", SpaceStatus, "space_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name} ({self.status})"


class CatalogImage(TimeStamped):
    """A shop's own product photo: matched against, never queued for labeling."""

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="catalog_images"
    )
    image = models.FileField(max_length=300)
    thumbnail = models.FileField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="catalog_unique_sha256"),
        ]

    def __str__(self) -> str:
        return f"catalog#{self.pk} {self.original_name}"


class Embedding(models.Model):
    """One image's vector in one space (float16 bytes, L2-normalised) and its perceptual
    hashes. The source of truth the vector index is built from, on SQLite and PostgreSQL alike."""

    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="embeddings")
    item = models.ForeignKey(
        "labeling.Item", null=True, blank=True, on_delete=models.CASCADE, related_name="embeddings"
    )
    catalog_image = models.ForeignKey(
        CatalogImage, null=True, blank=True, on_delete=models.CASCADE, related_name="embeddings"
    )
    vector = models.BinaryField()
    phash = models.BigIntegerField()
    phash_trimmed = models.BigIntegerField()
    # The image's small grey fingerprint for the alignment check (ml.reuse_verify, at most
    # 4 KB); null for rows written before it existed, which the alignment arm skips.
    fingerprint = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["space", "id"], name="embedding_space_id")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(item__isnull=False, catalog_image__isnull=True)
                | models.Q(item__isnull=True, catalog_image__isnull=False),
                name="embedding_one_source",
            ),
            models.UniqueConstraint(
                fields=["space", "item"],
                condition=models.Q(item__isnull=False),
                name="embedding_unique_item",
            ),
            models.UniqueConstraint(
                fields=["space", "catalog_image"],
                condition=models.Q(catalog_image__isnull=False),
                name="embedding_unique_catalog",
            ),
        ]

    def __str__(self) -> str:
        owner = f"item {self.item_id}" if self.item_id else f"catalog {self.catalog_image_id}"
        return f"{owner} in space {self.space_id}"


class ReuseStatus(models.TextChoices):
    OPEN = "open", "Waiting for an admin"
    CONFIRMED = "confirmed", "Reuse confirmed"
    DISMISSED = "dismissed", "Not a reuse"


class ReuseMatch(TimeStamped):
    """A new image found to be an earlier image or a catalog photo again."""

    Status = ReuseStatus

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField(
        "labeling.Item", on_delete=models.CASCADE, related_name="reuse_match"
    )
    matched_item = models.ForeignKey(
        "labeling.Item", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    matched_catalog = models.ForeignKey(
        CatalogImage, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    similarity = models.FloatField()
    hash_distance = models.PositiveSmallIntegerField()
    # The alignment score of the pair (ml.reuse_verify); null when either had no fingerprint.
    aligned = models.FloatField(null=True, blank=True)
    # Which arm of the rule fired: the embedding ("similarity") or the hash ("hash").
    matched_by = models.CharField(max_length=10)
    space = models.ForeignKey(
        EmbeddingSpace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(matched_item__isnull=False, matched_catalog__isnull=True)
                | models.Q(matched_item__isnull=True, matched_catalog__isnull=False),
                name="reuse_one_target",
            ),
            choices_check("status", ReuseStatus, "reuse_status_valid"),
        ]


class PrototypeStatus(models.TextChoices):
    PENDING = "pending", "Waiting for its examples' embeddings"
    ACTIVE = "active", "Routing by distance"
    ABSORBED = "absorbed", "Learned by a trained model"
    FAILED = "failed", "Failed"


class Prototype(TimeStamped):
    """A class added from a few examples: until a trained model knows it, images near the
    examples' centroid are routed by two distance thresholds (accept / humans / not this)."""

    Status = PrototypeStatus

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="prototypes"
    )
    label = models.OneToOneField(
        "labeling.Label", on_delete=models.CASCADE, related_name="prototype"
    )
    examples = models.ManyToManyField("labeling.Item", related_name="+")
    space = models.ForeignKey(
        EmbeddingSpace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    status_reason = models.TextField(blank=True)
    centroid = models.BinaryField(null=True, blank=True)  # float32 bytes, L2-normalised
    accept_distance = models.FloatField(null=True, blank=True)  # TL: at or below, accept
    reject_distance = models.FloatField(null=True, blank=True)  # TH: above, not this class
    calibration = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "-created_at"]
        constraints = [
            choices_check("status", PrototypeStatus, "prototype_status_valid"),
            models.CheckConstraint(
                condition=models.Q(accept_distance__isnull=True)
                | models.Q(accept_distance__lte=models.F("reject_distance")),
                name="prototype_thresholds_order",
            ),
        ]


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Waiting for an expert"
    KEPT = "kept", "Label kept"
    RELABELED = "relabeled", "Label changed"


class ReviewReason(models.TextChoices):
    LABEL_ERROR = "label_error", "Confident learning over the human labels"
    EVIDENCE = "evidence", "Certification evidence a confident model contradicts"


class LabelReview(TimeStamped):
    """A final human label that a confident model contradicts: an expert rechecks it. Raised by
    confident learning over all human labels (``labeling.embeddings.label_review``) or, for the
    evidence thresholds are certified on, by certification itself
    (``labeling.machine.evidence_recheck``)."""

    Status = ReviewStatus
    Reason = ReviewReason

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="label_reviews"
    )
    item = models.ForeignKey(
        "labeling.Item", on_delete=models.CASCADE, related_name="label_reviews"
    )
    given_label = models.ForeignKey("labeling.Label", on_delete=models.CASCADE, related_name="+")
    suggested_label = models.ForeignKey(
        "labeling.Label", on_delete=models.CASCADE, related_name="+"
    )
    model_version = models.ForeignKey(
        "labeling.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    given_probability = models.FloatField()
    suggested_probability = models.FloatField()
    reason = models.CharField(
        max_length=12, choices=ReviewReason.choices, default=ReviewReason.LABEL_ERROR
    )
    # The item was certification evidence when flagged: an expert's label keeps it there (an
    # imported label that an expert corrects would otherwise drop out of the evidence, and
    # removing exactly the corrected items would bias it).
    was_evidence = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-suggested_probability", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=models.Q(status="open"), name="review_one_open"
            ),
            choices_check("status", ReviewStatus, "review_status_valid"),
            choices_check("reason", ReviewReason, "review_reason_valid"),
        ]
