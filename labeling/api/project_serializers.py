"""Shapes of the project-setup API: projects with their settings and labels, members, answers.

The write serializers check shapes and types only; what the values mean (ranges together, labels
named by credit rules, the active model) is checked by the service, the same for the pages and
the command. The setting fields are built from ``labeling.project_settings.SETTINGS``, so the
API, the form and the command describe one list.
"""

from rest_framework import serializers

from labeling.access import Role, project_roles
from labeling.answer_export import STATES
from labeling.members import INVITE_KINDS
from labeling.models import Membership, Project, ThresholdMode
from labeling.project_settings import CHOICE_TYPES, MAX_LABELS, MONEY_PLACES, SETTINGS


def _setting_field(name: str) -> serializers.Field:
    spec = SETTINGS[name]
    common = {"required": False, "help_text": spec.help}
    if spec.kind == "int":
        return serializers.IntegerField(min_value=spec.low, max_value=spec.high, **common)
    if spec.kind == "float":
        return serializers.FloatField(min_value=spec.low, max_value=spec.high, **common)
    if spec.kind == "money":
        return serializers.DecimalField(
            max_digits=12,
            decimal_places=MONEY_PLACES[name],
            min_value=0,
            max_value=spec.high,
            coerce_to_string=False,
            **common,
        )
    if spec.kind == "bool":
        return serializers.BooleanField(**common)
    if spec.kind == "choice":
        return serializers.ChoiceField(choices=CHOICE_TYPES[name].choices, **common)
    if spec.kind == "rules":
        return serializers.DictField(child=serializers.CharField(max_length=60), **common)
    return serializers.CharField(
        max_length=spec.max_length, allow_blank=name != "name", trim_whitespace=True, **common
    )


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60, help_text="Identifier (a slug), e.g. full_body.")
    display_name = serializers.CharField(
        max_length=120, required=False, allow_blank=True, help_text="What people see."
    )
    key = serializers.CharField(
        max_length=1,
        required=False,
        allow_blank=True,
        help_text="Keyboard key on the inspector page; the first free one of 1–9, 0, q, w… if "
        "left out.",
    )
    position = serializers.IntegerField(read_only=True)


class ProjectSettingsSerializer(serializers.Serializer):
    """Every editable setting, each optional (a field left out keeps its value)."""

    def get_fields(self):
        fields = super().get_fields()
        for name in SETTINGS:
            fields.setdefault(name, _setting_field(name))
        return fields


class ProjectCreateSerializer(ProjectSettingsSerializer):
    name = serializers.CharField(max_length=200, help_text="The project's name.")
    slug = serializers.CharField(
        max_length=80,
        required=False,
        allow_blank=True,
        help_text="Short name in URLs; made from the name if left out.",
    )
    labels = LabelSerializer(many=True, min_length=2, max_length=MAX_LABELS)
    threshold_mode = serializers.ChoiceField(choices=ThresholdMode.choices, required=False)
    target_precision = serializers.FloatField(
        required=False, help_text="Precision the derived accept thresholds guarantee, in (0, 1)."
    )
    threshold_confidence = serializers.FloatField(
        required=False, help_text="Confidence of that guarantee, in (0, 1)."
    )


class ProjectUpdateSerializer(ProjectSettingsSerializer):
    labels = LabelSerializer(
        many=True,
        min_length=2,
        max_length=MAX_LABELS,
        required=False,
        help_text="The whole ordered label set, matched by name: a name left out is removed, a "
        "new one added. Refused while a model is active unless only display names and keys "
        "change, or retire_model is true.",
    )
    retire_model = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Confirm retiring the active model when the label change would break it; a "
        "training on the new labels then starts if there are labels enough.",
    )


class ProjectSerializer(serializers.ModelSerializer):
    labels = LabelSerializer(many=True, read_only=True)
    archived = serializers.SerializerMethodField()
    active_model = serializers.SerializerMethodField()
    your_role = serializers.SerializerMethodField(
        help_text="The caller's role in this project (admin for superusers)."
    )

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "labels",
            *[name for name in SETTINGS if name != "name"],
            "threshold_mode",
            "target_precision",
            "threshold_confidence",
            "active_model",
            "archived",
            "archived_at",
            "your_role",
            "created_at",
        ]
        read_only_fields = fields

    def get_archived(self, project: Project) -> bool:
        return project.archived_at is not None

    def get_active_model(self, project: Project) -> int | None:
        model = project.active_model
        return model.version if model is not None else None

    def get_your_role(self, project: Project) -> str | None:
        request = self.context.get("request")
        if request is None:
            return None
        roles = project_roles(request.user, project)
        for role in (Role.ADMIN, Role.MANAGER, Role.INSPECTOR):
            if role in roles:
                return role.value
        return None


class ProjectUpdateResultSerializer(serializers.Serializer):
    project = ProjectSerializer()
    changed = serializers.ListField(child=serializers.CharField())
    retired_model = serializers.IntegerField(allow_null=True)
    training = serializers.IntegerField(
        allow_null=True, help_text="Version of the training started on the new labels."
    )
    training_refused = serializers.CharField(allow_blank=True)
    summary = serializers.CharField()


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)
    added_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "added_at"]
        read_only_fields = fields


class MemberAddSerializer(serializers.Serializer):
    """Either ``user`` (an existing user) or ``username`` (a new one), and a role."""

    role = serializers.ChoiceField(choices=Role.choices)
    user = serializers.CharField(
        max_length=254, required=False, help_text="An existing user: user name or e-mail."
    )
    username = serializers.CharField(
        max_length=150, required=False, help_text="Create this user and add them."
    )
    email = serializers.CharField(
        max_length=254, required=False, allow_blank=True, help_text="The new user's e-mail."
    )
    invite = serializers.ChoiceField(
        choices=INVITE_KINDS,
        default=INVITE_KINDS[0],
        help_text="How the new user gets in: a generated password or a link to set their own; "
        "either is returned once, in this response only.",
    )

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("user")) == bool(attrs.get("username")):
            raise serializers.ValidationError(
                "Give either 'user' (an existing user) or 'username' (a new user)."
            )
        return attrs


class MemberCreatedSerializer(MemberSerializer):
    password = serializers.CharField(
        allow_null=True, help_text="The new user's password, shown this once."
    )
    set_password_url = serializers.CharField(
        allow_null=True, help_text="A link the new user opens once to choose a password."
    )

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "password", "set_password_url"]
        read_only_fields = fields


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class AnswerRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item_id = serializers.IntegerField()
    inspector = serializers.CharField()
    label = serializers.CharField(allow_null=True, help_text="Null for an undo row.")
    time_on_task_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    state = serializers.ChoiceField(
        choices=STATES,
        help_text="current: counts now; superseded: replaced by a later answer of the same "
        "inspector; undone: taken back; undo: the taking back itself.",
    )
    supersedes = serializers.IntegerField(allow_null=True, help_text="Answer id this row replaces.")
    superseded_by = serializers.IntegerField(allow_null=True)
    gold = serializers.BooleanField(
        allow_null=True, help_text="The image was served as a gold (known-answer) image."
    )
    final_label = serializers.CharField(allow_null=True, help_text="The image's final label now.")
    review_id = serializers.CharField(allow_null=True)
