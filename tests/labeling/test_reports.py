"""The cost report and the credit decisions table, checked against figures the test derives from
its own fixture (what each inspector answered and how long it took), not from the report's
queries."""

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from labeling.access import Role
from labeling.answers import (
    annotation_submit,
    annotation_undo,
    gold_item_add,
    item_finalize,
    item_resolve_expert,
)
from labeling.costs import cost_record_predictions
from labeling.credit_report import (
    CreditFilters,
    credit_decisions_filter,
    credit_filters_parse,
    credit_rows,
)
from labeling.credits import credit_decide
from labeling.errors import ServiceError
from labeling.ingest import Upload, item_ingest
from labeling.models import (
    Annotation,
    AnnotatorSkill,
    CostEntry,
    CostKind,
    CreditDecision,
    Item,
    ItemSource,
    ItemStatus,
)
from labeling.project_setup import member_add
from labeling.queue import assignment_next
from labeling.reports import (
    Period,
    cost_report_build,
    cost_report_table,
    report_period_parse,
)
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The role fixtures create several users per test; the default hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


PRICE = Decimal("0.03")
MACHINE_PER_1000 = Decimal("0.05")
HOURLY = Decimal("18.00")
SIX = Decimal("0.000001")


@dataclass
class Mix:
    """What the fixture did, in its own numbers."""

    project: object
    inspectors: dict
    answers: list = field(default_factory=list)  # (username, ms, still counts)
    auto: list = field(default_factory=list)
    human: dict = field(default_factory=dict)  # item id -> current answers on it
    prediction_batches: list = field(default_factory=list)
    old_item: int | None = None


def ingest_one(project, n: int, metadata: dict | None = None) -> Item:
    upload = Upload(f"{n}.png", image_bytes(color=(n % 256, 40, 90)), metadata or {})
    (item_id,) = item_ingest(project=project, uploads=[upload], queue_prediction=False).created_ids
    return Item.objects.get(pk=item_id)


def queue(item: Item) -> None:
    Item.objects.filter(pk=item.pk).update(status=ItemStatus.QUEUED)


def answer(mix: Mix, user, item: Item, label: str, ms: int, counts: bool = True) -> None:
    lease = assignment_next(project=mix.project, user=user, rng=random.Random(0))
    assert lease is not None and lease.item_id == item.pk
    annotation_submit(
        project=mix.project, assignment_id=lease.pk, user=user, label_name=label, time_on_task_ms=ms
    )
    mix.answers.append((user.username, ms, counts))


def build_mix(project, people, make_user, *, hourly: bool = False) -> Mix:
    """Four auto-labeled images (two prediction batches), two labeled by two agreeing inspectors
    (one with an undone answer), one disputed by three and resolved by an expert, and one
    consensus image from 40 days ago."""
    project.min_answers, project.max_answers, project.consensus_target = 2, 3, 0.6
    project.gold_rate = 0
    project.credit_rules = {"product": "product", "style": "full_body"}
    project.price_per_answer = PRICE
    project.hourly_rate = HOURLY
    project.machine_price_per_1000 = MACHINE_PER_1000
    project.cost_mode = "hourly" if hourly else "per_answer"
    project.save()
    ivan = people["inspector"]
    ines, ida = make_user("ines", Role.INSPECTOR), make_user("ida", Role.INSPECTOR)
    for user in (ines, ida):
        member_add(project=project, user=user)
    mix = Mix(project=project, inspectors={"ivan": ivan, "ines": ines, "ida": ida})
    labels = {label.name: label for label in project.labels.all()}

    # Auto-labeled by the machine, as the prediction service leaves them.
    for n, (name, review) in enumerate(
        [("product", "product"), ("package", "product"), ("full_body", "style"), ("package", "")]
    ):
        item = ingest_one(project, n, {"review_id": f"A{n}", "review_type": review})
        Item.objects.filter(pk=item.pk).update(
            status=ItemStatus.AUTO_LABELED,
            final_label=labels[name],
            final_source=ItemSource.MACHINE,
            final_confidence=0.99,
            finished_at=timezone.now(),
        )
        credit_decide(
            item=Item.objects.get(pk=item.pk),
            source=ItemSource.MACHINE,
            probability=0.99
            if name == {"product": "product", "style": "full_body"}.get(review)
            else 0.01,
        )
        mix.auto.append(item.pk)
    for batch in (6, 2):
        cost_record_predictions(project=project, count=batch)
        mix.prediction_batches.append(batch)

    # Two inspectors agree.
    h1 = ingest_one(project, 10, {"review_id": "H1", "review_type": "product"})
    queue(h1)
    answer(mix, ivan, h1, "product", 2000)
    answer(mix, ines, h1, "product", 3000)
    # Ivan slips, takes it back and answers again; Ines agrees.
    h2 = ingest_one(project, 11, {"review_id": "H2", "review_type": "style"})
    queue(h2)
    answer(mix, ivan, h2, "half_body", 1500, counts=False)
    lease = annotation_undo(project=project, user=ivan)
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=ivan,
        label_name="full_body",
        time_on_task_ms=2500,
    )
    mix.answers.append(("ivan", 2500, True))
    answer(mix, ines, h2, "full_body", 3500)
    # Three disagree; an admin decides.
    e1 = ingest_one(project, 12, {"review_id": "E1", "review_type": "product"})
    queue(e1)
    answer(mix, ivan, e1, "package", 4000)
    answer(mix, ines, e1, "product", 1000)
    answer(mix, ida, e1, "full_body", 5000)
    assert Item.objects.get(pk=e1.pk).status == ItemStatus.DISPUTED
    item_resolve_expert(item_id=e1.pk, project=project, label_name="product", user=people["admin"])
    mix.human = {h1.pk: 2, h2.pk: 2, e1.pk: 3}
    for pk in mix.human:
        assert Item.objects.get(pk=pk).status == ItemStatus.LABELED

    # Forty days ago: one image labeled by two inspectors, and a prediction batch.
    old = ingest_one(project, 20, {"review_id": "OLD", "review_type": "product"})
    queue(old)
    answer(mix, ivan, old, "package", 7000)
    answer(mix, ines, old, "package", 9000)
    mix.answers = mix.answers[:-2]
    cost_record_predictions(project=project, count=5)
    then = timezone.now() - timedelta(days=40)
    Item.objects.filter(pk=old.pk).update(created_at=then, finished_at=then)
    Annotation.objects.filter(item=old).update(created_at=then)
    CostEntry.objects.filter(item=old).update(created_at=then)
    CostEntry.objects.filter(kind=CostKind.PREDICTION, units=5).update(created_at=then)
    CreditDecision.objects.filter(item=old).update(created_at=then, decided_at=then)
    mix.old_item = old.pk
    return mix


