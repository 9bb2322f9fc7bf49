"""A new user's first hour, in real Chromium against the live server, through the pages only:
an admin creates a project with labels package, product, full_body, half_body and adds an
inspector and a manager; the admin uploads images; the inspector logs in with the password the
admin was shown and labels every image by keyboard; the manager opens the cost report, whose
totals match the answers given."""

import os
from decimal import Decimal

import pytest
from PIL import Image

from labeling.access import Role
from labeling.models import Annotation, Item, Project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = [("package", "Package", "1"), ("product", "Product", "2"), ("full_body", "Full body", "3")]
LABELS.append(("half_body", "Half body", "4"))
IMAGES = 6
STATE = "document.getElementById('inspector').dataset"


def shot(path: str) -> None | str:
    folder = os.environ.get("FIRST_HOUR_SCREENSHOTS")
    return f"{folder}/{path}" if folder else None


def log_in(context, server: str, username: str, password: str):
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server}/")
    return page


def one_time_password(page) -> str:
    return page.inner_text("#one-time-password").strip()


def test_a_new_users_first_hour(server, browser, make_user, tmp_path):
    # The operator's part: one site admin (bin/run's demo-admin is one).
    make_user("ada", Role.ADMIN, password="Ada-Secret-123")

    # --- the admin creates the project ----------------------------------------------------
    admin = log_in(browser.new_context(), server, "ada", "Ada-Secret-123")
    admin.click("#new-project")
    admin.fill("input[name=name]", "Review photos")
    for _ in range(len(LABELS) - 2):  # the form starts with two blank rows
        admin.click("#add-label")
    rows = admin.locator("#label-rows tbody tr")
    assert rows.count() == len(LABELS)
    for i, (name, display, key) in enumerate(LABELS):
        rows.nth(i).locator("input[name=label_name]").fill(name)
        rows.nth(i).locator("input[name=label_display]").fill(display)
        rows.nth(i).locator("input[name=label_key]").fill(key)
    admin.fill("input[name=min_answers]", "1")
    admin.fill("input[name=gold_rate]", "0")
    admin.fill("input[name=price_per_answer]", "0.05")
    rules = admin.locator("#rule-rows tbody tr")
    rules.nth(0).locator("input[name=rule_type]").fill("product")
    rules.nth(0).locator("input[name=rule_label]").fill("product")
    rules.nth(1).locator("input[name=rule_type]").fill("style")
    rules.nth(1).locator("input[name=rule_label]").fill("full_body")
    if path := shot("new-project.png"):
        admin.screenshot(path=path, full_page=True)
    admin.click("#save-project")
    admin.wait_for_url(f"{server}/p/review-photos/members/")
    project = Project.objects.get(slug="review-photos")
    assert [(lb.name, lb.display_name, lb.key) for lb in project.labels.all()] == LABELS
    assert project.credit_rules == {"product": "product", "style": "full_body"}

    # --- …and adds an inspector and a manager, each shown a password once -----------------
    passwords = {}
    for username, role in (("ines", "inspector"), ("mo", "manager")):
        admin.fill("#create-member input[name=username]", username)
        admin.select_option("#create-member select[name=role]", role)
        admin.click("#create-member button[type=submit]")
        admin.wait_for_selector("#one-time-password")
        passwords[username] = one_time_password(admin)
    assert admin.locator("#member-table tbody tr").count() == 3
    if path := shot("members.png"):
        admin.screenshot(path=path, full_page=True)

    # --- the admin uploads images -----------------------------------------------------------
    files = []
    for i in range(IMAGES):
        path = tmp_path / f"review-{i}.png"
        Image.new("RGB", (320, 240), (40 * i, 120, 200 - 30 * i)).save(path)
        files.append(str(path))
    admin.goto(f"{server}/p/review-photos/")
    admin.click("text=Upload images")
    admin.set_input_files("input[name=files]", files)
    admin.click("main button[type=submit]")
    admin.wait_for_selector("text=added")
    assert f"{IMAGES} added" in admin.inner_text("main")
    assert Item.objects.filter(project=project).count() == IMAGES

    # --- the inspector labels them all by keyboard ------------------------------------------
    inspector = log_in(browser.new_context(), server, "ines", passwords["ines"])
    inspector.click("text=Review photos")
    inspector.click("text=Start inspecting")
    given = []
    keys = [key for _, _, key in LABELS]
    while True:
        inspector.wait_for_function(f"['ready', 'empty'].includes({STATE}.state)")
        if inspector.evaluate(f"{STATE}.state") == "empty":
            break
        item = inspector.evaluate(f"{STATE}.item")
        inspector.wait_for_function("document.getElementById('inspect-image').complete")
        key = keys[len(given) % len(keys)]
        inspector.keyboard.press(key)
        given.append((int(item), key))
        inspector.wait_for_function(f"{STATE}.item !== '{item}'")
    inspector.wait_for_function(f"{STATE}.pending === '0'")
    assert len(given) == IMAGES and len({item for item, _ in given}) == IMAGES
    answers = Annotation.objects.filter(project=project)
    assert answers.count() == IMAGES
    by_key = {key: name for name, _, key in LABELS}
    assert {(a.item_id, a.label.name) for a in answers} == {
        (item, by_key[key]) for item, key in given
    }

    # --- the manager opens the cost report: its totals match the answers given ----------------
    manager = log_in(browser.new_context(), server, "mo", passwords["mo"])
    manager.goto(f"{server}/p/review-photos/")
    manager.click("text=Costs")
    manager.wait_for_selector("[data-metric=current_answers]")
    assert manager.inner_text("[data-metric=current_answers]") == str(IMAGES)
    expected = Decimal("0.05") * IMAGES
    assert manager.inner_text("[data-metric=human_cost]").startswith(f"{expected:.2f}")
    assert manager.inner_text("[data-metric=total_cost]").startswith(f"{expected:.2f}")
    if path := shot("costs.png"):
        manager.screenshot(path=path, full_page=True)
    # The manager can read the answers too, but not set the project up.
    manager.goto(f"{server}/p/review-photos/answers/")
    assert manager.locator("#answer-table tbody tr").count() == IMAGES
    refused = manager.goto(f"{server}/p/review-photos/settings/")
    assert refused.status == 403 and "Back to your projects" in manager.inner_text("main")
