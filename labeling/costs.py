"""What each billable act cost, written when it happens (the reports only add rows up)."""

from decimal import Decimal

from labeling.models import CostEntry, CostKind, CostMode, Item, Project


def answer_cost(project: Project, seconds: float) -> Decimal:
    if project.cost_mode == CostMode.HOURLY:
        return (project.hourly_rate * Decimal(str(seconds)) / Decimal(3600)).quantize(
            Decimal("0.000001")
        )
    return project.price_per_answer


def cost_record_answer(
    *, project: Project, item: Item, annotator_id: int, seconds: float
) -> CostEntry:
    return CostEntry.objects.create(
        project=project,
        kind=CostKind.HUMAN_ANSWER,
        item=item,
        annotator_id=annotator_id,
        seconds=seconds,
        amount=answer_cost(project, seconds),
    )


def cost_record_predictions(*, project: Project, count: int) -> CostEntry | None:
    """One row per prediction batch, carrying the batch's count in ``units``."""
    if count <= 0:
        return None
    amount = (project.machine_price_per_1000 * count / Decimal(1000)).quantize(Decimal("0.000001"))
    return CostEntry.objects.create(
        project=project, kind=CostKind.PREDICTION, units=count, amount=amount
    )
