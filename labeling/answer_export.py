"""Every raw answer of a project, for a shop's own audits and agreement analyses.

A manifest holds only final labels; this holds each answer row as it was given: the item, the
inspector, the label, time on task, when, and what happened to it later. Answers are append-only
(``labeling.models.Annotation``): a correction is a new row that supersedes the earlier one, and
an undo is a row without a label. So each row has a state:

* ``current``: the inspector's answer that counts now;
* ``superseded``: replaced by a later answer of the same inspector on the same image;
* ``undone``: taken back by its inspector (the undo row follows it);
* ``undo``: the undo itself (no label).
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Case, CharField, F, Q, QuerySet, Value, When
from django.utils import timezone

from labeling.models import Annotation, Project
from labeling.reports import ReportError, date_param

STATES = ("current", "superseded", "undone", "undo")
ANSWER_COLUMNS = (
    "id",
    "item_id",
    "inspector",
    "label",
    "time_on_task_ms",
    "created_at",
    "state",
    "supersedes",
    "superseded_by",
    "gold",
    "final_label",
    "review_id",
)


@dataclass(frozen=True)
class AnswerFilters:
    inspector: str = ""
    label: str = ""
    item: int | None = None
    state: str = ""
    start: date | None = None
    end: date | None = None

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as query parameters (for pagination and CSV links)."""
        values = {
            "inspector": self.inspector,
            "label": self.label,
            "item": str(self.item) if self.item is not None else "",
            "state": self.state,
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
        }
        return {k: v for k, v in values.items() if v}


def answer_filters_parse(params: Mapping[str, str]) -> AnswerFilters:
    """Filters from query parameters; a bad state, item id or date is refused with a message."""
    state = (params.get("state") or "").strip()
    if state and state not in STATES:
        raise ReportError(f"'state' must be one of: {', '.join(STATES)}.")
    raw_item = (params.get("item") or "").strip()
    item = None
    if raw_item:
        if not raw_item.isdigit() or not 0 < int(raw_item) < 2**63:
            raise ReportError(
                f"'item' must be an image id (a positive whole number), not {raw_item!r}."
            )
        item = int(raw_item)
    start = date_param("start", params.get("start"))
    end = date_param("end", params.get("end"))
    if start and end and start > end:
        raise ReportError(f"'start' ({start}) must not be after 'end' ({end}).")
    return AnswerFilters(
        inspector=(params.get("inspector") or "").strip()[:150],
        label=(params.get("label") or "").strip()[:60],
        item=item,
        state=state,
        start=start,
        end=end,
    )


def answers_filter(*, project: Project, filters: AnswerFilters) -> QuerySet[Annotation]:
    """The project's answer rows matching ``filters``, oldest first (stable for paging through
    a growing history), each with its ``state`` and the ids around it."""
    rows = (
        Annotation.objects.filter(project=project)
        .select_related("annotator", "label", "assignment", "item__final_label")
        .annotate(
            state=Case(
                When(label__isnull=True, then=Value("undo")),
                When(superseded_by__isnull=True, then=Value("current")),
                When(superseded_by__label__isnull=True, then=Value("undone")),
                default=Value("superseded"),
                output_field=CharField(),
            ),
            superseded_by_id=F("superseded_by__id"),
        )
    )
    if filters.inspector:
        rows = rows.filter(annotator__username=filters.inspector)
    if filters.label:
        rows = rows.filter(label__name=filters.label)
    if filters.item is not None:
        rows = rows.filter(item_id=filters.item)
    if filters.state:
        rows = rows.filter(state=filters.state)
    tz = timezone.get_current_timezone()
    if filters.start:
        rows = rows.filter(created_at__gte=datetime.combine(filters.start, time.min, tzinfo=tz))
    if filters.end:
        after = datetime.combine(filters.end + timedelta(days=1), time.min, tzinfo=tz)
        rows = rows.filter(created_at__lt=after)
    return rows.order_by("created_at", "id")


def answer_row(answer: Annotation) -> dict[str, object]:
    """One answer as the API and the CSV show it."""
    final = answer.item.final_label
    return {
        "id": answer.pk,
        "item_id": answer.item_id,
        "inspector": answer.annotator.get_username(),
        "label": answer.label.name if answer.label_id else None,
        "time_on_task_ms": answer.time_on_task_ms,
        "created_at": answer.created_at,
        "state": answer.state,
        "supersedes": answer.supersedes_id,
        "superseded_by": answer.superseded_by_id,
        "gold": answer.assignment.is_gold if answer.assignment_id else None,
        "final_label": final.name if final else None,
        "review_id": str((answer.item.metadata or {}).get("review_id") or "") or None,
    }


def answer_rows(answers: QuerySet[Annotation]) -> Iterator[list]:
    """CSV rows (header first), read in chunks so a long export stays small in memory."""
    yield list(ANSWER_COLUMNS)
    for answer in answers.iterator(chunk_size=2000):
        row = answer_row(answer)
        row["created_at"] = answer.created_at.isoformat()
        yield ["" if row[column] is None else row[column] for column in ANSWER_COLUMNS]


def answer_inspectors(*, project: Project) -> list[str]:
    """User names of everyone who answered in the project (a filter's choices)."""
    return sorted(
        Annotation.objects.filter(project=project)
        .filter(~Q(annotator__username=""))
        .values_list("annotator__username", flat=True)
        .distinct()
    )
