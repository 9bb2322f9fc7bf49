"""An admin sees a reused photo beside the catalog photo it copies, both loaded, and decides it
from the keyboard; the credit follows."""

import pytest

from labeling.embeddings.catalog import catalog_upload
from labeling.ingest import Upload, item_ingest
from labeling.models import CreditDecision, ReuseMatch
from tests.conftest import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_pair_shows_side_by_side_and_c_confirms(server, page, project, people, client):
    [item] = item_ingest(
        project=project,
        uploads=[Upload("review.png", image_bytes(size=(60, 80)), {"review_type": "product"})],
        queue_prediction=False,
    ).created_ids
    [photo] = catalog_upload(
        project=project, uploads=[Upload("shop.png", image_bytes(size=(80, 60), color=(9, 9, 9)))]
    ).created_ids
    ReuseMatch.objects.create(
        project=project,
        item_id=item,
        matched_catalog_id=photo,
        similarity=0.991,
        hash_distance=0,
        matched_by="hash",
    )
    client.force_login(people["admin"])
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": server}])
    page.goto(f"{server}/p/reviews/reuse/")
    pair = page.locator(f"#match-{item}")
    pair.wait_for()
    page.wait_for_function(
        "[...document.querySelectorAll('.pairs img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    first, second = pair.locator("figure").nth(0), pair.locator("figure").nth(1)
    a, b = first.bounding_box(), second.bounding_box()
    assert abs(a["y"] - b["y"]) < 5 and b["x"] > a["x"] + a["width"] - 1  # side by side
    assert "Catalog photo" in second.inner_text()
    page.keyboard.press("c")
    page.wait_for_selector("text=confirmed as reused")
    assert ReuseMatch.objects.get(item_id=item).status == "confirmed"
    assert CreditDecision.objects.get(item_id=item).outcome == "denied"
