"""Manager pages (cost report, credits) and their API: who may see them, CSV, bad input."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import CostEntry, CostKind, CreditDecision, Item, ItemSource, ItemStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The role fixtures create several users per test; the default hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


PAGES = ["costs", "credits"]
APIS = ["api-report-costs", "api-credits"]


@pytest.fixture
def results(project, people):
    """Sixty credit decisions (every third denied, one from last year), a few cost rows."""
    label = project.labels.get(name="product")
    now = timezone.now()
    items = Item.objects.bulk_create(
        Item(
            project=project,
            image=f"i/{n}.png",
            sha256=f"{n:064d}",
            content_type="image/png",
            width=8,
            height=8,
            byte_size=100,
            metadata={"review_id": f"R-{n:03d}", "review_type": "product"},
            status=ItemStatus.LABELED,
            final_label=label,
            final_source=ItemSource.CONSENSUS,
            finished_at=now,
        )
        for n in range(60)
    )
    CreditDecision.objects.bulk_create(
        CreditDecision(
            project=project,
            item=item,
            review_id=item.metadata["review_id"],
            review_type="product",
            outcome="denied" if n % 3 == 0 else "granted",
            source=ItemSource.CONSENSUS,
            decided_at=now - timedelta(days=400) if n == 0 else now,
        )
        for n, item in enumerate(items)
    )
    inspector = people["inspector"]
    for seconds in (2.0, 4.0):
        CostEntry.objects.create(
            project=project,
            kind=CostKind.HUMAN_ANSWER,
            annotator=inspector,
            item=items[1],
            seconds=seconds,
            amount=Decimal("0.03"),
        )
    CostEntry.objects.create(
        project=project, kind=CostKind.PREDICTION, units=60, amount=Decimal("0.003")
    )
    return items


def url(name: str, slug: str = "reviews") -> str:
    return reverse(name, args=[slug])


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- who may see the pages -----------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("role", ["manager", "admin"])
def test_managers_and_admins_see_the_pages(client, people, results, name, role):
    client.force_login(people[role])
    response = client.get(url(name))
    assert response.status_code == 200
    assert response.templates[0].name == f"{name}.html"


@pytest.mark.parametrize("name", PAGES)
def test_an_inspector_is_refused(client, people, name):
    client.force_login(people["inspector"])
    assert client.get(url(name)).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_an_outsider_does_not_learn_the_project_exists(client, people, name):
    client.force_login(people["outsider"])
    assert client.get(url(name)).status_code == 404
    assert client.get(url(name, "no-such-project")).status_code == 404


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, project, name):
    response = client.get(url(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", PAGES)
def test_pages_only_answer_get(client, people, name):
    client.force_login(people["manager"])
    assert client.post(url(name)).status_code == 405


def test_project_page_links_to_the_reports_for_managers_only(client, people):
    client.force_login(people["manager"])
    page = client.get(reverse("project", args=["reviews"])).content.decode()
    assert f'href="{url("costs")}"' in page and f'href="{url("credits")}"' in page
    client.force_login(people["inspector"])
    page = client.get(reverse("project", args=["reviews"])).content.decode()
    assert url("costs") not in page and url("credits") not in page


# --- cost report page ------------------------------------------------------------------------


def test_cost_report_shows_the_period_figures(client, people, results):
    client.force_login(people["manager"])
    response = client.get(url("costs"))
    report = response.context["report"]
    assert report.period.end == timezone.localdate()
    assert report.period.start == timezone.localdate() - timedelta(days=29)
    assert report.summary["human_cost"] == Decimal("0.06")
    assert report.summary["total_cost"] == Decimal("0.063")
    page = response.content.decode()
    assert 'id="daily-chart"' in page and "chart.umd.min.js" in page
    assert "ivan-inspector" in page
    assert "answers</strong> each" in page  # the baseline explains itself


def test_cost_report_csv_tables(client, people, results):
    client.force_login(people["manager"])
    today = timezone.localdate()
    start = today - timedelta(days=6)
    query = {"start": start.isoformat(), "end": today.isoformat(), "format": "csv"}

    summary = client.get(url("costs"), {**query, "table": "summary"})
    assert summary.status_code == 200
    assert summary["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in summary["Content-Disposition"]
    rows = read_csv(summary)
    assert rows[0] == ["metric", "description", "unit", "value"]
    values = {row[0]: row[3] for row in rows[1:]}
    assert Decimal(values["total_cost"]) == Decimal("0.063")
    assert values["start"] == start.isoformat()

    daily = read_csv(client.get(url("costs"), {**query, "table": "daily"}))
    assert daily[0][:3] == ["date", "ingested", "auto_labeled"]
    assert len(daily) == 1 + 7 + 1 and daily[-1][0] == "total"
    column = daily[0].index("total_cost")
    assert sum(Decimal(row[column]) for row in daily[1:-1]) == Decimal(daily[-1][column])

    inspectors = read_csv(client.get(url("costs"), {**query, "table": "inspectors"}))
    assert inspectors[0][:3] == ["inspector", "answers", "current_answers"]
    assert inspectors[1][0] == "ivan-inspector" and inspectors[-1][0] == "total"
    assert Decimal(inspectors[1][inspectors[0].index("seconds")]) == Decimal("6")


@pytest.mark.parametrize(
    "query, words",
    [
        ({"start": "2026-02-30"}, "YYYY-MM-DD"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "must not be after"),
        ({"format": "csv", "table": "everything"}, "must be one of"),
    ],
)
def test_cost_report_refuses_bad_input(client, people, query, words):
    client.force_login(people["manager"])
    response = client.get(url("costs"), query)
    assert response.status_code == 400
    assert words in response.content.decode()


# --- credits page --------------------------------------------------------------------------


def test_credits_are_paginated_newest_first(client, people, results):
    client.force_login(people["manager"])
    first = client.get(url("credits"))
    assert first.context["page"].paginator.count == 60
    assert len(first.context["page"].object_list) == 50
    second = client.get(url("credits"), {"page": 2})
    rows = list(second.context["page"].object_list)
    assert len(rows) == 10 and rows[-1].review_id == "R-000"  # the year-old one comes last


def test_credit_filters_and_their_csv(client, people, results):
    client.force_login(people["admin"])
    query = {"outcome": "denied", "review_id": "r-0"}
    page = client.get(url("credits"), query)
    assert page.context["page"].paginator.count == 20
    html = page.content.decode()
    assert "R-003" in html and "R-001" not in html
    assert "format=csv" in html and "outcome=denied" in html

    response = client.get(url("credits"), {**query, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = read_csv(response)
    assert rows[0][:4] == ["review_id", "review_type", "outcome", "source"]
    assert len(rows) == 1 + 20 and {row[2] for row in rows[1:]} == {"denied"}

    today = timezone.localdate().isoformat()
    recent = client.get(url("credits"), {"start": today, "end": today})
    assert recent.context["page"].paginator.count == 59


def test_credit_filters_refuse_bad_values(client, people):
    client.force_login(people["manager"])
    response = client.get(url("credits"), {"outcome": "maybe"})
    assert response.status_code == 400
    assert "must be one of" in response.content.decode()
    assert client.get(url("credits"), {"start": "x", "format": "csv"}).status_code == 400


def test_csv_text_cannot_become_a_spreadsheet_formula(client, people, results):
    CreditDecision.objects.filter(review_id="R-001").update(review_id="=HYPERLINK(1)")
    client.force_login(people["manager"])
    rows = read_csv(client.get(url("credits"), {"format": "csv", "review_id": "hyperlink"}))
    assert rows[1][0] == "'=HYPERLINK(1)"


# --- API -----------------------------------------------------------------------------------


@pytest.fixture
def api():
    return APIClient()


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_api_cost_report(api, people, results, role):
    api.force_authenticate(people[role])
    response = api.get(url("api-report-costs"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"summary", "inspectors", "inspector_totals", "daily", "daily_totals"}
    assert Decimal(body["summary"]["total_cost"]) == Decimal("0.063")
    assert len(body["daily"]) == 30 and body["daily_totals"]["date"] is None
    assert body["inspectors"][0]["inspector"] == "ivan-inspector"
    assert Decimal(body["inspector_totals"]["cost"]) == Decimal("0.06")


def test_api_credits_paginated_and_filtered(api, people, results):
    api.force_authenticate(people["manager"])
    body = api.get(url("api-credits")).json()
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]
    assert body["results"][0]["final_label"] == "product"
    denied = api.get(url("api-credits"), {"outcome": "denied", "source": "consensus"}).json()
    assert denied["count"] == 20
    assert {row["outcome"] for row in denied["results"]} == {"denied"}


@pytest.mark.parametrize("name", APIS)
def test_api_refuses_everyone_else(api, people, name):
    assert api.get(url(name)).status_code in (401, 403)
    api.force_authenticate(people["inspector"])
    assert api.get(url(name)).status_code == 403
    api.force_authenticate(people["outsider"])
    assert api.get(url(name)).status_code == 404


@pytest.mark.parametrize("name", APIS)
def test_api_is_read_only(api, people, name):
    api.force_authenticate(people["manager"])
    assert api.post(url(name), {}).status_code == 405


@pytest.mark.parametrize(
    "name, query, words",
    [
        ("api-report-costs", {"start": "01/02/2026"}, "YYYY-MM-DD"),
        ("api-report-costs", {"start": "2026-03-02", "end": "2026-03-01"}, "must not be after"),
        ("api-credits", {"outcome": "maybe"}, "must be one of"),
        ("api-credits", {"end": "tomorrow"}, "YYYY-MM-DD"),
    ],
)
def test_api_bad_query_is_a_400_with_a_reason(api, people, name, query, words):
    api.force_authenticate(people["manager"])
    response = api.get(url(name), query)
    assert response.status_code == 400
    assert words in response.json()["detail"]
