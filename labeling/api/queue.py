"""The inspector queue over HTTP: the inspector page and API clients use the same endpoints."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role
from labeling.answers import annotation_submit, annotation_submit_and_lease, annotation_undo
from labeling.api.permissions import api_project
from labeling.models import Assignment, Prediction
from labeling.queue import (
    assignment_next,
    assignment_skip,
    inspector_today,
    lease_renew,
    leases_open,
)

LABELERS = (Role.INSPECTOR, Role.ADMIN)
# Leases one answer may ask for: the inspector page keeps one on screen and three ahead.
MAX_NEXT_PER_ANSWER = 5


class LeaseSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    item = serializers.IntegerField()
    image_url = serializers.CharField()
    expires_at = serializers.DateTimeField()
    suggestion = serializers.DictField(allow_null=True)


def lease_data(lease: Assignment) -> dict:
    project = lease.project
    suggestion = None
    if project.show_model_suggestion and project.active_model_id:
        prediction = (
            Prediction.objects.filter(
                item_id=lease.item_id, model_version_id=project.active_model_id
            )
            .select_related("label")
            .first()
        )
        if prediction and prediction.label:
            suggestion = {"label": prediction.label.name, "confidence": prediction.confidence}
    return {
        "assignment": lease.pk,
        "item": lease.item_id,
        "image_url": reverse("item-image", args=[project.slug, lease.item_id]),
        "expires_at": lease.expires_at,
        "suggestion": suggestion,
    }


# A row id: anything outside this range cannot exist and would overflow the database's integer.
ROW_ID = {"min_value": 1, "max_value": 2**63 - 1}


class AnswerSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(**ROW_ID)
    label = serializers.CharField(max_length=60)
    time_on_task_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000, default=0)
    next = serializers.IntegerField(
        min_value=0,
        max_value=MAX_NEXT_PER_ANSWER,
        default=0,
        help_text="How many new leases to take in the same request (one round trip per "
        "answer). They come back in the reply's `next`; fewer, or none, when nothing is left "
        "for the caller or they hold the most leases allowed. 0 (the default): answer only.",
    )


class AnswerResultSerializer(serializers.Serializer):
    answer = serializers.IntegerField()
    item_status = serializers.CharField()
    next = LeaseSerializer(
        many=True, help_text="The leases taken for the `next` asked for (empty if none)."
    )


class SkipSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(**ROW_ID)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class UndoSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(
        required=False,
        help_text="The lease whose answer to take back; without it, your latest saved answer.",
        **ROW_ID,
    )


class RenewSerializer(serializers.Serializer):
    assignments = serializers.ListField(child=serializers.IntegerField(**ROW_ID), max_length=50)


class NextLease(APIView):
    @extend_schema(
        summary="Lease the next image", request=None, responses={200: LeaseSerializer, 204: None}
    )
    def post(self, request, slug: str) -> Response:
        """Lease the next image to the caller; 204 when nothing is left for them."""
        project = api_project(request, slug, roles=LABELERS)
        lease = assignment_next(project=project, user=request.user)
        if lease is None:
            return Response(status=204)
        return Response(lease_data(lease))


class OpenLeases(APIView):
    @extend_schema(summary="Your open leases", responses=LeaseSerializer(many=True))
    def get(self, request, slug: str) -> Response:
        """The caller's open leases, oldest first (to resume after a reload)."""
        project = api_project(request, slug, roles=LABELERS)
        return Response(
            [lease_data(lease) for lease in leases_open(project=project, user=request.user)]
        )


class SubmitAnswer(APIView):
    @extend_schema(
        summary="Answer a leased image (and lease the next ones)",
        request=AnswerSerializer,
        responses={201: AnswerResultSerializer},
    )
    def post(self, request, slug: str) -> Response:
        """Answer the image held under ``assignment`` with ``label``; with ``next``, also lease
        the next images in the same request (and the same transaction)."""
        project = api_project(request, slug, roles=LABELERS)
        data = AnswerSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = {
            "project": project,
            "assignment_id": data.validated_data["assignment"],
            "user": request.user,
            "label_name": data.validated_data["label"],
            "time_on_task_ms": data.validated_data["time_on_task_ms"],
        }
        leases = []
        if data.validated_data["next"]:
            annotation, leases = annotation_submit_and_lease(
                **answer, lease_next=data.validated_data["next"]
            )
        else:
            annotation = annotation_submit(**answer)
        # The item's status as the answer's transaction committed it (its row was locked).
        return Response(
            {
                "answer": annotation.pk,
                "item_status": annotation.item.status,
                "next": [lease_data(lease) for lease in leases],
            },
            status=201,
        )


class SkipLease(APIView):
    @extend_schema(summary="Skip a leased image", request=SkipSerializer, responses={204: None})
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=LABELERS)
        data = SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment_skip(
            project=project,
            user=request.user,
            assignment_id=data.validated_data["assignment"],
            reason=data.validated_data["reason"],
        )
        return Response(status=204)


class UndoAnswer(APIView):
    @extend_schema(
        summary="Undo your last answer", request=UndoSerializer, responses=LeaseSerializer
    )
    def post(self, request, slug: str) -> Response:
        """Undo the caller's last answer, or the one given on ``assignment`` (two-minute window);
        returns a lease to answer again."""
        project = api_project(request, slug, roles=LABELERS)
        data = UndoSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lease = annotation_undo(
            project=project,
            user=request.user,
            assignment_id=data.validated_data.get("assignment"),
        )
        return Response(lease_data(lease))


class RenewLeases(APIView):
    @extend_schema(
        summary="Renew your leases",
        request=RenewSerializer,
        responses=LeaseSerializer(many=True),
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=LABELERS)
        data = RenewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        leases = lease_renew(
            project=project, user=request.user, assignment_ids=data.validated_data["assignments"]
        )
        return Response([lease_data(lease) for lease in leases])


class MyStats(APIView):
    @extend_schema(
        summary="Your answers today and gold accuracy",
        responses=inline_serializer(
            "InspectorToday",
            {
                "answers_today": serializers.IntegerField(),
                "gold_answers": serializers.IntegerField(),
                "gold_accuracy": serializers.FloatField(allow_null=True),
            },
        ),
    )
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=LABELERS)
        return Response(inspector_today(project=project, user=request.user))
