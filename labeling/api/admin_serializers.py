"""Serializers of the admin API: threshold settings, their preview, and model versions."""

from rest_framework import serializers

from labeling.machine.threshold_tuning import ThresholdSettingsInvalid, threshold_settings_clean
from labeling.models import ModelVersion, ThresholdMode, ThresholdScope


class ThresholdSettingsSerializer(serializers.Serializer):
    """A threshold setting; a field left out keeps the project's current value. Needs the
    project in the context (``{"project": project}``)."""

    mode = serializers.ChoiceField(choices=ThresholdMode.choices, required=False)
    target_precision = serializers.FloatField(
        required=False, help_text="Precision the derived thresholds guarantee, in (0, 1)."
    )
    threshold_confidence = serializers.FloatField(
        required=False, help_text="Confidence of that guarantee, in (0, 1)."
    )
    manual_thresholds = serializers.DictField(
        child=serializers.FloatField(allow_null=True, min_value=0.0, max_value=1.0),
        required=False,
        help_text="Per label name, a threshold in [0, 1], or null: never auto-label that class. "
        "The whole map is replaced; a label left out is never auto-labeled in manual mode.",
    )
    scope = serializers.ChoiceField(
        choices=ThresholdScope.choices,
        required=False,
        help_text="What the target-mode guarantee is about: each class's auto-labels, or all "
        "auto-labels together.",
    )
    calibration_share = serializers.FloatField(
        required=False,
        help_text="Share of incoming images sent to inspectors at random whatever the model "
        "says, in [0, 1): the sample thresholds are certified on.",
    )

    def validate(self, attrs: dict) -> dict:
        try:
            cleaned = threshold_settings_clean(project=self.context["project"], **attrs)
        except ThresholdSettingsInvalid as exc:
            raise serializers.ValidationError(
                {exc.field or "non_field_errors": [exc.message]}
            ) from exc
        return cleaned.as_dict()


class LiveAuditSerializer(serializers.Serializer):
    audited = serializers.IntegerField()
    correct = serializers.IntegerField()
    precision = serializers.FloatField()
    evidence = serializers.FloatField(
        help_text="The sequential test's evidence that precision is below target (starts at 1)."
    )
    pause_at = serializers.FloatField(help_text="Evidence at which the class pauses (1/δ).")
    suspect = serializers.BooleanField(help_text="Audited at the raised rate for now.")


class ThresholdClassSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    derived = serializers.FloatField(
        allow_null=True, help_text="Threshold derived from the target (null: never)."
    )
    support = serializers.IntegerField(
        help_text="Calibration items (the certification's evidence) predicted as this class."
    )
    accepted = serializers.IntegerField()
    errors = serializers.IntegerField()
    upper_bound = serializers.FloatField(allow_null=True)
    reason = serializers.CharField()
    needed = serializers.IntegerField(
        allow_null=True,
        help_text="A class never auto-labeled: at least this many more held-out images "
        "predicted as it, all right, before a threshold can pass.",
    )
    needed_labels = serializers.IntegerField(
        allow_null=True, help_text="About this many more human labels of the class give those."
    )
    held_out_percent = serializers.IntegerField(
        allow_null=True, help_text="Share of human labels held out to prove thresholds on."
    )
    manual = serializers.FloatField(allow_null=True)
    in_force = serializers.FloatField(allow_null=True, help_text="Threshold routing uses now.")
    live = LiveAuditSerializer(allow_null=True)
    paused = serializers.DictField(allow_null=True)


class ThresholdChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    by = serializers.CharField(allow_null=True)
    summary = serializers.ListField(child=serializers.CharField())
    before = serializers.DictField()
    after = serializers.DictField()


