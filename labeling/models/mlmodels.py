"""Trained classifiers and what they said about each item."""

from django.conf import settings
from django.db import models

from labeling.models.base import TimeStamped, choices_check


class ModelStatus(models.TextChoices):
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    FAILED = "failed", "Failed"


class ModelVersion(TimeStamped):
    Status = ModelStatus

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="model_versions"
    )
    version = models.PositiveIntegerField()
    architecture = models.CharField(max_length=100, default="tf_efficientnet_lite0")
    # Directory (relative to MODEL_ROOT) holding the weights and the resolved config.
    checkpoint_dir = models.CharField(max_length=300, blank=True)
    manifest = models.ForeignKey(
        "labeling.Manifest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    # Per class accept thresholds derived on the held-out set (None: never auto-label).
    thresholds = models.JSONField(default=dict, blank=True)
    # Items held out for early stopping, calibration, thresholds and the promotion gate.
    validation_items = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    status_reason = models.TextField(blank=True)
    progress = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trained_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="modelversion_unique"),
            # At most one active model and one training per project.
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(status="active"), name="one_active_model"
            ),
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(status="training"), name="one_training"
            ),
            choices_check("status", ModelStatus, "modelversion_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} v{self.version} ({self.status})"

    @property
    def is_calibrated(self) -> bool:
        return self.temperature is not None


class PredictionDecision(models.TextChoices):
    AUTO_LABELED = "auto_labeled", "Auto-labeled"
    AUDIT = "audit", "Auto-labeled, audited by humans"
    QUEUED = "queued", "Sent to humans"
    FAILED = "failed", "Failed"
    # Was auto-labeled, then sent back to humans: its class failed the live audit or a shift
    # alarm went off after it (labeling.machine.recheck).
    RECHECK = "recheck", "Auto-labeled, returned to humans"


class Prediction(TimeStamped):
    Decision = PredictionDecision

    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    probabilities = models.JSONField(default=list)
    label = models.ForeignKey(
        "labeling.Label", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    confidence = models.FloatField(null=True, blank=True)
    decision = models.CharField(max_length=14, choices=Decision.choices)
    error = models.TextField(blank=True)
    # How usual the image is for this model (ml.shift): the conformal p-value against the
    # held-out images (None: the model has no shift reference), and whether it was flagged as
    # unusual and therefore sent to humans whatever its confidence.
    shift_pvalue = models.FloatField(null=True, blank=True)
    unusual = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A retried or duplicated task never predicts the same item twice with one model.
            models.UniqueConstraint(fields=["item", "model_version"], name="prediction_unique"),
            choices_check("decision", PredictionDecision, "prediction_decision_valid"),
        ]
