"""What managers read: the cost report (what labeling cost, what automation saved), and the
CSV writer shared with the credit decisions table (``labeling.credit_report``).

Every total is the sum of the rows it sits under, computed from those rows in Python, so a page,
its CSV and the API always reconcile. Money is ``Decimal`` to the six places ``CostEntry`` keeps.

Which date puts a thing in the period (days in the server's time zone, both ends included):
images by when they were ingested, final labels by when the item was finished, answers and costs
by when they were given or spent.

Which labels count as work done here: machine labels (auto-labeled) and labels decided by
inspectors (consensus, or an admin resolving a dispute). Labels that came with the data are
neither: imported ones (a Ground Truth manifest) and known answers an admin seeded as gold (their
source is ``expert``, but nobody labeled them here). They are counted apart, cost nothing,
and are no part of the all-human baseline, so they can never show up as a saving.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.csv_export import csv_cell
from labeling.errors import ServiceError
from labeling.models import (
    Annotation,
    AnnotatorSkill,
    CostEntry,
    CostKind,
    CostMode,
    GoldItem,
    GoldOrigin,
    Item,
    ItemSource,
    Project,
)

MONEY = Decimal("0.000001")
MS = Decimal("0.001")
ZERO = Decimal(0)
DEFAULT_DAYS = 30
MAX_DAYS = 366
HUMAN_SOURCES = (ItemSource.CONSENSUS, ItemSource.EXPERT)
COST_TABLES = ("summary", "inspectors", "daily")


class ReportError(ServiceError):
    status, code = 400, "invalid_report_query"


def _seeded_gold() -> Exists:
    """The item is a known answer an admin seeded (not a dispute an expert resolved)."""
    return Exists(GoldItem.objects.filter(item=OuterRef("pk"), origin=GoldOrigin.SEEDED))


def labeled_by_inspectors(items: QuerySet) -> QuerySet:
    """``items`` whose final label inspectors decided here: consensus, or an expert resolving a
    dispute; seeded gold answers are not inspectors' work."""
    return items.filter(final_source__in=HUMAN_SOURCES).exclude(
        Q(final_source=ItemSource.EXPERT) & _seeded_gold()
    )


def money(value: object) -> Decimal:
    """A database sum as exact money (SQLite sums decimals as floats; the stored values have at
    most six places, so rounding to six places gives them back exactly)."""
    return Decimal(str(value or 0)).quantize(MONEY, rounding=ROUND_HALF_UP)


def seconds_exact(value: object) -> Decimal:
    """Seconds to the millisecond (time on task is recorded in whole milliseconds)."""
    return Decimal(str(value or 0)).quantize(MS, rounding=ROUND_HALF_UP)


def hours_of(seconds: Decimal) -> Decimal:
    return (seconds / Decimal(3600)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------
# Periods


@dataclass(frozen=True)
class Period:
    """Whole days, ``start`` to ``end`` included, in the server's time zone."""

    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def bounds(self) -> tuple[datetime, datetime]:
        """[first moment, first moment after) as aware datetimes."""
        tz = timezone.get_current_timezone()
        first = datetime.combine(self.start, time.min, tzinfo=tz)
        after = datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz)
        return first, after

    def within(self, field_name: str) -> Q:
        first, after = self.bounds()
        return Q(**{f"{field_name}__gte": first, f"{field_name}__lt": after})


def date_param(name: str, value: str | None) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"'{name}' must be a date written YYYY-MM-DD; got '{value}'.") from None


def report_period_parse(
    *,
    start: str | None,
    end: str | None,
    today: date | None = None,
    default_days: int = DEFAULT_DAYS,
    max_days: int | None = MAX_DAYS,
) -> Period:
    """The period from ``start``/``end`` query values (YYYY-MM-DD, both optional): the last
    ``default_days`` days up to today by default; refused when malformed, reversed or too long."""
    today = today or timezone.localdate()
    first, last = date_param("start", start), date_param("end", end)
    if last is None:
        last = max(today, first) if first else today
    if first is None:
        first = last - timedelta(days=default_days - 1)
    if first > last:
        raise ReportError(f"'start' ({first}) must not be after 'end' ({last}).")
    if max_days is not None and (last - first).days + 1 > max_days:
        raise ReportError(f"A report covers at most {max_days} days; choose a shorter period.")
    return Period(first, last)


# ---------------------------------------------------------------------------------------------
# Cost report


@dataclass
class DailyRow:
    day: date | None  # None on the totals row
    ingested: int = 0
    auto_labeled: int = 0
    human_labeled: int = 0
    imported: int = 0
    seeded_gold: int = 0
    answers: int = 0
    human_seconds: Decimal = ZERO
    human_cost: Decimal = ZERO
    predictions: int = 0
    machine_cost: Decimal = ZERO

    @property
    def human_hours(self) -> Decimal:
        return hours_of(self.human_seconds)

    @property
    def total_cost(self) -> Decimal:
        return self.human_cost + self.machine_cost


