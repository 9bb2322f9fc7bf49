import pytest

from labeling.demo import demo_seed
from tests.labeling.test_demo import write_idx

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_demo_inspector_logs_in_and_sees_the_demo_project(live_server, page, tmp_path):
    import numpy as np

    write_idx(
        tmp_path / "fm", np.random.default_rng(1).integers(0, 255, (10, 28, 28)), np.arange(10)
    )
    result = demo_seed(images=10, data_root=tmp_path / "fm")
    password = result.new_credentials["demo-inspector"]

    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", "demo-inspector")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")

    page.wait_for_selector("text=Your projects")
    page.click("text=Fashion-MNIST demo")
    page.wait_for_selector("h1:has-text('Fashion-MNIST demo')")
    assert page.locator("ol.labels li").count() == 10
    # Thumbnails load through the membership-checked image view.
    page.wait_for_function(
        "[...document.querySelectorAll('.thumbs img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator(".thumbs img").count() == 10
