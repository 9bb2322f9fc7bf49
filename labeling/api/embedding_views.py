"""Embedding API: similar images, reused-photo matches, the shop catalog, prototype classes,
the label recheck queue and the embedding spaces. Thin wrappers over labeling.embeddings."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.api.embedding_serializers import (
    CatalogImageSerializer,
    EmbeddingStateSerializer,
    FilesSerializer,
    LabelReviewSerializer,
    PrototypeCreateSerializer,
    PrototypeSerializer,
    RecheckDecisionSerializer,
    ReuseDecisionSerializer,
    ReuseMatchSerializer,
    ReusePolicySerializer,
    ReviewRunSerializer,
    SimilarSerializer,
    image_urls,
)
from labeling.api.permissions import api_project
from labeling.api.serializers import IngestReportSerializer
from labeling.dispatch import REVIEW_LABELS, job_queue
from labeling.embeddings.catalog import catalog_delete, catalog_upload
from labeling.embeddings.label_review import label_review_decide
from labeling.embeddings.prototypes import prototype_create
from labeling.embeddings.reuse import reuse_decide, reuse_matches, reuse_policy_set
from labeling.embeddings.search import MAX_K, similar_images
from labeling.embeddings.state import embedding_state
from labeling.ingest import Upload
from labeling.models import CatalogImage, Item, LabelReview, Prototype, ReuseStatus, ReviewStatus

ADMINS = (Role.ADMIN,)
READERS = (Role.ADMIN, Role.MANAGER)


def _k(request) -> int:
    raw = request.query_params.get("k", "12")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_K:
        raise ValidationError({"k": f"k must be a whole number from 1 to {MAX_K}."})
    return int(raw)


class ItemSimilar(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("k", int, description=f"How many (1-{MAX_K}, default 12)")],
        responses=SimilarSerializer,
        summary="Similar images",
        description="The item's nearest images (project items and catalog photos) in the "
        "project's embedding space, nearest first, with their cosine distances. 409 while the "
        "item has no embedding yet.",
    )
    def get(self, request, slug: str, pk: int) -> Response:
        project = api_project(request, slug, roles=READERS)
        item = generics.get_object_or_404(Item, project=project, pk=pk)
        k = _k(request)
        results = [
            {
                "kind": n.kind,
                "id": n.id,
                "distance": n.distance,
                "label": n.label,
                **image_urls(
                    project.slug,
                    n.id if n.kind == "item" else None,
                    n.id if n.kind == "catalog" else None,
                ),
            }
            for n in similar_images(project=project, item_id=item.pk, k=k)
        ]
        return Response(SimilarSerializer({"item": item.pk, "k": k, "results": results}).data)


class ItemReuse(APIView):
    @extend_schema(
        responses=ReuseMatchSerializer,
        summary="Reuse match of an item",
        description="The earlier image or catalog photo this item was found to be again; "
        "404 when it matched none.",
    )
    def get(self, request, slug: str, pk: int) -> Response:
        project = api_project(request, slug, roles=READERS)
        item = generics.get_object_or_404(Item, project=project, pk=pk)
        match = generics.get_object_or_404(reuse_matches(project=project), item=item)
        return Response(ReuseMatchSerializer(match).data)

    @extend_schema(
        request=ReuseDecisionSerializer,
        responses=ReuseMatchSerializer,
        summary="Decide a reuse match",
        description="confirm denies the item's credit; dismiss clears the reused mark and "
        "decides the credit from the label again.",
    )
    def post(self, request, slug: str, pk: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = ReuseDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        match = reuse_decide(
            project=project,
            item_id=pk,
            confirmed=data.validated_data["decision"] == "confirm",
            by=request.user,
        )
        return Response(ReuseMatchSerializer(match).data)


class ReusePolicy(APIView):
    @extend_schema(responses=ReusePolicySerializer, summary="Reuse policy")
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=READERS)
        return Response(ReusePolicySerializer({"reuse_policy": project.reuse_policy}).data)

    @extend_schema(
        request=ReusePolicySerializer,
        responses=ReusePolicySerializer,
        summary="Set the reuse policy",
        description="What a reused photo does to its credit from now on.",
    )
    def put(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = ReusePolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = reuse_policy_set(project=project, policy=data.validated_data["reuse_policy"])
        return Response(ReusePolicySerializer({"reuse_policy": project.reuse_policy}).data)


@extend_schema(
    parameters=[OpenApiParameter("status", str, enum=ReuseStatus.values)],
    summary="Reuse matches",
)
class ReuseMatchList(generics.ListAPIView):
    """The project's reused-photo matches, newest first."""

    serializer_class = ReuseMatchSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        wanted = self.request.query_params.get("status")
        if wanted and wanted not in ReuseStatus.values:
            raise ValidationError({"status": f"one of {', '.join(ReuseStatus.values)}"})
        return reuse_matches(project=project, status=wanted)


