from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import Item, Prediction


class ItemSerializer(serializers.ModelSerializer):
    final_label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    reuse_match = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = [
            "id",
            "status",
            "final_label",
            "final_source",
            "final_confidence",
            "metadata",
            "original_name",
            "sha256",
            "width",
            "height",
            "content_type",
            "created_at",
            "finished_at",
            "image_url",
            "thumbnail_url",
            "reused",
            "reuse_match",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "The earlier image or catalog photo this one was found to be again",
            "properties": {
                "kind": {"type": "string", "enum": ["item", "catalog"]},
                "id": {"type": "integer"},
                "similarity": {"type": "number"},
                "hash_distance": {"type": "integer"},
                "status": {"type": "string"},
            },
        }
    )
    def get_reuse_match(self, item: Item) -> dict | None:
        match = getattr(item, "reuse_match", None)
        if match is None:
            return None
        return {
            "kind": "item" if match.matched_item_id else "catalog",
            "id": match.matched_item_id or match.matched_catalog_id,
            "similarity": match.similarity,
            "hash_distance": match.hash_distance,
            "status": match.status,
        }

    def get_image_url(self, item: Item) -> str:
        from django.urls import reverse

        return reverse("item-image", args=[item.project.slug, item.pk])

    def get_thumbnail_url(self, item: Item) -> str:
        from django.urls import reverse

        return reverse("item-thumbnail", args=[item.project.slug, item.pk])


class IngestResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    item_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class IngestReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = IngestResultSerializer(many=True)


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    metadata = serializers.CharField(
        required=False,
        help_text='JSON: one object applied to every file, or {"<file name>": {...}} per file.',
    )


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version.version")
    label = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Prediction
        fields = [
            "model_version",
            "label",
            "confidence",
            "probabilities",
            "decision",
            "error",
            "created_at",
        ]


class ResolveSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=60)
