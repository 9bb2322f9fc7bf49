"""Frozen snapshots of final labels in SageMaker Ground Truth's augmented-manifest form."""

from django.conf import settings
from django.db import models

from labeling.models.base import TimeStamped, choices_check


class ManifestKind(models.TextChoices):
    EXPORT = "export", "Snapshot of this project's labels"
    IMPORT = "import", "Imported from a Ground Truth manifest"


class Manifest(TimeStamped):
    Kind = ManifestKind

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="manifests"
    )
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.EXPORT)
    job_name = models.CharField(max_length=200)
    label_attribute = models.CharField(max_length=100, default="category")
    file = models.FileField(max_length=300)
    line_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [choices_check("kind", ManifestKind, "manifest_kind_valid")]

    def __str__(self) -> str:
        return self.job_name
