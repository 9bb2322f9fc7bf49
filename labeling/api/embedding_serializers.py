"""Serializers of the embedding API: similar images, reuse matches, catalog, prototypes,
rechecks and the state of the embedding spaces."""

from django.urls import reverse
from rest_framework import serializers

from labeling.models import CatalogImage, LabelReview, Prototype, ReuseMatch


def image_urls(project_slug: str, item_id: int | None, catalog_id: int | None) -> dict:
    if item_id is not None:
        return {
            "image_url": reverse("item-image", args=[project_slug, item_id]),
            "thumbnail_url": reverse("item-thumbnail", args=[project_slug, item_id]),
        }
    return {
        "image_url": reverse("catalog-image", args=[project_slug, catalog_id]),
        "thumbnail_url": reverse("catalog-thumbnail", args=[project_slug, catalog_id]),
    }


class NeighbourSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["item", "catalog"])
    id = serializers.IntegerField()
    distance = serializers.FloatField(
        help_text="Cosine distance (0 = same direction, 2 = opposite)"
    )
    label = serializers.CharField(allow_null=True, help_text="The item's final label, if any")
    image_url = serializers.CharField()
    thumbnail_url = serializers.CharField()


class SimilarSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    k = serializers.IntegerField()
    results = NeighbourSerializer(many=True)


class ReuseMatchSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id")
    matched_kind = serializers.SerializerMethodField()
    matched_id = serializers.SerializerMethodField()
    matched_image_url = serializers.SerializerMethodField()
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ReuseMatch
        fields = [
            "item",
            "matched_kind",
            "matched_id",
            "matched_image_url",
            "similarity",
            "hash_distance",
            "aligned",
            "matched_by",
            "status",
            "decided_by",
            "decided_at",
            "created_at",
        ]

    def get_matched_kind(self, match: ReuseMatch) -> str:
        return "item" if match.matched_item_id else "catalog"

    def get_matched_id(self, match: ReuseMatch) -> int:
        return match.matched_item_id or match.matched_catalog_id

    def get_matched_image_url(self, match: ReuseMatch) -> str:
        slug = match.project.slug
        return image_urls(slug, match.matched_item_id, match.matched_catalog_id)["image_url"]


class ReuseDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(
        choices=["confirm", "dismiss"],
        help_text="confirm: the photo is reused, its credit is denied; dismiss: not a reuse",
    )


class ReusePolicySerializer(serializers.Serializer):
    reuse_policy = serializers.ChoiceField(
        choices=["review", "deny"],
        help_text="review: a reused photo's credit waits for an admin; deny: denied at once",
    )


class CatalogImageSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = CatalogImage
        fields = [
            "id",
            "original_name",
            "sha256",
            "width",
            "height",
            "content_type",
            "created_at",
            "image_url",
            "thumbnail_url",
        ]

    def get_image_url(self, photo: CatalogImage) -> str:
        return reverse("catalog-image", args=[self.context["project"].slug, photo.pk])

    def get_thumbnail_url(self, photo: CatalogImage) -> str:
        return reverse("catalog-thumbnail", args=[self.context["project"].slug, photo.pk])


class FilesSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)


class PrototypeSerializer(serializers.ModelSerializer):
    label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    examples = serializers.SerializerMethodField()

    class Meta:
        model = Prototype
        fields = [
            "id",
            "label",
            "status",
            "status_reason",
            "examples",
            "accept_distance",
            "reject_distance",
            "calibration",
            "created_at",
        ]

    def get_examples(self, prototype: Prototype) -> list[int]:
        return sorted(item.pk for item in prototype.examples.all())


class PrototypeCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60, help_text="The new label's name (a slug)")
    display_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    files = serializers.ListField(
        child=serializers.FileField(), allow_empty=False, help_text="5-200 example images"
    )


class LabelReviewSerializer(serializers.ModelSerializer):
    item = serializers.IntegerField(source="item_id")
    given_label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    suggested_label = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model_version = serializers.IntegerField(source="model_version.version", allow_null=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = LabelReview
        fields = [
            "id",
            "item",
            "given_label",
            "suggested_label",
            "given_probability",
            "suggested_probability",
            "model_version",
            "reason",
            "was_evidence",
            "status",
            "decided_by",
            "decided_at",
            "created_at",
        ]


class RecheckDecisionSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=60, help_text="The label the expert gives")


class ReviewRunSerializer(serializers.Serializer):
    checked = serializers.IntegerField()
    flagged = serializers.IntegerField()
    reason = serializers.CharField(required=False)
    model_version = serializers.IntegerField(required=False)


class SpaceSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    used_for = serializers.ListField(
        child=serializers.CharField(),
        help_text="reused photos (photo space); similar images, prototypes (label space)",
    )
    model_version = serializers.IntegerField(allow_null=True)
    dim = serializers.IntegerField()
    rows = serializers.IntegerField()
    indexed = serializers.IntegerField(allow_null=True)
    reuse_thresholds = serializers.DictField()
    reuse_calibration = serializers.DictField()
    progress = serializers.DictField()


class EmbeddingStateSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    embedded = serializers.IntegerField(help_text="Items with a vector in the label space")
    reused = serializers.IntegerField()
    spaces = SpaceSerializer(many=True)
