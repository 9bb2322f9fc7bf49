"""The credit decisions table managers read: filters, rows and CSV columns."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.csv_export import csv_cell
from labeling.models import CreditDecision, CreditOutcome, ItemSource, Project
from labeling.reports import ReportError, date_param


@dataclass(frozen=True)
class CreditFilters:
    outcome: str = ""
    source: str = ""
    review_type: str = ""
    review_id: str = ""
    start: date | None = None
    end: date | None = None

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as query parameters (for pagination and CSV links)."""
        values = {
            "outcome": self.outcome,
            "source": self.source,
            "review_type": self.review_type,
            "review_id": self.review_id,
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
        }
        return {k: v for k, v in values.items() if v}


def credit_filters_parse(params: Mapping[str, str]) -> CreditFilters:
    """Filters from query parameters; unknown outcome or source values and bad dates are refused
    with a message naming the allowed values."""
    outcome = (params.get("outcome") or "").strip()
    if outcome and outcome not in CreditOutcome.values:
        raise ReportError(f"'outcome' must be one of: {', '.join(CreditOutcome.values)}.")
    source = (params.get("source") or "").strip()
    if source and source not in ItemSource.values:
        raise ReportError(f"'source' must be one of: {', '.join(ItemSource.values)}.")
    start = date_param("start", params.get("start"))
    end = date_param("end", params.get("end"))
    if start and end and start > end:
        raise ReportError(f"'start' ({start}) must not be after 'end' ({end}).")
    return CreditFilters(
        outcome=outcome,
        source=source,
        review_type=(params.get("review_type") or "").strip()[:40],
        review_id=(params.get("review_id") or "").strip()[:100],
        start=start,
        end=end,
    )


def credit_decisions_filter(*, project: Project, filters: CreditFilters) -> QuerySet:
    """The project's credit decisions matching ``filters``, newest first. The date range applies
    to when a decision was made (for a pending one, when it began to wait); ``review_id``
    matches any part of the id, ignoring case."""
    rows = (
        CreditDecision.objects.filter(project=project)
        .select_related("item__final_label")
        .annotate(when=Coalesce("decided_at", "created_at"))
    )
    if filters.outcome:
        rows = rows.filter(outcome=filters.outcome)
    if filters.source:
        rows = rows.filter(source=filters.source)
    if filters.review_type:
        rows = rows.filter(review_type=filters.review_type)
    if filters.review_id:
        rows = rows.filter(review_id__icontains=filters.review_id)
    tz = timezone.get_current_timezone()
    if filters.start:
        rows = rows.filter(when__gte=datetime.combine(filters.start, time.min, tzinfo=tz))
    if filters.end:
        after = datetime.combine(filters.end + timedelta(days=1), time.min, tzinfo=tz)
        rows = rows.filter(when__lt=after)
    return rows.order_by(F("when").desc(), "-pk")


def credit_review_types(*, project: Project) -> list[str]:
    """Review types to offer as a filter: the project's rules plus any seen in decisions."""
    seen = set(
        CreditDecision.objects.filter(project=project)
        .values_list("review_type", flat=True)
        .distinct()
    )
    return sorted(seen | set((project.credit_rules or {}).keys()))


CREDIT_COLUMNS = (
    "review_id",
    "review_type",
    "outcome",
    "source",
    "probability",
    "decided_at",
    "item_id",
    "final_label",
    "created_at",
    "reason",
    "reopened_at",
    "reopen_reason",
)


def credit_rows(decisions: QuerySet) -> Iterator[list]:
    """CSV rows of ``decisions`` (header first), read in chunks so a long export stays small."""
    yield list(CREDIT_COLUMNS)
    for decision in decisions.iterator(chunk_size=2000):
        final = decision.item.final_label
        yield [
            decision.review_id,
            decision.review_type,
            decision.outcome,
            decision.source,
            csv_cell(decision.probability),
            decision.decided_at.isoformat() if decision.decided_at else "",
            decision.item_id,
            final.name if final else "",
            decision.created_at.isoformat(),
            decision.reason,
            decision.reopened_at.isoformat() if decision.reopened_at else "",
            decision.reopen_reason,
        ]
