"""Project setup over the API: create (site admins), read, edit, archive and restore a project;
list, add, re-role and remove its members; read every raw answer. Thin wrappers over
``labeling.project_setup``, ``labeling.members`` and ``labeling.answer_export``, the services
the pages and the commands call."""

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.access import Role, may_create_projects, projects_for_user
from labeling.answer_export import STATES, answer_filters_parse, answer_row, answers_filter
from labeling.api.permissions import api_project
from labeling.api.project_serializers import (
    AnswerRowSerializer,
    MemberAddSerializer,
    MemberCreatedSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateResultSerializer,
    ProjectUpdateSerializer,
)
from labeling.members import (
    member_add_existing,
    member_invite,
    member_remove,
    member_role_set,
    members_list,
)
from labeling.project_setup import project_archive, project_create, project_restore, project_update

ADMINS = (Role.ADMIN,)
READERS = (Role.ADMIN, Role.MANAGER)
REFUSED = OpenApiResponse(description="Refused: `detail` says why, `code` names the reason.")
NOT_ALLOWED = OpenApiResponse(description="Your role does not allow this.")


class ProjectList(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet:
        archived = self.request.query_params.get("archived") in ("1", "true", "yes")
        return projects_for_user(self.request.user, include_archived=archived).prefetch_related(
            "labels"
        )

    @extend_schema(
        operation_id="projects_list",
        summary="Projects you belong to",
        parameters=[
            OpenApiParameter("archived", OpenApiTypes.BOOL, description="Include archived projects")
        ],
    )
    def get(self, request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="projects_create",
        summary="Create a project",
        description="Site admins only (members of the site's `admin` group, and superusers). "
        "The caller becomes the project's first admin.",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, 400: REFUSED, 403: NOT_ALLOWED},
    )
    def post(self, request) -> Response:
        if not may_create_projects(request.user):
            raise PermissionDenied(
                "Only site admins may create projects; ask one to create it or to make you a "
                "site admin."
            )
        data = ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        labels = [dict(label) for label in values.pop("labels")]
        project = project_create(labels=labels, by=request.user, **values)
        body = ProjectSerializer(project, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetail(APIView):
    @extend_schema(
        operation_id="projects_retrieve",
        summary="A project with its settings and labels",
        responses=ProjectSerializer,
    )
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug)
        return Response(ProjectSerializer(project, context={"request": request}).data)

    @extend_schema(
        operation_id="projects_update",
        summary="Change a project's settings or label set",
        description="Fields left out keep their value. Thresholds change through "
        "`PUT .../thresholds/`. A label change that would break the active model is refused "
        "(409) with the reason unless `retire_model` is true.",
        request=ProjectUpdateSerializer,
        responses={200: ProjectUpdateResultSerializer, 400: REFUSED, 409: REFUSED},
    )
    def patch(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = ProjectUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        labels = values.pop("labels", None)
        result = project_update(
            project=project,
            by=request.user,
            labels=[dict(label) for label in labels] if labels is not None else None,
            **values,
        )
        body = {
            "project": ProjectSerializer(result.project, context={"request": request}).data,
            "changed": result.changed,
            "retired_model": result.retired.version if result.retired else None,
            "training": result.training.version if result.training else None,
            "training_refused": result.training_refused,
            "summary": result.summary(),
        }
        return Response(body)


class ProjectArchive(APIView):
    @extend_schema(
        operation_id="projects_archive",
        summary="Archive a project",
        description="It leaves every list and takes no uploads, leases, answers or trainings; "
        "its members can still read it (reports, exports) at its own URLs.",
        request=None,
        responses=ProjectSerializer,
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        project_archive(project=project, by=request.user)
        return Response(ProjectSerializer(project, context={"request": request}).data)


class ProjectRestore(APIView):
    @extend_schema(
        operation_id="projects_restore",
        summary="Restore an archived project",
        request=None,
        responses=ProjectSerializer,
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        project_restore(project=project, by=request.user)
        return Response(ProjectSerializer(project, context={"request": request}).data)


class MemberList(APIView):
    @extend_schema(
        operation_id="members_list",
        summary="The project's members and their roles",
        responses=MemberSerializer(many=True),
    )
    def get(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        return Response(MemberSerializer(members_list(project=project), many=True).data)

    @extend_schema(
        operation_id="members_add",
        summary="Add an existing user, or create one, with a role",
        description="With `user`, an existing user joins; with `username`, a user is created "
        "and their password or set-password link is in this response only. Roles reach no "
        "further than this project.",
        request=MemberAddSerializer,
        responses={201: MemberCreatedSerializer, 400: REFUSED, 404: REFUSED, 409: REFUSED},
    )
    def post(self, request, slug: str) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        password = link = None
        if values.get("user"):
            membership = member_add_existing(
                project=project, user=values["user"], role=values["role"]
            )
        else:
            invitation = member_invite(
                project=project,
                username=values["username"],
                email=values.get("email", ""),
                role=values["role"],
                invite=values["invite"],
            )
            membership = invitation.membership
            password = invitation.password or None
            if invitation.set_password_path:
                link = request.build_absolute_uri(invitation.set_password_path)
        body = {**MemberSerializer(membership).data, "password": password, "set_password_url": link}
        return Response(body, status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    @extend_schema(
        operation_id="members_set_role",
        summary="Change a member's role in this project",
        request=MemberRoleSerializer,
        responses={200: MemberSerializer, 404: REFUSED, 409: REFUSED},
    )
    def patch(self, request, slug: str, user_id: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        data = MemberRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = member_role_set(
            project=project, user_id=user_id, role=data.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="members_remove",
        summary="Remove a member from this project",
        description="Their answers stay; the images they held go back to the queue. The last "
        "admin cannot be removed.",
        request=None,
        responses={204: None, 404: REFUSED, 409: REFUSED},
    )
    def delete(self, request, slug: str, user_id: int) -> Response:
        project = api_project(request, slug, roles=ADMINS)
        member_remove(project=project, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnswerPages(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class AnswerList(generics.ListAPIView):
    serializer_class = AnswerRowSerializer
    pagination_class = AnswerPages

    def get_queryset(self) -> QuerySet:
        project = api_project(self.request, self.kwargs["slug"], roles=READERS)
        return answers_filter(
            project=project, filters=answer_filters_parse(self.request.query_params)
        )

    def list(self, request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            AnswerRowSerializer([answer_row(a) for a in page], many=True).data
        )

    @extend_schema(
        operation_id="answers_list",
        summary="Every raw answer, oldest first, filtered",
        description="Each answer row as given (corrections and undos are rows of their own), "
        "for audits and agreement analyses. The same rows as CSV: the Answers page.",
        parameters=[
            OpenApiParameter("inspector", str, description="User name"),
            OpenApiParameter("label", str, description="Label name"),
            OpenApiParameter("item", int, description="Image id"),
            OpenApiParameter("state", str, enum=[*STATES]),
            OpenApiParameter("start", OpenApiTypes.DATE, description="Given on or after"),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Given on or before"),
            OpenApiParameter("page_size", int, description="Rows per page (at most 1000)"),
        ],
        responses={200: AnswerRowSerializer(many=True), 400: REFUSED},
    )
    def get(self, request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)