@dataclass
class InspectorRow:
    annotator_id: int | None  # None: answers of a deleted account (and on the totals row)
    username: str
    answers: int = 0
    current_answers: int = 0
    seconds: Decimal = ZERO
    cost: Decimal = ZERO
    estimated_accuracy: float | None = None
    gold_answers: int = 0
    gold_correct: int = 0

    @property
    def undone_answers(self) -> int:
        return self.answers - self.current_answers

    @property
    def hours(self) -> Decimal:
        return hours_of(self.seconds)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answers if self.gold_answers else None


@dataclass
class CostReport:
    project: Project
    period: Period
    daily: list[DailyRow]
    daily_totals: DailyRow
    inspectors: list[InspectorRow]
    inspector_totals: InspectorRow
    summary: dict[str, object] = field(default_factory=dict)


def _day_counts(rows: Iterable[Mapping], key: str = "n") -> dict:
    return {row["day"]: row[key] for row in rows}


def _daily_rows(project: Project, period: Period) -> list[DailyRow]:
    tz = timezone.get_current_timezone()
    rows = {day: DailyRow(day) for day in period.days}

    ingested = (
        Item.objects.filter(period.within("created_at"), project=project)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
    )
    for day, n in _day_counts(ingested).items():
        rows[day].ingested = n

    finished = (
        Item.objects.filter(period.within("finished_at"), project=project)
        .exclude(final_label__isnull=True)
        .annotate(day=TruncDate("finished_at", tzinfo=tz), seeded=_seeded_gold())
        .values("day", "final_source", "seeded")
        .annotate(n=Count("id"))
    )
    for row in finished:
        daily = rows[row["day"]]
        if row["final_source"] == ItemSource.MACHINE:
            daily.auto_labeled += row["n"]
        elif row["final_source"] == ItemSource.EXPERT and row["seeded"]:
            daily.seeded_gold += row["n"]
        elif row["final_source"] in HUMAN_SOURCES:
            daily.human_labeled += row["n"]
        elif row["final_source"] == ItemSource.IMPORTED:
            daily.imported += row["n"]

    answers = (
        Annotation.objects.filter(period.within("created_at"), project=project)
        .exclude(label__isnull=True)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
    )
    for day, n in _day_counts(answers).items():
        rows[day].answers = n

    costs = (
        CostEntry.objects.filter(period.within("created_at"), project=project)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "kind")
        .annotate(amount=Sum("amount"), seconds=Sum("seconds"), units=Sum("units"))
    )
    for row in costs:
        daily = rows[row["day"]]
        if row["kind"] == CostKind.HUMAN_ANSWER:
            daily.human_cost += money(row["amount"])
            daily.human_seconds += seconds_exact(row["seconds"])
        elif row["kind"] == CostKind.PREDICTION:
            daily.machine_cost += money(row["amount"])
            daily.predictions += row["units"] or 0
    return [rows[day] for day in period.days]


def _daily_total(rows: list[DailyRow]) -> DailyRow:
    total = DailyRow(None)
    for row in rows:
        total.ingested += row.ingested
        total.auto_labeled += row.auto_labeled
        total.human_labeled += row.human_labeled
        total.imported += row.imported
        total.seeded_gold += row.seeded_gold
        total.answers += row.answers
        total.human_seconds += row.human_seconds
        total.human_cost += row.human_cost
        total.predictions += row.predictions
        total.machine_cost += row.machine_cost
    return total


def _inspector_rows(project: Project, period: Period) -> list[InspectorRow]:
    rows: dict[int | None, InspectorRow] = {}

    def row_for(annotator_id: int | None) -> InspectorRow:
        if annotator_id not in rows:
            rows[annotator_id] = InspectorRow(annotator_id, "")
        return rows[annotator_id]

    costs = (
        CostEntry.objects.filter(
            period.within("created_at"), project=project, kind=CostKind.HUMAN_ANSWER
        )
        .values("annotator_id")
        .annotate(amount=Sum("amount"), seconds=Sum("seconds"))
    )
    for entry in costs:
        row = row_for(entry["annotator_id"])
        row.cost = money(entry["amount"])
        row.seconds = seconds_exact(entry["seconds"])

    answers = (
        Annotation.objects.filter(period.within("created_at"), project=project)
        .exclude(label__isnull=True)
        .values("annotator_id")
        .annotate(
            given=Count("id"),
            current=Count("id", filter=Q(superseded_by__isnull=True)),
        )
    )
    for entry in answers:
        row = row_for(entry["annotator_id"])
        row.answers = entry["given"]
        row.current_answers = entry["current"]

    ids = [pk for pk in rows if pk is not None]
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    for skill in AnnotatorSkill.objects.filter(project=project, annotator_id__in=ids):
        row = rows[skill.annotator_id]
        row.estimated_accuracy = skill.estimated_accuracy
        row.gold_answers = skill.gold_answers
        row.gold_correct = skill.gold_correct
    for pk, row in rows.items():
        row.username = names.get(pk, "(deleted account)") if pk is not None else "(deleted account)"
    return sorted(rows.values(), key=lambda r: (r.annotator_id is None, r.username.lower()))


