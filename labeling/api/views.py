"""REST API views: thin wrappers over the same services the pages use."""

from datetime import datetime, time

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.answers import item_resolve_expert
from labeling.api.permissions import api_project
from labeling.api.serializers import (
    IngestReportSerializer,
    ItemSerializer,
    PredictionSerializer,
    ResolveSerializer,
    UploadSerializer,
)
from labeling.ingest import item_ingest
from labeling.metadata import MetadataError, metadata_for_uploads
from labeling.models import Item, ItemStatus

READERS = (Role.ADMIN, Role.MANAGER)


def moment(value: str, name: str) -> datetime:
    """An ISO date or datetime from a query parameter, in the site's time zone if naive."""
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value) if len(value) == 10 else None
        if day is None:
            raise ValidationError({name: f"'{value}' is not an ISO date (YYYY-MM-DD) or datetime."})
        parsed = datetime.combine(day, time.min)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


@extend_schema(
    summary="Images, newest first, filtered",
    parameters=[
        OpenApiParameter("status", str, enum=ItemStatus.values),
        OpenApiParameter("label", str),
        OpenApiParameter("source", str),
        OpenApiParameter("created_after", str, description="ISO date or datetime"),
        OpenApiParameter("created_before", str, description="ISO date or datetime"),
    ],
)
class ItemList(generics.ListAPIView):
    serializer_class = ItemSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        items = Item.objects.filter(project=project).select_related(
            "final_label", "project", "reuse_match"
        )
        params = self.request.query_params
        if params.get("status"):
            items = items.filter(status=params["status"])
        if params.get("label"):
            items = items.filter(final_label__name=params["label"])
        if params.get("source"):
            items = items.filter(final_source=params["source"])
        if params.get("created_after"):
            items = items.filter(created_at__gte=moment(params["created_after"], "created_after"))
        if params.get("created_before"):
            items = items.filter(created_at__lt=moment(params["created_before"], "created_before"))
        return items


@extend_schema(summary="One image with its final label")
class ItemDetail(generics.RetrieveAPIView):
    serializer_class = ItemSerializer

    def get_object(self) -> Item:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return generics.get_object_or_404(Item, project=project, pk=self.kwargs["pk"])


@extend_schema(summary="What each model version predicted for an image")
class ItemPredictions(generics.ListAPIView):
    """What each model version said about the item (admins and managers only: inspectors do not
    see machine guesses unless the project shows suggestions on the inspector page)."""

    serializer_class = PredictionSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        item = generics.get_object_or_404(Item, project=project, pk=self.kwargs["pk"])
        return item.predictions.select_related("model_version", "label").order_by("-created_at")


class ItemResolve(APIView):
    @extend_schema(
        summary="Decide a disputed image", request=ResolveSerializer, responses=ItemSerializer
    )
    def post(self, request, slug: str, pk: int) -> Response:
        """Decide a disputed item as an expert (admins); the answer becomes gold."""
        project = api_project(request, slug, roles=(Role.ADMIN,))
        data = ResolveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = item_resolve_expert(
            item_id=pk, project=project, label_name=data.validated_data["label"], user=request.user
        )
        return Response(ItemSerializer(item).data)


class ItemUpload(APIView):
    """Upload one or more images with metadata; each file gets its own outcome."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Upload images",
        request={"multipart/form-data": UploadSerializer},
        responses=IngestReportSerializer,
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=(Role.ADMIN,))
        files = request.FILES.getlist("files")
        if not files:
            return Response({"detail": "Send one or more images in the 'files' field."}, status=400)
        try:
            uploads = metadata_for_uploads(files, request.data.get("metadata"))
        except MetadataError as exc:
            return Response({"detail": str(exc)}, status=400)
        report = item_ingest(project=project, uploads=uploads, uploader=request.user)
        body = {**report.summary(), "results": [r.as_dict() for r in report.results]}
        code = status.HTTP_201_CREATED if report.count("created") else status.HTTP_200_OK
        return Response(body, status=code)