class ShiftStatusSerializer(serializers.Serializer):
    alert = serializers.DictField(
        allow_null=True,
        help_text="The standing shift alert (null: none). While it stands nothing is "
        'auto-labeled; resume with POST thresholds/resume/ {"shift": true}.',
    )
    checking = serializers.BooleanField(
        help_text="Whether incoming images are checked against the model's held-out images."
    )
    alpha = serializers.FloatField(
        allow_null=True, help_text="Share of ordinary images sent to humans as unusual."
    )
    calibration_items = serializers.IntegerField(allow_null=True)
    images_seen = serializers.IntegerField(help_text="Images the drift monitor has counted.")
    unusual = serializers.IntegerField(help_text="Of those, flagged as unusual.")
    window = serializers.DictField(
        allow_null=True,
        help_text="The window test: images per window (size), its alarm level (z) and the "
        "random held-out images it compares with (n_calibration); null when off or too few.",
    )
    random_calibration_items = serializers.IntegerField(
        allow_null=True, help_text="Held-out images drawn at random from the stream."
    )
    window_short = serializers.BooleanField(
        help_text="The window test is on but has too few random held-out images to run."
    )
    window_needs = serializers.IntegerField(help_text="Random held-out images it needs.")
    window_last = serializers.DictField(
        allow_null=True,
        help_text="The last window's rank statistics (feature_z, image_z) and the alarm level.",
    )


class ThresholdStateSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=ThresholdMode.choices)
    target_precision = serializers.FloatField()
    threshold_confidence = serializers.FloatField()
    manual_thresholds = serializers.DictField(child=serializers.FloatField(allow_null=True))
    scope = serializers.ChoiceField(choices=ThresholdScope.choices)
    calibration_share = serializers.FloatField()
    model = serializers.IntegerField(allow_null=True, help_text="Active model version.")
    classes = ThresholdClassSerializer(many=True)
    changes = ThresholdChangeSerializer(many=True)
    shift = ShiftStatusSerializer()


class ThresholdSaveSerializer(ThresholdStateSerializer):
    changed = serializers.BooleanField()
    rerouted = serializers.IntegerField(help_text="Waiting images sent through routing again.")


class ThresholdResumeSerializer(serializers.Serializer):
    """What to resume: one class the live audit paused, or the project after a shift alert."""

    label = serializers.CharField(
        required=False, max_length=60, help_text="A class the live audit paused."
    )
    shift = serializers.BooleanField(
        required=False, default=False, help_text="Resume auto-labeling after a shift alert."
    )

    def validate(self, attrs):
        if bool(attrs.get("label")) == bool(attrs.get("shift")):
            raise serializers.ValidationError("Give either a label to resume or shift: true.")
        return attrs


class PreviewClassSerializer(serializers.Serializer):
    name = serializers.CharField()
    threshold = serializers.FloatField(allow_null=True)
    queued = serializers.IntegerField()
    auto_label = serializers.IntegerField()
    expected_errors_calibrated = serializers.FloatField()
    heldout_precision = serializers.FloatField(allow_null=True)
    heldout_coverage = serializers.FloatField(allow_null=True)


class HeldoutOutcomeSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    coverage = serializers.FloatField()
    precision = serializers.FloatField(allow_null=True)


class ThresholdPreviewSerializer(serializers.Serializer):
    settings = serializers.DictField()
    model = serializers.IntegerField(allow_null=True)
    thresholds = serializers.DictField(child=serializers.FloatField(allow_null=True))
    queued = serializers.IntegerField(help_text="Untouched queued images the model predicted.")
    auto_label = serializers.IntegerField(help_text="Of those, auto-labeled with this setting.")
    credit_pending = serializers.IntegerField(
        help_text="Above the threshold but kept for a human by the credit rule."
    )
    audit_rate = serializers.FloatField()
    calibration_cost = serializers.DictField(
        help_text="Answers and money the calibration share of this setting costs per 1,000 "
        "images and per day, from the project's arrival rate and answers per human label."
    )
    expected_errors_calibrated = serializers.FloatField(
        help_text="Sum of 1 - calibrated confidence over the auto-labeled images."
    )
    expected_errors_heldout = serializers.FloatField(
        allow_null=True,
        help_text="Per class, auto-labels times the held-out error rate at the threshold.",
    )
    heldout = HeldoutOutcomeSerializer(allow_null=True)
    per_class = PreviewClassSerializer(many=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "status",
            "status_reason",
            "architecture",
            "hyperparameters",
            "metrics",
            "thresholds",
            "temperature",
            "progress",
            "created_by",
            "created_at",
            "trained_at",
            "promoted_at",
        ]
        read_only_fields = fields
