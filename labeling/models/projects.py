"""Projects, their ordered label sets, and who belongs to them."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from labeling.models.base import TimeStamped, choices_check

unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class ThresholdMode(models.TextChoices):
    TARGET = "target", "Derived from a target precision"
    MANUAL = "manual", "Set by hand per class"


class ThresholdScope(models.TextChoices):
    PER_CLASS = "per_class", "Per class: each class's auto-labels meet the target"
    OVERALL = "overall", "Overall: all auto-labels together meet the target"


class CostMode(models.TextChoices):
    PER_ANSWER = "per_answer", "Price per answer"
    HOURLY = "hourly", "Hourly rate"


class MemberRole(models.TextChoices):
    """What a member may do in one project (``labeling.access`` calls it ``Role``)."""

    INSPECTOR = "inspector", "Inspector"
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"


class ReusePolicy(models.TextChoices):
    REVIEW = "review", "Send to an admin before any credit"
    DENY = "deny", "Deny the credit"


class Project(TimeStamped):
    ThresholdMode = ThresholdMode
    ThresholdScope = ThresholdScope

    CostMode = CostMode

    ReusePolicy = ReusePolicy

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )

    # Redundancy and consensus
    # Defaults measured in docs/consensus.md (labeling.consensus.DEFAULT_*).
    min_answers = models.PositiveSmallIntegerField(default=1)
    max_answers = models.PositiveSmallIntegerField(default=10)
    consensus_target = models.FloatField(default=0.95, validators=unit_interval)
    lease_seconds = models.PositiveIntegerField(default=300)
    show_model_suggestion = models.BooleanField(
        default=False, help_text="Show the model's guess to inspectors (off: avoids anchoring)."
    )

    # Routing of machine predictions
    threshold_mode = models.CharField(
        max_length=10, choices=ThresholdMode.choices, default=ThresholdMode.TARGET
    )
    target_precision = models.FloatField(default=0.98, validators=unit_interval)
    threshold_confidence = models.FloatField(default=0.95, validators=unit_interval)
    manual_thresholds = models.JSONField(
        default=dict, blank=True, help_text='Per class accept thresholds, e.g. {"product": 0.97}.'
    )
    # What the target-mode guarantee is about (ml.overall_scope): each class, or all auto-labels.
    threshold_scope = models.CharField(
        max_length=10, choices=ThresholdScope.choices, default=ThresholdScope.PER_CLASS
    )
    # A random share of incoming images goes to humans whatever the model says: the unbiased
    # sample thresholds are certified on (labeling.machine.certification).
    calibration_share = models.FloatField(default=0.05, validators=unit_interval)
    audit_rate = models.FloatField(default=0.05, validators=unit_interval)
    gold_rate = models.FloatField(default=0.05, validators=unit_interval)
    active_model = models.ForeignKey(
        "labeling.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Cached consensus inputs, refreshed by the trust refit: class balance and a newcomer's
    # confusion matrix (see labeling.trust).
    consensus_state = models.JSONField(default=dict, blank=True, editable=False)
    # Classes whose live audit precision fell below target: {label: {"since", "precision", …}}.
    # Auto-labeling of a paused class stops until an admin resumes it.
    autolabel_paused = models.JSONField(default=dict, blank=True)
    # A sustained shift in incoming images (labeling.machine.shift_guard): while this holds an
    # alert, no image is auto-labeled until an admin resumes. Empty: no alert.
    shift_alert = models.JSONField(default=dict, blank=True)
    # The shift monitor's running state for the active model (ml.shift.DriftState + model id).
    shift_monitor = models.JSONField(default=dict, blank=True, editable=False)
    # The live audit's bookkeeping (labeling.machine.audit): per class, since when its sequential
    # test runs (an admin's resume restarts it), and a raised audit rate after a shift alarm.
    audit_state = models.JSONField(default=dict, blank=True, editable=False)
    retrain_every = models.PositiveIntegerField(
        default=1000, help_text="Start a training after this many new final labels (0: never)."
    )
    # Opt-in: also train on machine labels of classes whose live audit held up.
    train_on_machine_labels = models.BooleanField(default=False)

    # Costs
    cost_mode = models.CharField(
        max_length=12, choices=CostMode.choices, default=CostMode.PER_ANSWER
    )
    price_per_answer = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0.0300")
    )
    hourly_rate = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("18.00"))
    machine_price_per_1000 = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0.0500")
    )
    currency = models.CharField(max_length=3, default="USD")

    # An archived project leaves every list and takes no uploads, leases or answers; its data
    # stays readable by its members at its own URLs until an admin restores it.
    archived_at = models.DateTimeField(null=True, blank=True)

    # Credits: review type -> label that earns the credit, and the two-threshold rule.
    credit_rules = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"product": "product", "style": "full_body"}'
    )
    credit_grant_threshold = models.FloatField(default=0.95, validators=unit_interval)
    credit_deny_threshold = models.FloatField(default=0.05, validators=unit_interval)
    # What a reused photo (an earlier image or a catalog photo again) does to its credit.
    reuse_policy = models.CharField(
        max_length=8, choices=ReusePolicy.choices, default=ReusePolicy.REVIEW
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_answers__gte=1)
                & models.Q(max_answers__gte=models.F("min_answers")),
                name="project_answers_range",
            ),
            models.CheckConstraint(
                condition=models.Q(consensus_target__gt=0) & models.Q(consensus_target__lte=1),
                name="project_consensus_target_range",
            ),
            models.CheckConstraint(
                condition=models.Q(credit_deny_threshold__lte=models.F("credit_grant_threshold")),
                name="project_credit_thresholds_order",
            ),
            choices_check("threshold_mode", ThresholdMode, "project_threshold_mode_valid"),
            choices_check("cost_mode", CostMode, "project_cost_mode_valid"),
            choices_check("reuse_policy", ReusePolicy, "project_reuse_policy_valid"),
            choices_check("threshold_scope", ThresholdScope, "project_threshold_scope_valid"),
            models.CheckConstraint(
                condition=models.Q(calibration_share__gte=0) & models.Q(calibration_share__lte=1),
                name="project_calibration_share_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def label_names(self) -> list[str]:
        return [label.name for label in self.labels.all()]

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Label(models.Model):
    """One class of a project's label set; ``position`` orders it, ``key`` is its keyboard key."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.SlugField(max_length=60, allow_unicode=False)
    display_name = models.CharField(max_length=120, blank=True)
    key = models.CharField(max_length=1)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["project", "position"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="label_unique_name"),
            models.UniqueConstraint(fields=["project", "key"], name="label_unique_key"),
            models.UniqueConstraint(fields=["project", "position"], name="label_unique_position"),
            # Lets other tables reference (project, label) together, so a row can never pair an
            # item of one project with a label of another (see migration 0002).
            models.UniqueConstraint(fields=["project", "id"], name="label_unique_project_id"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name


class Membership(TimeStamped):
    """A user belongs to a project with one role there; roles never reach beyond the project."""

    Role = MemberRole

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=MemberRole.choices, default=MemberRole.INSPECTOR)

    class Meta:
        ordering = ["project", "user"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
            choices_check("role", MemberRole, "membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class ThresholdChange(TimeStamped):
    """Who changed the routing thresholds of a project, from what, to what."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="threshold_changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at"]
