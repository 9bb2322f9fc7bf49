"""Admin API: threshold settings (read, save, preview) and model versions (list, train,
promote, roll back). Thin wrappers over the services the admin pages use."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.api.admin_serializers import (
    ModelVersionSerializer,
    ThresholdPreviewSerializer,
    ThresholdSaveSerializer,
    ThresholdSettingsSerializer,
    ThresholdStateSerializer,
)
from labeling.api.permissions import api_project
from labeling.machine.model_import import model_import_upload
from labeling.machine.promotion import model_promote, model_rollback
from labeling.machine.threshold_changes import threshold_state, thresholds_save
from labeling.machine.threshold_tuning import threshold_preview
from labeling.machine.training import training_start
from labeling.models import ModelVersion

ADMINS = (Role.ADMIN,)
READERS = (Role.ADMIN, Role.MANAGER)


class ThresholdSettings(APIView):
    """The project's accept thresholds: a target precision that derives them, or per-class
    values set by hand."""

    @extend_schema(responses=ThresholdStateSerializer, summary="Threshold settings")
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=READERS)
        return Response(ThresholdStateSerializer(threshold_state(project=project)).data)

    @extend_schema(
        request=ThresholdSettingsSerializer,
        responses=ThresholdSaveSerializer,
        summary="Save threshold settings",
        description="Records who changed what (ThresholdChange) and re-routes the untouched "
        "queued images with the new thresholds. Fields left out keep their value.",
    )
    def put(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        incoming = ThresholdSettingsSerializer(data=request.data, context={"project": project})
        incoming.is_valid(raise_exception=True)
        change, rerouted = thresholds_save(
            project=project, by=request.user, **incoming.validated_data
        )
        body = {**threshold_state(project=project), "changed": change is not None}
        body["rerouted"] = rerouted
        return Response(ThresholdSaveSerializer(body).data)


class ThresholdPreview(APIView):
    """What a setting would do now, without saving it."""

    @extend_schema(
        request=ThresholdSettingsSerializer,
        responses=ThresholdPreviewSerializer,
        summary="Preview threshold settings",
        description="How many untouched queued images the active model would auto-label with "
        "this setting, and how many errors to expect: from calibrated confidences and from the "
        "held-out error rate per class.",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        incoming = ThresholdSettingsSerializer(data=request.data, context={"project": project})
        incoming.is_valid(raise_exception=True)
        preview = threshold_preview(project=project, **incoming.validated_data)
        return Response(ThresholdPreviewSerializer(preview).data)


class ModelList(generics.ListAPIView):
    """The project's model versions, newest first."""

    serializer_class = ModelVersionSerializer

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return ModelVersion.objects.filter(project=project).select_related("created_by")


class ModelDetail(generics.RetrieveAPIView):
    """One model version, with its training progress while it trains."""

    serializer_class = ModelVersionSerializer

    def get_object(self) -> ModelVersion:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return generics.get_object_or_404(
            ModelVersion.objects.select_related("created_by"),
            project=project,
            version=self.kwargs["version"],
        )


class ModelTrain(APIView):
    @extend_schema(
        request=None,
        responses={201: ModelVersionSerializer},
        summary="Start a training",
        description="Snapshots the human labels and queues a training; 409 while one runs or "
        "with too few labels.",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        model = training_start(project=project, by=request.user)
        return Response(ModelVersionSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelImport(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"archive": {"type": "string", "format": "binary"}},
                "required": ["archive"],
            }
        },
        responses={201: ModelVersionSerializer},
        summary="Import a model trained elsewhere",
        description="Upload a .zip or .tar.gz holding a checkpoint written by ml.training.train "
        "(config.json and model.pt). It must name the project's labels in the project's order, "
        "be calibrated and load; otherwise 400 with the reason. The new version is scored on the "
        "project's held-out labels in a worker (status 'training', then 'ready' or 'active' "
        "after the promotion gate). 409 while another version trains.",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        archive = request.FILES.get("archive")
        if archive is None:
            raise ValidationError({"archive": ["Upload the checkpoint archive as 'archive'."]})
        model = model_import_upload(project=project, archive=archive, by=request.user)
        return Response(ModelVersionSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelPromote(APIView):
    @extend_schema(
        request=None,
        responses=ModelVersionSerializer,
        summary="Promote a model version",
        description="Makes a ready or retired version active and re-routes the queue.",
    )
    def post(self, request, slug: str, version: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        model = generics.get_object_or_404(ModelVersion, project=project, version=version)
        return Response(ModelVersionSerializer(model_promote(model=model, by=request.user)).data)


class ModelRollback(APIView):
    @extend_schema(
        request=None,
        responses=ModelVersionSerializer,
        summary="Roll back to the previous model",
        description="Re-activates the most recently retired model.",
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        model = model_rollback(project=project, by=request.user)
        return Response(ModelVersionSerializer(model).data)
