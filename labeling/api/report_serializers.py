"""Shapes of the report endpoints: the cost report's three tables and credit decisions."""

from rest_framework import serializers

from labeling.credit_report import CREDIT_COLUMNS
from labeling.models import CreditDecision


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=6, **kwargs)


class CostSummarySerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    currency = serializers.CharField()
    cost_mode = serializers.CharField()
    price_per_answer = serializers.DecimalField(max_digits=10, decimal_places=4)
    hourly_rate = serializers.DecimalField(max_digits=10, decimal_places=2)
    machine_price_per_1000 = serializers.DecimalField(max_digits=10, decimal_places=4)
    min_answers = serializers.IntegerField()
    images_ingested = serializers.IntegerField()
    auto_labeled = serializers.IntegerField(help_text="Final labels from the machine.")
    human_labeled = serializers.IntegerField(
        help_text="Final labels inspectors decided: consensus, or an expert resolving a dispute."
    )
    imported = serializers.IntegerField(help_text="Final labels imported from a manifest.")
    seeded_gold = serializers.IntegerField(
        help_text="Known answers an admin seeded as gold: not labeled here, not a saving."
    )
    final_labels = serializers.IntegerField()
    automation_percent = serializers.FloatField(allow_null=True)
    answers = serializers.IntegerField(help_text="Answers given, including ones taken back.")
    current_answers = serializers.IntegerField(help_text="Answers given that still count.")
    undone_answers = serializers.IntegerField()
    human_seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    human_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    human_cost = _money()
    predictions = serializers.IntegerField()
    machine_cost = _money()
    total_cost = _money()
    cost_per_final_label = _money(
        allow_null=True, help_text="Total cost over auto-labeled plus human-labeled images."
    )
    baseline_observed_answers_per_item = serializers.DecimalField(
        max_digits=12, decimal_places=4, allow_null=True
    )
    baseline_answers_per_item = serializers.DecimalField(max_digits=12, decimal_places=4)
    baseline_uses_minimum = serializers.BooleanField()
    baseline_median_seconds_per_answer = serializers.DecimalField(
        max_digits=20, decimal_places=3, allow_null=True
    )
    baseline_price_per_answer = _money(allow_null=True)
    baseline_cost = _money(allow_null=True)
    saving = _money(allow_null=True)
    saving_percent = serializers.FloatField(allow_null=True)


class InspectorCostSerializer(serializers.Serializer):
    inspector = serializers.CharField(source="username")
    answers = serializers.IntegerField()
    current_answers = serializers.IntegerField()
    undone_answers = serializers.IntegerField()
    seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    cost = _money()
    estimated_accuracy = serializers.FloatField(allow_null=True)
    gold_answers = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)


class InspectorTotalSerializer(serializers.Serializer):
    answers = serializers.IntegerField()
    current_answers = serializers.IntegerField()
    undone_answers = serializers.IntegerField()
    seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    cost = _money()


class DailyCostSerializer(serializers.Serializer):
    date = serializers.DateField(source="day", allow_null=True)
    ingested = serializers.IntegerField()
    auto_labeled = serializers.IntegerField()
    human_labeled = serializers.IntegerField()
    imported = serializers.IntegerField()
    seeded_gold = serializers.IntegerField()
    answers = serializers.IntegerField()
    human_seconds = serializers.DecimalField(max_digits=20, decimal_places=3)
    human_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    human_cost = _money()
    predictions = serializers.IntegerField()
    machine_cost = _money()
    total_cost = _money()


class CostReportSerializer(serializers.Serializer):
    summary = CostSummarySerializer()
    inspectors = InspectorCostSerializer(many=True)
    inspector_totals = InspectorTotalSerializer()
    daily = DailyCostSerializer(many=True)
    daily_totals = DailyCostSerializer()


class CreditDecisionSerializer(serializers.ModelSerializer):
    item_id = serializers.IntegerField(read_only=True)
    # A plain string in the schema: an enum here would be a second name for the choice set of
    # Item.final_source (drf-spectacular warns); settings' ENUM_NAME_OVERRIDES is the real fix.
    source = serializers.CharField(
        read_only=True,
        help_text="Who decided: machine, consensus, expert or imported; empty while pending.",
    )
    final_label = serializers.SerializerMethodField()
    reopened_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Set when a machine decision was taken back (its auto-label went back to "
        "humans after a failed audit or a shift alert); the outcome is then pending again.",
    )

    class Meta:
        model = CreditDecision
        fields = list(CREDIT_COLUMNS)  # the API's rows and the CSV's columns stay one list

    def get_final_label(self, decision: CreditDecision) -> str | None:
        label = decision.item.final_label
        return label.name if label else None
