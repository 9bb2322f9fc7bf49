"""Review credits: which final label earns a credit for which review type."""

from django.utils import timezone

from labeling.models import CreditDecision, CreditOutcome, Item


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
        },
    )
    return decision