def last_30_days() -> Period:
    today = timezone.localdate()
    return Period(today - timedelta(days=29), today)


def expected_answer_cost(mix: Mix, ms: int) -> Decimal:
    if mix.project.cost_mode == "hourly":
        return (HOURLY * Decimal(ms) / Decimal(3_600_000)).quantize(SIX)
    return PRICE


@pytest.mark.parametrize("hourly", [False, True], ids=["per_answer", "hourly"])
def test_cost_report_matches_the_fixture(project, people, make_user, hourly):
    mix = build_mix(project, people, make_user, hourly=hourly)

    report = cost_report_build(project=project, period=last_30_days())
    s = report.summary

    given = len(mix.answers)
    current = sum(1 for *_, counts in mix.answers if counts)
    assert (given, current) == (8, 7)
    assert s["images_ingested"] == 4 + 3
    assert (s["auto_labeled"], s["human_labeled"], s["imported"]) == (4, 3, 0)
    assert (s["answers"], s["current_answers"], s["undone_answers"]) == (8, 7, 1)
    total_ms = sum(ms for _, ms, _ in mix.answers)
    assert s["human_seconds"] == Decimal(total_ms) / 1000 == Decimal("22.5")
    human_cost = sum(expected_answer_cost(mix, ms) for _, ms, _ in mix.answers)
    machine_cost = sum(MACHINE_PER_1000 * n / 1000 for n in mix.prediction_batches)
    assert s["human_cost"] == human_cost
    assert s["predictions"] == 8
    assert s["machine_cost"] == machine_cost == Decimal("0.0004")
    assert s["total_cost"] == human_cost + machine_cost
    assert s["cost_per_final_label"] == ((human_cost + machine_cost) / 7).quantize(SIX)

    # Baseline: 7 images labeled here × observed answers per human-labeled image (7 / 3, above
    # the minimum of 2) × price per answer (hourly: the median answer's time at the hourly rate).
    observed = Decimal(sum(mix.human.values())) / len(mix.human)
    assert s["baseline_answers_per_item"] == observed.quantize(Decimal("0.0001"))
    assert not s["baseline_uses_minimum"]
    if hourly:
        seconds = sorted(Decimal(ms) / 1000 for _, ms, _ in mix.answers)
        median = (seconds[3] + seconds[4]) / 2
        assert median == Decimal("2.75")
        price = (HOURLY * median / 3600).quantize(SIX)
        assert human_cost == Decimal("0.1125")
    else:
        price = PRICE
        assert human_cost == Decimal("0.24")
    assert s["baseline_price_per_answer"] == price
    baseline = (7 * observed * price).quantize(SIX)
    assert s["baseline_cost"] == baseline
    assert s["saving"] == baseline - (human_cost + machine_cost)

    # Per inspector.
    rows = {row.username: row for row in report.inspectors}
    assert set(rows) == {"ivan-inspector", "ines", "ida"}
    for short, username in (("ivan", "ivan-inspector"), ("ines", "ines"), ("ida", "ida")):
        own = [(ms, counts) for name, ms, counts in mix.answers if name in (short, username)]
        row = rows[username]
        assert row.answers == len(own)
        assert row.current_answers == sum(1 for _, counts in own if counts)
        assert row.seconds == Decimal(sum(ms for ms, _ in own)) / 1000
        assert row.cost == sum(expected_answer_cost(mix, ms) for ms, _ in own)
        skill = AnnotatorSkill.objects.get(project=project, annotator__username=username)
        assert row.estimated_accuracy == skill.estimated_accuracy
        assert (row.gold_answers, row.gold_correct) == (skill.gold_answers, skill.gold_correct)
    # The expert decision became gold evidence for the three who disputed it.
    assert rows["ines"].gold_accuracy == 1.0 and rows["ida"].gold_accuracy == 0.0


