"""Manifests over HTTP: snapshot, list, download, import (SageMaker Ground Truth form)."""

from django.http import FileResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.api.permissions import api_project
from labeling.manifests import manifest_export, manifest_import
from labeling.models import Manifest

READERS = (Role.ADMIN, Role.MANAGER)
MAX_MANIFEST_BYTES = 50 * 2**20


class ManifestSerializer(serializers.ModelSerializer):
    class Meta:
        model = Manifest
        fields = ["id", "kind", "job_name", "label_attribute", "line_count", "created_at"]


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="Ground Truth augmented manifest (JSON Lines)")


class ImportReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    relabeled = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())
    manifest = serializers.IntegerField(allow_null=True)


@extend_schema_view(get=extend_schema(summary="Label snapshots (manifests), newest first"))
class ManifestList(generics.ListCreateAPIView):
    serializer_class = ManifestSerializer

    def get_queryset(self):
        return Manifest.objects.filter(
            project=api_project(self.request, self.kwargs["slug"], roles=READERS)
        )

    @extend_schema(
        summary="Snapshot the final labels as a manifest",
        request=None,
        responses={201: ManifestSerializer},
    )
    def post(self, request, slug: str) -> Response:
        """Snapshot the project's final human labels (consensus, expert, imported)."""
        project = api_project(request, slug, roles=(Role.ADMIN,))
        manifest = manifest_export(project=project, by=request.user)
        return Response(ManifestSerializer(manifest).data, status=201)


class ManifestDownload(APIView):
    @extend_schema(
        summary="Download a manifest (JSON Lines)",
        responses={(200, "application/x-ndjson"): bytes},
    )
    def get(self, request, slug: str, pk: int):
        project = api_project(request, slug, roles=READERS)
        manifest = get_object_or_404(Manifest, project=project, pk=pk)
        return FileResponse(
            manifest.file.open("rb"),
            as_attachment=True,
            filename=f"{manifest.job_name}.manifest",
            content_type="application/x-ndjson",
        )


class ManifestImport(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Import labels from a manifest",
        request={"multipart/form-data": ImportSerializer},
        responses=ImportReportSerializer,
    )
    def post(self, request, slug: str) -> Response:
        """Import labels; images are found in this service's storage by their source-ref."""
        project = api_project(request, slug, roles=(Role.ADMIN,))
        data = ImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > MAX_MANIFEST_BYTES:
            return Response({"detail": "The manifest is larger than 50 MB."}, status=400)
        report = manifest_import(
            project=project, content=upload.read(), by=request.user, file_name=upload.name
        )
        return Response(report.as_dict(), status=201 if report.created or report.relabeled else 200)
