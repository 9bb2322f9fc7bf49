from django.contrib import admin

from labeling import models


class LabelInline(admin.TabularInline):
    model = models.Label
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "min_answers",
        "max_answers",
        "consensus_target",
        "active_model",
    ]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [LabelInline, MembershipInline]
    raw_id_fields = ["active_model"]


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "status",
        "final_label",
        "final_source",
        "final_confidence",
        "created_at",
    ]
    list_filter = ["project", "status", "final_source", "is_audit"]
    search_fields = ["sha256", "original_name"]
    raw_id_fields = ["final_label", "uploaded_by"]
    readonly_fields = [
        "sha256",
        "image",
        "thumbnail",
        "width",
        "height",
        "byte_size",
        "content_type",
    ]


@admin.register(models.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "label", "time_on_task_ms", "created_at"]
    list_filter = ["project"]
    raw_id_fields = ["item", "assignment", "supersedes", "label"]

    # Answers are append-only: the admin may read them, never edit or delete them.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "status", "expires_at", "is_gold"]
    list_filter = ["project", "status"]
    raw_id_fields = ["item"]


@admin.register(models.AnnotatorSkill)
class AnnotatorSkillAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "annotator",
        "estimated_accuracy",
        "answers",
        "gold_answers",
        "gold_correct",
    ]
    list_filter = ["project"]


@admin.register(models.GoldItem)
class GoldItemAdmin(admin.ModelAdmin):
    list_display = ["item", "project", "label", "origin", "created_at"]
    list_filter = ["project", "origin"]
    raw_id_fields = ["item", "label"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "architecture", "status", "temperature", "created_at"]
    list_filter = ["project", "status"]


@admin.register(models.Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["item", "model_version", "label", "confidence", "decision"]
    list_filter = ["decision", "model_version__project"]
    raw_id_fields = ["item", "label"]


@admin.register(models.Manifest)
class ManifestAdmin(admin.ModelAdmin):
    list_display = ["job_name", "project", "kind", "line_count", "created_at"]
    list_filter = ["project", "kind"]


@admin.register(models.CreditDecision)
class CreditDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "item",
        "review_id",
        "review_type",
        "outcome",
        "source",
        "probability",
        "decided_at",
    ]
    list_filter = ["project", "outcome", "source", "review_type"]
    raw_id_fields = ["item"]


@admin.register(models.CostEntry)
class CostEntryAdmin(admin.ModelAdmin):
    list_display = ["project", "kind", "annotator", "seconds", "amount", "created_at"]
    list_filter = ["project", "kind"]
    raw_id_fields = ["item"]


@admin.register(models.ThresholdChange)
class ThresholdChangeAdmin(admin.ModelAdmin):
    list_display = ["project", "changed_by", "created_at"]
    list_filter = ["project"]
