"""A manager opens the cost report in real Chromium: the daily chart is drawn with the data."""

import os
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from labeling.access import Role
from labeling.credits import credit_decide
from labeling.models import (
    Annotation,
    CostEntry,
    CostKind,
    CreditDecision,
    Item,
    ItemSource,
    ItemStatus,
)
from labeling.project_setup import member_add
from tests.browser.test_inspect_keyboard import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (days ago, machine labels, human labels) for the fixture's last week.
WEEK = [(6, 5, 2), (5, 8, 3), (4, 0, 4), (3, 12, 1), (2, 7, 6), (1, 9, 2), (0, 3, 5)]


def seed_week(project, inspectors) -> None:
    labels = list(project.labels.all())
    project.credit_rules = {"product": "product", "style": "full_body"}
    project.save()
    now = timezone.now()
    n = 0
    for days_ago, machine, human in WEEK:
        when = now - timedelta(days=days_ago)
        for source, count in ((ItemSource.MACHINE, machine), (ItemSource.CONSENSUS, human)):
            for _ in range(count):
                n += 1
                label = labels[n % len(labels)]
                item = Item.objects.create(
                    project=project,
                    image=f"i/{n}.png",
                    sha256=f"{n:064d}",
                    content_type="image/png",
                    width=8,
                    height=8,
                    byte_size=100,
                    metadata={"review_id": f"R{n}", "review_type": "product"},
                    status=ItemStatus.LABELED
                    if source == ItemSource.CONSENSUS
                    else ItemStatus.AUTO_LABELED,
                    final_label=label,
                    final_source=source,
                )
                Item.objects.filter(pk=item.pk).update(created_at=when, finished_at=when)
                if source == ItemSource.MACHINE:
                    p_credit = 0.97 if label.name == "product" else 0.02
                    credit_decide(item=item, source=source, probability=p_credit)
                else:
                    credit_decide(item=item, source=source, label_name=label.name)
                    for inspector, seconds in zip(inspectors, (3.0, 4.5), strict=True):
                        answer = Annotation.objects.create(
                            project=project,
                            item=item,
                            annotator=inspector,
                            label=label,
                            time_on_task_ms=int(seconds * 1000),
                        )
                        entry = CostEntry.objects.create(
                            project=project,
                            kind=CostKind.HUMAN_ANSWER,
                            annotator=inspector,
                            item=item,
                            seconds=seconds,
                            amount=Decimal("0.03"),
                        )
                        Annotation.objects.filter(pk=answer.pk).update(created_at=when)
                        CostEntry.objects.filter(pk=entry.pk).update(created_at=when)
                CreditDecision.objects.filter(item=item).update(decided_at=when)
        entry = CostEntry.objects.create(
            project=project,
            kind=CostKind.PREDICTION,
            units=machine + human,
            amount=Decimal("0.05") * (machine + human) / 1000,
        )
        CostEntry.objects.filter(pk=entry.pk).update(created_at=when)


def test_manager_sees_the_daily_chart(server, page, client, project, people, make_user):
    second = make_user("ines-inspector", Role.INSPECTOR)
    member_add(project=project, user=second)
    seed_week(project, [people["inspector"], second])
    log_in(page, client, server, people["manager"])

    page.goto(f"{server}/p/reviews/costs/")
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('daily-chart'))")
    datasets = page.evaluate(
        "Chart.getChart(document.getElementById('daily-chart')).data.datasets"
        ".map(d => ({label: d.label, data: d.data}))"
    )
    machine, human = datasets[0]["data"], datasets[1]["data"]
    assert len(machine) == 30
    assert machine[-7:] == [m for _, m, _ in WEEK]
    assert human[-7:] == [h for _, _, h in WEEK]
    # Something is painted on the canvas (not just an empty bitmap).
    painted = page.evaluate(
        """() => {
          const c = document.getElementById('daily-chart');
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
          return {n, w: c.width, h: c.height};
        }"""
    )
    assert painted["w"] > 300 and painted["h"] > 100
    assert painted["n"] > 1000
    auto, by_people = sum(m for _, m, _ in WEEK), sum(h for _, _, h in WEEK)
    assert page.inner_text("[data-metric=auto_labeled]") == str(auto)
    assert f"{auto} auto + {by_people} by inspectors" in page.inner_text("#baseline-note")
    page.click("details:has(#daily-table) summary")  # open the table by day
    page.screenshot(path=os.environ.get("COSTS_SCREENSHOT", "/tmp/costs.png"), full_page=True)

    page.goto(f"{server}/p/reviews/credits/?outcome=granted")
    assert page.locator("#credit-table tbody tr").count() > 10
    assert page.locator("#credit-table .outcome-denied").count() == 0
    page.screenshot(path=os.environ.get("CREDITS_SCREENSHOT", "/tmp/credits.png"), full_page=True)