def _inspector_total(rows: list[InspectorRow]) -> InspectorRow:
    total = InspectorRow(None, "Total")
    for row in rows:
        total.answers += row.answers
        total.current_answers += row.current_answers
        total.seconds += row.seconds
        total.cost += row.cost
        total.gold_answers += row.gold_answers
        total.gold_correct += row.gold_correct
    return total


def _median_answer_seconds(project: Project, period: Period) -> Decimal | None:
    """Median seconds of the human answers paid in the period (sorted by the database, so the
    report never loads every answer)."""
    entries = CostEntry.objects.filter(
        period.within("created_at"), project=project, kind=CostKind.HUMAN_ANSWER
    ).order_by("seconds")
    n = entries.count()
    if not n:
        return None
    middle = list(entries.values_list("seconds", flat=True)[(n - 1) // 2 : n // 2 + 1])
    return seconds_exact(sum(Decimal(str(s)) for s in middle) / len(middle))


def _baseline(project: Project, period: Period, labeled_here: int, total_cost: Decimal) -> dict:
    """What the same final labels (auto-labeled plus labeled by inspectors, never imported or
    seeded ones) would have cost with humans only.

    Answers per image: the observed average of current answers per image inspectors labeled in
    the period, never less than the project's configured minimum (an auto-labeled image would
    have needed at least that many); the minimum alone while inspectors have labeled nothing.
    Price per answer: the project's, or in hourly mode the hourly rate times the median time per
    answer in the period. With nothing labeled here the baseline is zero: no saving.
    """
    human_items = labeled_by_inspectors(
        Item.objects.filter(
            period.within("finished_at"), project=project, final_label__isnull=False
        )
    )
    human_count = human_items.count()
    answers_on_them = Annotation.objects.filter(
        item__in=human_items, label__isnull=False, superseded_by__isnull=True
    ).count()
    observed = Decimal(answers_on_them) / Decimal(human_count) if human_count else None
    minimum = Decimal(project.min_answers)
    per_item = max(observed, minimum) if observed is not None else minimum

    median_seconds = None
    if project.cost_mode == CostMode.HOURLY:
        median_seconds = _median_answer_seconds(project, period)
        price = (
            (project.hourly_rate * median_seconds / Decimal(3600)).quantize(MONEY)
            if median_seconds is not None
            else None
        )
    else:
        price = project.price_per_answer
    baseline_cost = (
        (Decimal(labeled_here) * per_item * price).quantize(MONEY, rounding=ROUND_HALF_UP)
        if price is not None
        else None
    )
    saving = baseline_cost - total_cost if baseline_cost is not None else None
    return {
        "baseline_observed_answers_per_item": (
            observed.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
            if observed is not None
            else None
        ),
        "baseline_answers_per_item": per_item.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
        "baseline_uses_minimum": observed is None or observed < minimum,
        "baseline_median_seconds_per_answer": median_seconds,
        "baseline_price_per_answer": price,
        "baseline_cost": baseline_cost,
        "saving": saving,
        "saving_percent": (
            float(100 * saving / baseline_cost) if baseline_cost and saving is not None else None
        ),
    }


def cost_report_build(*, project: Project, period: Period) -> CostReport:
    """The cost report of ``project`` over ``period``: the summary, one row per inspector and one
    per day, each table with its totals row."""
    daily = _daily_rows(project, period)
    daily_totals = _daily_total(daily)
    inspectors = _inspector_rows(project, period)
    inspector_totals = _inspector_total(inspectors)

    t = daily_totals
    labeled_here = t.auto_labeled + t.human_labeled
    total_cost = t.human_cost + t.machine_cost
    summary: dict[str, object] = {
        "start": period.start,
        "end": period.end,
        "currency": project.currency,
        "cost_mode": project.cost_mode,
        "price_per_answer": project.price_per_answer,
        "hourly_rate": project.hourly_rate,
        "machine_price_per_1000": project.machine_price_per_1000,
        "min_answers": project.min_answers,
        "images_ingested": t.ingested,
        "auto_labeled": t.auto_labeled,
        "human_labeled": t.human_labeled,
        "imported": t.imported,
        "seeded_gold": t.seeded_gold,
        "final_labels": labeled_here + t.imported + t.seeded_gold,
        "automation_percent": (
            round(100 * t.auto_labeled / labeled_here, 1) if labeled_here else None
        ),
        "answers": inspector_totals.answers,
        "current_answers": inspector_totals.current_answers,
        "undone_answers": inspector_totals.undone_answers,
        "human_seconds": t.human_seconds,
        "human_hours": t.human_hours,
        "human_cost": t.human_cost,
        "predictions": t.predictions,
        "machine_cost": t.machine_cost,
        "total_cost": total_cost,
        # Imported and seeded labels cost nothing here, so they are not part of the per-label
        # figure.
        "cost_per_final_label": (
            (total_cost / labeled_here).quantize(MONEY, rounding=ROUND_HALF_UP)
            if labeled_here
            else None
        ),
        **_baseline(project, period, labeled_here, total_cost),
    }
    return CostReport(
        project=project,
        period=period,
        daily=daily,
        daily_totals=daily_totals,
        inspectors=inspectors,
        inspector_totals=inspector_totals,
        summary=summary,
    )


SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    # (key, what it is, unit; "money" means the project's currency)
    ("start", "First day", "date"),
    ("end", "Last day", "date"),
    ("images_ingested", "Images ingested", "images"),
    ("auto_labeled", "Auto-labeled (machine)", "images"),
    ("human_labeled", "Labeled by inspectors (consensus or a resolved dispute)", "images"),
    ("imported", "Imported with a label", "images"),
    ("seeded_gold", "Seeded as gold (known answers)", "images"),
    ("final_labels", "Final labels", "images"),
    ("answers", "Answers given (including undone)", "answers"),
    ("current_answers", "Answers that still count", "answers"),
    ("undone_answers", "Answers taken back", "answers"),
    ("human_seconds", "Human time", "seconds"),
    ("human_hours", "Human time", "hours"),
    ("human_cost", "Human cost", "money"),
    ("predictions", "Machine predictions", "predictions"),
    ("machine_cost", "Machine cost", "money"),
    ("total_cost", "Total cost", "money"),
    ("cost_per_final_label", "Cost per final label (auto + human)", "money"),
    ("baseline_observed_answers_per_item", "Observed answers per human-labeled image", "answers"),
    ("baseline_answers_per_item", "All-human baseline: answers per image", "answers"),
    ("baseline_price_per_answer", "All-human baseline: price per answer", "money"),
    ("baseline_cost", "All-human baseline cost", "money"),
    ("saving", "Saving against the baseline", "money"),
    ("saving_percent", "Saving against the baseline", "percent"),
)

DAILY_COLUMNS = (
    "date",
    "ingested",
    "auto_labeled",
    "human_labeled",
    "imported",
    "seeded_gold",
    "answers",
    "human_seconds",
    "human_hours",
    "human_cost",
    "predictions",
    "machine_cost",
    "total_cost",
)

INSPECTOR_COLUMNS = (
    "inspector",
    "answers",
    "current_answers",
    "undone_answers",
    "seconds",
    "hours",
    "cost",
    "estimated_accuracy",
    "gold_answers",
    "gold_correct",
    "gold_accuracy",
)


def cost_report_table(*, report: CostReport, table: str) -> tuple[list[str], list[list]]:
    """(header, rows) of one of the report's tables, totals row last, as the CSV holds them."""
    currency = report.project.currency
    if table == "summary":
        rows = [
            [key, label, currency if unit == "money" else unit, csv_cell(report.summary[key])]
            for key, label, unit in SUMMARY_ROWS
        ]
        return ["metric", "description", "unit", "value"], rows
    if table == "daily":
        rows = [
            [csv_cell(getattr(row, col)) if col != "date" else row.day for col in DAILY_COLUMNS]
            for row in report.daily
        ]
        totals = report.daily_totals
        rows.append(
            ["total"] + [csv_cell(getattr(totals, col)) for col in DAILY_COLUMNS if col != "date"]
        )
        return list(DAILY_COLUMNS), rows
    if table == "inspectors":
        rows = []
        for row in [*report.inspectors, report.inspector_totals]:
            rows.append(
                [
                    row.username if row is not report.inspector_totals else "total",
                    row.answers,
                    row.current_answers,
                    row.undone_answers,
                    row.seconds,
                    row.hours,
                    row.cost,
                    # Accuracies are per person; a sum over people means nothing.
                    csv_cell(row.estimated_accuracy) if row is not report.inspector_totals else "",
                    row.gold_answers,
                    row.gold_correct,
                    csv_cell(row.gold_accuracy) if row is not report.inspector_totals else "",
                ]
            )
        return list(INSPECTOR_COLUMNS), rows
    raise ReportError(f"'table' must be one of: {', '.join(COST_TABLES)}.")