def test_totals_rows_are_the_sums_of_their_rows(project, people, make_user):
    build_mix(project, people, make_user)
    report = cost_report_build(project=project, period=last_30_days())

    t = report.daily_totals
    for name in ("ingested", "auto_labeled", "human_labeled", "answers", "predictions"):
        assert getattr(t, name) == sum(getattr(row, name) for row in report.daily)
    for name in ("human_seconds", "human_cost", "machine_cost", "total_cost"):
        assert getattr(t, name) == sum((getattr(row, name) for row in report.daily), Decimal(0))
    it = report.inspector_totals
    for name in ("answers", "current_answers", "seconds", "cost"):
        assert getattr(it, name) == sum((getattr(row, name) for row in report.inspectors), 0)
    # The three tables agree with each other.
    assert it.cost == t.human_cost == report.summary["human_cost"]
    assert it.answers == t.answers == report.summary["answers"]
    assert report.summary["total_cost"] == t.total_cost
    # Everything happened today.
    today = [row for row in report.daily if row.day == timezone.localdate()]
    assert today[0].auto_labeled == 4 and today[0].human_labeled == 3
    assert len(report.daily) == 30

    # The CSV tables carry the same figures, totals row last.
    header, rows = cost_report_table(report=report, table="daily")
    assert header[0] == "date" and rows[-1][0] == "total" and len(rows) == 31
    cost_col = header.index("total_cost")
    assert sum(row[cost_col] for row in rows[:-1]) == rows[-1][cost_col]
    header, rows = cost_report_table(report=report, table="inspectors")
    assert [row[0] for row in rows] == ["ida", "ines", "ivan-inspector", "total"]
    assert sum(row[header.index("cost")] for row in rows[:-1]) == rows[-1][header.index("cost")]
    header, rows = cost_report_table(report=report, table="summary")
    values = {row[0]: row[3] for row in rows}
    assert values["total_cost"] == report.summary["total_cost"]


def test_the_period_leaves_out_what_happened_outside_it(project, people, make_user):
    mix = build_mix(project, people, make_user)
    today = timezone.localdate()

    recent = cost_report_build(project=project, period=last_30_days()).summary
    both = cost_report_build(
        project=project, period=Period(today - timedelta(days=45), today)
    ).summary
    only_old = cost_report_build(
        project=project,
        period=Period(today - timedelta(days=41), today - timedelta(days=39)),
    ).summary

    assert (only_old["images_ingested"], only_old["human_labeled"], only_old["answers"]) == (
        1,
        1,
        2,
    )
    assert only_old["human_seconds"] == Decimal("16")
    assert only_old["human_cost"] == 2 * PRICE
    assert only_old["predictions"] == 5
    assert only_old["auto_labeled"] == 0
    for name in ("images_ingested", "human_labeled", "answers", "predictions", "total_cost"):
        assert both[name] == recent[name] + only_old[name]
    assert Item.objects.get(pk=mix.old_item).final_source == ItemSource.CONSENSUS


def test_baseline_uses_the_minimum_without_human_labels(project):
    project.min_answers = 3
    project.save()
    for n in range(2):
        item = ingest_one(project, n)
        label = project.labels.get(name="package")
        Item.objects.filter(pk=item.pk).update(
            status=ItemStatus.AUTO_LABELED,
            final_label=label,
            final_source=ItemSource.MACHINE,
            finished_at=timezone.now(),
        )
    s = cost_report_build(project=project, period=last_30_days()).summary
    assert s["baseline_uses_minimum"] and s["baseline_observed_answers_per_item"] is None
    assert s["baseline_cost"] == 2 * 3 * project.price_per_answer
    assert s["total_cost"] == 0 and s["saving"] == s["baseline_cost"]
    assert s["cost_per_final_label"] == 0