@extend_schema_view(get=extend_schema(summary="List the shop catalog's photos"))
class CatalogList(generics.ListAPIView):
    """The shop's catalog photos: reused review photos are matched against them; they are
    never queued for labeling."""

    serializer_class = CatalogImageSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet:
        self.project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return CatalogImage.objects.filter(project=self.project)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "project": getattr(self, "project", None)}

    @extend_schema(
        request={"multipart/form-data": FilesSerializer},
        responses=IngestReportSerializer,
        summary="Upload catalog photos",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        files = request.FILES.getlist("files")
        if not files:
            return Response({"detail": "Send one or more images in the 'files' field."}, status=400)
        report = catalog_upload(
            project=project, uploads=[Upload(f.name, f) for f in files], by=request.user
        )
        body = {**report.summary(), "results": [r.as_dict() for r in report.results]}
        code = status.HTTP_201_CREATED if report.count("created") else status.HTTP_200_OK
        return Response(body, status=code)


class CatalogPhoto(APIView):
    @extend_schema(request=None, responses={204: None}, summary="Delete a catalog photo")
    def delete(self, request, slug: str, pk: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        if not catalog_delete(project=project, catalog_id=pk):
            return Response({"detail": "No such catalog photo."}, status=404)
        return Response(status=204)


@extend_schema_view(get=extend_schema(summary="List the labels learned from a few examples"))
class PrototypeList(generics.ListAPIView):
    """Classes added from a few examples, routed by distance until a model learns them."""

    serializer_class = PrototypeSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return Prototype.objects.filter(project=project).select_related("label")

    @extend_schema(
        request={"multipart/form-data": PrototypeCreateSerializer},
        responses={201: PrototypeSerializer},
        summary="Add a label from a few examples",
        description="Adds the label and its example images (labeled with it by you); a worker "
        "embeds them and calibrates the two distance thresholds. Until a trained model knows "
        "the label, images near the examples are labeled with it, sent to humans, or left to "
        "the model.",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        files = request.FILES.getlist("files")
        name = str(request.data.get("name") or "")
        prototype = prototype_create(
            project=project,
            name=name,
            display_name=str(request.data.get("display_name") or ""),
            uploads=[Upload(f.name, f) for f in files],
            by=request.user,
        )
        return Response(PrototypeSerializer(prototype).data, status=201)


@extend_schema_view(get=extend_schema(summary="One label learned from examples"))
class PrototypeDetail(generics.RetrieveAPIView):
    serializer_class = PrototypeSerializer

    def get_object(self) -> Prototype:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return generics.get_object_or_404(Prototype, project=project, pk=self.kwargs["pk"])


@extend_schema(
    parameters=[OpenApiParameter("status", str, enum=ReviewStatus.values)],
    summary="Label rechecks",
)
class RecheckList(generics.ListAPIView):
    """Human labels a confident model contradicts (confident learning over all human labels, or
    certification over its evidence: ``reason``), most certain first."""

    serializer_class = LabelReviewSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        wanted = self.request.query_params.get("status") or ReviewStatus.OPEN
        if wanted not in ReviewStatus.values:
            raise ValidationError({"status": f"one of {', '.join(ReviewStatus.values)}"})
        return LabelReview.objects.filter(project=project, status=wanted).select_related(
            "given_label", "suggested_label", "model_version", "decided_by"
        )


class RecheckRun(APIView):
    @extend_schema(
        request=None,
        responses={202: ReviewRunSerializer},
        summary="Look for label errors now",
        description="Queues the confident-learning pass over the project's human labels "
        "(it also runs every few hours).",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        job_queue(REVIEW_LABELS, project.pk)
        return Response({"checked": 0, "flagged": 0, "reason": "queued"}, status=202)


class RecheckDecide(APIView):
    @extend_schema(
        request=RecheckDecisionSerializer,
        responses=LabelReviewSerializer,
        summary="Decide a recheck",
        description="The expert's label becomes the item's final label (source expert).",
    )
    def post(self, request, slug: str, pk: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = RecheckDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = label_review_decide(
            project=project, review_id=pk, label_name=data.validated_data["label"], by=request.user
        )
        return Response(LabelReviewSerializer(review).data)


class EmbeddingState(APIView):
    @extend_schema(
        responses=EmbeddingStateSerializer,
        summary="Embedding spaces",
        description="Which network's vectors the project is compared in, how many images have "
        "one, the vector index's size and the reused-photo thresholds.",
    )
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=READERS)
        return Response(EmbeddingStateSerializer(embedding_state(project=project)).data)
