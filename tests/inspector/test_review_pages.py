"""Admin review pages: resolving disputed images and reading inspector trust."""

import random

import pytest
from django.urls import reverse

from labeling.access import Role
from labeling.answers import annotation_submit, gold_item_add
from labeling.ingest import Upload, item_ingest
from labeling.models import AnnotatorSkill, Item, ItemSource, ItemStatus
from labeling.project_setup import member_add
from labeling.queue import assignment_next
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(project, n: int, offset: int = 0) -> list[int]:
    uploads = [
        Upload(f"{offset + i}.png", image_bytes(color=((offset + i) % 256, (offset + i) // 256, 9)))
        for i in range(n)
    ]
    return item_ingest(project=project, uploads=uploads).created_ids


def answer_next(project, user, label: str, ms: int = 1500) -> int:
    lease = assignment_next(project=project, user=user, rng=random.Random(0))
    assert lease is not None
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=user,
        label_name=label,
        time_on_task_ms=ms,
    )
    return lease.item_id


@pytest.fixture
def inspectors(project, people, make_user):
    second = make_user("ines-inspector", Role.INSPECTOR)
    member_add(project=project, user=second)
    return people["inspector"], second


@pytest.fixture
def disputed_item(project, inspectors):
    """Two inspectors disagree on an image of a project that stops at two answers."""
    project.max_answers = 2
    project.gold_rate = 0
    project.save()
    (item_id,) = ingest(project, 1)
    ivan, ines = inspectors
    assert answer_next(project, ivan, "product") == item_id
    assert answer_next(project, ines, "package") == item_id
    assert Item.objects.get(pk=item_id).status == ItemStatus.DISPUTED
    return item_id


def test_disputed_page_lists_the_item_with_who_answered_what(client, people, disputed_item):
    client.force_login(people["admin"])
    response = client.get(reverse("disputed", args=["reviews"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="item-{disputed_item}"' in html
    assert reverse("item-thumbnail", args=["reviews", disputed_item]) in html
    assert "ivan-inspector</td><td>product" in html
    assert "ines-inspector</td><td>package" in html
    assert "Consensus: package" in html
    assert reverse("disputed-resolve", args=["reviews", disputed_item]) in html


def test_resolving_labels_the_item_and_updates_the_inspectors_gold(
    client, people, disputed_item, inspectors
):
    ivan, ines = inspectors
    client.force_login(people["admin"])
    url = reverse("disputed-resolve", args=["reviews", disputed_item])
    response = client.post(url, {"label": "product"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("disputed", args=["reviews"])
    html = response.content.decode()
    assert f"Image {disputed_item} is now labeled product" in html
    assert f'id="item-{disputed_item}"' not in html

    item = Item.objects.get(pk=disputed_item)
    assert item.status == ItemStatus.LABELED
    assert item.final_source == ItemSource.EXPERT
    assert item.final_label.name == "product"
    right = AnnotatorSkill.objects.get(project=item.project, annotator=ivan)
    wrong = AnnotatorSkill.objects.get(project=item.project, annotator=ines)
    assert (right.gold_answers, right.gold_correct) == (1, 1)
    assert (wrong.gold_answers, wrong.gold_correct) == (1, 0)


def test_resolving_twice_or_with_a_bad_label_shows_why(client, people, disputed_item):
    client.force_login(people["admin"])
    url = reverse("disputed-resolve", args=["reviews", disputed_item])
    bad = client.post(url, {"label": "selfie"}, follow=True).content.decode()
    assert "is not a label of this project" in bad
    assert Item.objects.get(pk=disputed_item).status == ItemStatus.DISPUTED
    client.post(url, {"label": "package"})
    again = client.post(url, {"label": "product"}, follow=True).content.decode()
    assert "Only disputed images are resolved by an expert" in again
    assert Item.objects.get(pk=disputed_item).final_label.name == "package"


def test_resolve_only_accepts_post(client, people, disputed_item):
    client.force_login(people["admin"])
    url = reverse("disputed-resolve", args=["reviews", disputed_item])
    assert client.get(url).status_code == 405


def test_resolve_needs_the_csrf_token(people, disputed_item):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(people["admin"])
    url = reverse("disputed-resolve", args=["reviews", disputed_item])
    assert client.post(url, {"label": "product"}).status_code == 403
    assert Item.objects.get(pk=disputed_item).status == ItemStatus.DISPUTED


@pytest.mark.parametrize(
    ("role", "status"), [("inspector", 403), ("manager", 403), ("outsider", 404)]
)
def test_review_pages_are_for_admins_only(client, people, disputed_item, role, status):
    client.force_login(people[role])
    for url in (reverse("disputed", args=["reviews"]), reverse("inspectors", args=["reviews"])):
        assert client.get(url).status_code == status, url
    resolve = reverse("disputed-resolve", args=["reviews", disputed_item])
    assert client.post(resolve, {"label": "product"}).status_code == status
    assert Item.objects.get(pk=disputed_item).status == ItemStatus.DISPUTED


def test_anonymous_is_sent_to_login(client, project):
    for name in ("disputed", "inspectors"):
        response = client.get(reverse(name, args=["reviews"]))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_project_page_links_review_pages_for_admins_with_the_disputed_count(
    client, people, disputed_item
):
    client.force_login(people["admin"])
    html = client.get(reverse("project", args=["reviews"])).content.decode()
    assert reverse("disputed", args=["reviews"]) in html
    assert "Disputed images (1)" in html
    assert reverse("inspectors", args=["reviews"]) in html
    client.force_login(people["inspector"])
    html = client.get(reverse("project", args=["reviews"])).content.decode()
    assert reverse("disputed", args=["reviews"]) not in html


def test_inspectors_page_flags_an_inspector_who_answers_gold_at_random(
    client, project, people, inspectors
):
    """Given gold images in every queue, one careful inspector and one who presses keys at
    random, the admin sees the second flagged and the first not."""
    labels = [label.name for label in project.labels.all()]
    project.gold_rate = 1.0
    project.save()
    truth, guess = {}, {}
    coin = random.Random(7)
    for n, item_id in enumerate(ingest(project, 24)):
        gold_item_add(
            item=Item.objects.get(pk=item_id),
            label=project.labels.get(name=labels[n % 4]),
            by=people["admin"],
        )
        # The random key press is fixed per image, so the outcome does not depend on the
        # order the queue serves the gold images in.
        truth[item_id], guess[item_id] = labels[n % 4], coin.choice(labels)
    careful, spammer = inspectors
    for user, answer, ms in ((careful, truth, 2000), (spammer, guess, 300)):
        for _ in range(24):
            lease = assignment_next(project=project, user=user, rng=random.Random(0))
            assert lease.is_gold
            annotation_submit(
                project=project,
                assignment_id=lease.pk,
                user=user,
                label_name=answer[lease.item_id],
                time_on_task_ms=ms,
            )
    lucky = sum(truth[i] == guess[i] for i in truth)
    assert lucky <= 8  # about a quarter right, as guessing among four labels gives

    client.force_login(people["admin"])
    response = client.get(reverse("inspectors", args=["reviews"]))
    assert response.status_code == 200
    rows = {row["username"]: row for row in response.context["rows"]}
    assert rows["ines-inspector"]["likely_spammer"]
    assert not rows["ivan-inspector"]["likely_spammer"]
    assert rows["ivan-inspector"]["gold_accuracy"] == 1.0
    assert rows["ivan-inspector"]["answers"] == 24
    assert rows["ivan-inspector"]["median_seconds"] == 2.0
    assert rows["ines-inspector"]["median_seconds"] == 0.3
    assert len(rows["ines-inspector"]["confusion"]) == 4
    html = response.content.decode()
    spam_row = html.split('data-inspector="ines-inspector"')[1].split("</tr>")[0]
    assert "close to guessing" in spam_row
    careful_row = html.split('data-inspector="ivan-inspector"')[1].split("</tr>")[0]
    assert "close to guessing" not in careful_row
    assert "(24/24)" in careful_row


def test_inspectors_page_without_answers(client, people):
    client.force_login(people["admin"])
    response = client.get(reverse("inspectors", args=["reviews"]))
    assert "Nobody has answered in this project yet" in response.content.decode()