def test_an_empty_hourly_project_has_no_baseline(project):
    project.cost_mode = "hourly"
    project.save()
    s = cost_report_build(project=project, period=last_30_days()).summary
    assert s["baseline_cost"] is None and s["saving"] is None
    assert s["cost_per_final_label"] is None and s["total_cost"] == 0


def test_period_parsing():
    today = timezone.localdate()
    default = report_period_parse(start=None, end=None, today=today)
    assert default == Period(today - timedelta(days=29), today)
    assert report_period_parse(start="2026-01-05", end="2026-01-07") == Period(
        today.replace(2026, 1, 5), today.replace(2026, 1, 7)
    )
    for start, end, words in [
        ("2026-13-01", "", "YYYY-MM-DD"),
        ("yesterday", "", "YYYY-MM-DD"),
        ("2026-02-02", "2026-02-01", "must not be after"),
        ("2020-01-01", "2026-01-01", "at most"),
    ]:
        with pytest.raises(ServiceError, match=words) as caught:
            report_period_parse(start=start, end=end)
        assert caught.value.status == 400


def test_credit_filters(project, people, make_user):
    build_mix(project, people, make_user)
    everything = list(credit_decisions_filter(project=project, filters=CreditFilters()))
    # Three auto-labeled images and four human ones carry a review type; newest decision first.
    assert len(everything) == 3 + 4
    assert everything[-1].review_id == "OLD"

    def ids(**params) -> set[str]:
        filters = credit_filters_parse(params)
        return {d.review_id for d in credit_decisions_filter(project=project, filters=filters)}

    assert ids(outcome="granted") == {"A0", "A2", "H1", "H2", "E1"}
    assert ids(outcome="denied") == {"A1", "OLD"}
    assert ids(source="machine") == {"A0", "A1", "A2"}
    assert ids(source="expert") == {"E1"}
    assert ids(review_type="style") == {"A2", "H2"}
    assert ids(review_id="h") == {"H1", "H2"}
    today = timezone.localdate()
    assert ids(end=(today - timedelta(days=1)).isoformat()) == {"OLD"}
    assert "OLD" not in ids(start=today.isoformat(), end=today.isoformat())
    assert ids(outcome="denied", source="consensus") == {"OLD"}
    for bad in ({"outcome": "maybe"}, {"source": "oracle"}, {"start": "soon"}):
        with pytest.raises(ServiceError):
            credit_filters_parse(bad)

    rows = list(credit_rows(credit_decisions_filter(project=project, filters=CreditFilters())))
    assert rows[0][:4] == ["review_id", "review_type", "outcome", "source"]
    assert len(rows) == 1 + 7


def test_seeded_gold_and_imported_labels_are_neither_inspectors_work_nor_a_saving(
    project, people, make_user
):
    """Known answers an admin seeds as gold and labels imported from a manifest came with the
    data: the report counts them apart, they never enter the baseline, and alone they save
    nothing."""
    labels = {label.name: label for label in project.labels.all()}
    for n in range(3):
        gold_item_add(item=ingest_one(project, 100 + n), label=labels["product"])
    imported = ingest_one(project, 110)
    item_finalize(item=imported, label=labels["package"], source=ItemSource.IMPORTED, confidence=1)

    s = cost_report_build(project=project, period=last_30_days()).summary
    assert (s["seeded_gold"], s["imported"], s["final_labels"]) == (3, 1, 4)
    assert (s["auto_labeled"], s["human_labeled"]) == (0, 0)
    assert s["baseline_observed_answers_per_item"] is None
    assert s["baseline_cost"] == 0 and s["saving"] == 0 and s["saving_percent"] is None
    assert s["cost_per_final_label"] is None

    # With real work beside them, the figures are the work's alone: the same as without them.
    build_mix(project, people, make_user)
    s = cost_report_build(project=project, period=last_30_days()).summary
    assert (s["auto_labeled"], s["human_labeled"], s["seeded_gold"]) == (4, 3, 3)
    observed = Decimal(7) / 3
    assert s["baseline_observed_answers_per_item"] == observed.quantize(Decimal("0.0001"))
    assert s["baseline_cost"] == (7 * observed * PRICE).quantize(SIX)
    report = cost_report_build(project=project, period=last_30_days())
    assert report.daily_totals.seeded_gold == 3
    header, rows = cost_report_table(report=report, table="daily")
    assert rows[-1][header.index("seeded_gold")] == 3
