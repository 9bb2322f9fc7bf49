"""REST API views: thin wrappers over the same services the pages use."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role, projects_for_user
from labeling.api.permissions import api_project
from labeling.api.serializers import (
    IngestReportSerializer,
    ItemSerializer,
    ProjectSerializer,
    UploadSerializer,
)
from labeling.ingest import item_ingest
from labeling.metadata import MetadataError, metadata_for_uploads
from labeling.models import Item, ItemStatus


class ProjectList(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet:
        return projects_for_user(self.request.user).prefetch_related("labels")


class ProjectDetail(generics.RetrieveAPIView):
    serializer_class = ProjectSerializer

    def get_object(self):
        return api_project(self.request, self.kwargs["slug"])


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=ItemStatus.values),
        OpenApiParameter("label", str),
        OpenApiParameter("source", str),
        OpenApiParameter("created_after", str, description="ISO date or datetime"),
        OpenApiParameter("created_before", str, description="ISO date or datetime"),
    ]
)
class ItemList(generics.ListAPIView):
    serializer_class = ItemSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"])
        items = Item.objects.filter(project=project).select_related("final_label", "project")
        params = self.request.query_params
        if params.get("status"):
            items = items.filter(status=params["status"])
        if params.get("label"):
            items = items.filter(final_label__name=params["label"])
        if params.get("source"):
            items = items.filter(final_source=params["source"])
        if params.get("created_after"):
            items = items.filter(created_at__gte=params["created_after"])
        if params.get("created_before"):
            items = items.filter(created_at__lt=params["created_before"])
        return items


class ItemDetail(generics.RetrieveAPIView):
    serializer_class = ItemSerializer

    def get_object(self) -> Item:
        project = api_project(self.request, self.kwargs["slug"])
        return generics.get_object_or_404(Item, project=project, pk=self.kwargs["pk"])


class ItemUpload(APIView):
    """Upload one or more images with metadata; each file gets its own outcome."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer}, responses=IngestReportSerializer
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
