"""The inspector page fits a 1366×768 screen, and a notice goes when the next answer is given."""

import os

import pytest

from labeling.ingest import Upload, item_ingest
from labeling.project_setup import LabelSpec, member_add, project_create
from tests.browser.test_inspect_keyboard import current_item, log_in
from tests.conftest import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STATE = "document.getElementById('inspector').dataset"
# A 1366×768 screen leaves about 1366×657 for the page inside the browser's own bars; the
# page must fit both without scrolling.
WINDOWS = [(1366, 768), (1366, 657)]
FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@pytest.fixture
def ten_labels(people):
    project = project_create(
        name="Fashion",
        slug="fashion",
        labels=[LabelSpec(f"c{i}", name) for i, name in enumerate(FASHION)],
        gold_rate=0,
        min_answers=1,
    )
    member_add(project=project, user=people["inspector"])
    uploads = [
        Upload(f"{i}.png", image_bytes(size=(640, 480), color=(9 * i, 90, 40))) for i in range(8)
    ]
    item_ingest(project=project, uploads=uploads)
    return project


@pytest.mark.parametrize(("width", "height"), WINDOWS)
def test_the_page_fits_the_window_with_ten_labels(
    server, page, client, people, ten_labels, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, client, server, people["inspector"])
    page.goto(f"{server}/p/fashion/inspect/")
    current_item(page)
    size = page.evaluate(
        """() => {
          const root = document.documentElement;
          const parts = document.querySelectorAll('.label-key, .key-help, .stats');
          return {
            scrollW: root.scrollWidth, scrollH: root.scrollHeight,
            w: window.innerWidth, h: window.innerHeight,
            keys: [...parts].map(e => e.getBoundingClientRect().bottom),
            image: document.getElementById('inspect-image').getBoundingClientRect().height,
          };
        }"""
    )
    if folder := os.environ.get("INSPECT_LAYOUT_SCREENSHOTS"):
        page.screenshot(path=f"{folder}/inspect-{width}x{height}.png")
    assert size["scrollW"] <= size["w"] and size["scrollH"] <= size["h"], size
    assert max(size["keys"]) <= size["h"], size  # every label key is on screen
    assert size["image"] >= 0.6 * size["h"], size  # and the image still takes the room


def test_the_taken_back_notice_goes_with_the_next_answer(server, page, client, people, project):
    project.gold_rate = 0
    project.min_answers = 1
    project.save()
    uploads = [Upload(f"{i}.png", image_bytes(color=(40 * i, 80, 120))) for i in range(4)]
    item_ingest(project=project, uploads=uploads)
    log_in(page, client, server, people["inspector"])
    page.goto(f"{server}/p/reviews/inspect/")
    first = current_item(page)
    page.keyboard.press("1")
    page.wait_for_function(f"{STATE}.item !== '{first}'")
    page.keyboard.press("u")
    page.wait_for_function(f"{STATE}.item === '{first}'")
    notice = page.locator("#inspect-message")
    assert notice.is_visible() and "taken back" in notice.inner_text()

    page.keyboard.press("2")  # answer it again
    page.wait_for_function(f"{STATE}.item !== '{first}'")
    assert not notice.is_visible()
