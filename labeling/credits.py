"""Review credits: which final label earns a credit for which review type."""

from django.utils import timezone

from labeling.models import (
    CreditDecision,
    CreditOutcome,
    Item,
    ItemSource,
    ReusePolicy,
    ReuseStatus,
)


def credited_label(item: Item) -> tuple[str, str] | None:
    """(review type, label that earns its credit) for an item whose metadata names a review type
    the project has a rule for; None otherwise."""
    review_type = str(item.metadata.get("review_type") or "").strip()
    rules = item.project.credit_rules or {}
    if not review_type or review_type not in rules:
        return None
    return review_type, rules[review_type]


def credit_machine_outcome(*, probability: float, grant_at: float, deny_at: float) -> CreditOutcome:
    """Two-threshold rule for machine decisions: P(credited class) ≥ grant_at grants, ≤ deny_at
    denies, anything in between waits for a human."""
    if probability >= grant_at:
        return CreditOutcome.GRANTED
    if probability <= deny_at:
        return CreditOutcome.DENIED
    return CreditOutcome.PENDING


def credit_decide(
    *, item: Item, source: str, label_name: str | None = None, probability: float | None = None
) -> CreditDecision | None:
    """Write (or update) the item's credit decision.

    Human and expert labels decide outright; a machine decision passes ``probability`` of the
    credited class and goes through the two-threshold rule. Items without a review type get no
    row.
    """
    rule = credited_label(item)
    if rule is None:
        return None
    review_type, credited = rule
    project = item.project
    if source == "machine":
        if probability is None:
            raise ValueError("a machine credit decision needs the credited class's probability")
        outcome = credit_machine_outcome(
            probability=probability,
            grant_at=project.credit_grant_threshold,
            deny_at=project.credit_deny_threshold,
        )
    elif label_name is None:
        outcome = CreditOutcome.PENDING
    else:
        outcome = CreditOutcome.GRANTED if label_name == credited else CreditOutcome.DENIED
    reason = ""
    if item.reused:
        outcome, source, reason = _reused_outcome(item, outcome, source)
    decided = outcome != CreditOutcome.PENDING
    decision, _ = CreditDecision.objects.update_or_create(
        item=item,
        defaults={
            "project": project,
            "review_id": str(item.metadata.get("review_id") or ""),
            "review_type": review_type,
            "outcome": outcome,
            "source": source if decided else "",
            "probability": probability,
            "decided_at": timezone.now() if decided else None,
            "reason": reason,
        },
    )
    return decision


def _reused_outcome(item: Item, outcome: str, source: str) -> tuple[str, str, str]:
    """A reused photo earns no credit once an admin confirmed it, or at once under the
    ``deny`` policy; under ``review`` its credit waits for an admin."""
    match = getattr(item, "reuse_match", None)
    target = ""
    if match is not None:
        target = (
            f"item {match.matched_item_id}"
            if match.matched_item_id
            else f"catalog photo {match.matched_catalog_id}"
        )
    if match is not None and match.status == ReuseStatus.CONFIRMED:
        return CreditOutcome.DENIED, ItemSource.EXPERT, f"reused photo ({target}), confirmed"
    if item.project.reuse_policy == ReusePolicy.DENY:
        return CreditOutcome.DENIED, ItemSource.MACHINE, f"reused photo ({target})"
    return CreditOutcome.PENDING, source, f"reused photo ({target}): waiting for an admin"


def credit_redecide(*, item: Item) -> CreditDecision | None:
    """Decide the credit again from the item's current state (after a reuse decision)."""
    if item.final_label_id is None:
        return credit_decide(item=item, source="", label_name=None)
    if item.final_source == ItemSource.MACHINE:
        earlier = CreditDecision.objects.filter(item=item).values_list("probability", flat=True)
        probability = next(iter(earlier), None)
        if probability is None:
            probability = float(item.final_confidence or 0.0)
        return credit_decide(item=item, source=ItemSource.MACHINE, probability=probability)
    return credit_decide(item=item, source=item.final_source, label_name=item.final_label.name)
