"""An inspector labels with the keyboard only, in real Chromium, against the live server."""

import os

import pytest

from labeling.ingest import Upload, item_ingest
from labeling.models import Annotation, Assignment, AssignmentStatus
from tests.conftest import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEYS = {"1": "package", "2": "product", "3": "full_body", "4": "half_body"}
STATE = "document.getElementById('inspector').dataset"


def log_in(page, client, url, user):
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}]
    )


def current_item(page) -> int:
    page.wait_for_function(
        f"{STATE}.state === 'ready' && document.getElementById('inspect-image').complete"
    )
    return int(page.get_attribute("#inspect-image", "data-item"))


def test_inspector_labels_five_images_undoes_one_and_answers_it_again(
    server, page, client, project, people
):
    project.gold_rate = 0
    project.min_answers = 1
    project.save()
    uploads = [Upload(f"{i}.png", image_bytes(color=(30 * i, 200 - 20 * i, 90))) for i in range(6)]
    queued = set(item_ingest(project=project, uploads=uploads).created_ids)
    inspector = people["inspector"]
    log_in(page, client, server, inspector)
    calls = []
    page.on("request", lambda request: calls.append(request.url.split("/queue/")[-1]))

    page.goto(f"{server}/p/reviews/inspect/")
    first = current_item(page)
    assert first in queued
    # The next images are leased and loading before they are needed.
    page.wait_for_function(f"{STATE}.buffered === '4'")
    assert page.inner_text("#answers-today") == "0"
    if path := os.environ.get("INSPECT_SCREENSHOT"):
        page.screenshot(path=path)

    given = {}
    page.wait_for_timeout(300)  # a moment of looking, measured as time on task
    for key in ("1", "2", "3", "4", "2"):
        item = current_item(page)
        assert item not in given
        page.keyboard.press(key)
        given[item] = KEYS[key]
        page.wait_for_function(f"{STATE}.item !== '{item}'")
    assert len(given) == 5
    last = item

    page.keyboard.press("u")
    page.wait_for_function(f"{STATE}.item === '{last}'")
    page.keyboard.press("3")
    given[last] = "full_body"
    page.wait_for_function(f"{STATE}.item !== '{last}' && {STATE}.pending === '0'")
    page.wait_for_function("document.getElementById('answers-today').textContent === '5'")

    rows = list(Annotation.objects.filter(annotator=inspector).order_by("created_at", "id"))
    assert len(rows) == 7  # five answers, one undo row, one answer again
    undo = [row for row in rows if row.label_id is None]
    assert len(undo) == 1 and undo[0].item_id == last
    current = {
        row.item_id: row.label.name
        for row in Annotation.objects.filter(
            annotator=inspector, superseded_by__isnull=True, label__isnull=False
        ).select_related("label")
    }
    assert current == given
    assert rows[0].item_id == first and rows[0].time_on_task_ms >= 250
    # The sixth image is on screen, still leased to the inspector.
    sixth = current_item(page)
    assert sixth in queued and sixth not in given
    assert Assignment.objects.filter(
        annotator=inspector, item_id=sixth, status=AssignmentStatus.OPEN
    ).exists()
    # One request per answer: each answer brought the lease that topped the buffer up, so
    # next/ was only asked for the first four.
    assert calls.count("answers/") == 6
    assert calls.count("next/") == 4
    assert calls.count("me/") == 1


def test_empty_queue_says_so(server, page, client, project, people):
    log_in(page, client, server, people["inspector"])
    page.goto(f"{server}/p/reviews/inspect/")
    page.wait_for_function(f"{STATE}.state === 'empty'")
    assert "Nothing left to label — thank you" in page.inner_text("#stage")


def test_zoom_skip_with_a_reason_and_an_expired_lease(
    server, page, client, project, people, settings
):
    # Lapsed leases are marked expired on every request here (normally every 10 s at most), so
    # the count of open leases below is exact at once.
    settings.LEASE_SWEEP_SECONDS = 0
    project.gold_rate = 0
    project.min_answers = 1
    project.save()
    uploads = [Upload(f"{i}.png", image_bytes(color=(90, 30 * i, 60))) for i in range(6)]
    item_ingest(project=project, uploads=uploads)
    inspector = people["inspector"]
    log_in(page, client, server, inspector)
    page.clock.install()  # to jump to the page's next lease renewal
    page.goto(f"{server}/p/reviews/inspect/")

    skipped = current_item(page)
    page.keyboard.press("z")
    assert "zoomed" in page.get_attribute("#stage", "class")
    page.keyboard.press("z")
    assert "zoomed" not in page.get_attribute("#stage", "class")

    page.keyboard.press("s")
    page.wait_for_function(f"{STATE}.item !== '{skipped}' && {STATE}.pending === '0'")
    lease = Assignment.objects.get(annotator=inspector, item_id=skipped)
    assert lease.status == AssignmentStatus.SKIPPED

    # Held too long (say the laptop slept): the answer is refused with a message and the page
    # goes on with the next image.
    stale = current_item(page)
    page.wait_for_function(f"{STATE}.buffered === '4' && {STATE}.pending === '0'")
    Assignment.objects.filter(annotator=inspector, item_id=stale).update(
        expires_at=lease.created_at
    )
    page.keyboard.press("1")
    page.wait_for_selector("#inspect-message:has-text('expired')")
    assert current_item(page) != stale
    assert not Annotation.objects.filter(item_id=stale).exists()

    reasoned = current_item(page)
    page.once("dialog", lambda dialog: dialog.accept("too blurry"))
    page.keyboard.press("Shift+S")
    page.wait_for_function(f"{STATE}.item !== '{reasoned}' && {STATE}.pending === '0'")
    lease = Assignment.objects.get(annotator=inspector, item_id=reasoned)
    assert (lease.status, lease.skip_reason) == (AssignmentStatus.SKIPPED, "too blurry")
    assert page.inner_text("#answers-today") == "0"

    # Every minute the page renews the leases it holds; one that lapsed meanwhile is dropped.
    page.wait_for_function(f"{STATE}.pending === '0'")
    held = Assignment.objects.filter(annotator=inspector, status=AssignmentStatus.OPEN)
    assert held.count() == 3  # the one on screen and two more: the queue has nothing else
    lapsed = held.exclude(item_id=current_item(page)).first()
    Assignment.objects.filter(pk=lapsed.pk).update(expires_at=lapsed.created_at)
    before = {lease.pk: lease.expires_at for lease in held.exclude(pk=lapsed.pk)}
    page.clock.fast_forward("01:01")
    page.wait_for_selector("#inspect-message:has-text('went back to the queue')")
    page.wait_for_function(f"{STATE}.buffered === '2' && {STATE}.pending === '0'")
    for lease in Assignment.objects.filter(pk__in=before):
        assert lease.expires_at > before[lease.pk]
