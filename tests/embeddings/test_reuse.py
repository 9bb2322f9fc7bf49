"""Reused photos: a copy of an earlier image or of a catalog photo is marked and linked, its
credit follows the project's policy, an admin's decision re-decides it, and the API shows it."""

import numpy as np
import pytest
from django.test import Client

from labeling.embeddings.catalog import catalog_upload
from labeling.embeddings.reuse import reuse_decide
from labeling.ingest import Upload, item_ingest
from labeling.models import (
    CreditDecision,
    Embedding,
    EmbeddingSpace,
    Item,
    Project,
    ReuseMatch,
    SpaceStatus,
)
from ml.reuse import edit_crop, edit_reencode, edit_screenshot, edit_tint
from tests.embeddings.conftest import encoded, photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest(run_jobs):
    def upload(project, images):
        uploads = [
            Upload(f"p{i}.png", encoded(img), {"review_type": "product"})
            for i, img in enumerate(images)
        ]
        return run_jobs(item_ingest, project=project, uploads=uploads).created_ids

    return upload


@pytest.fixture
def history(project, fashion, ingest):
    """Twenty distinct photos already uploaded (no model yet: ImageNet embeddings)."""
    images, _ = fashion
    return ingest(project, [photo(images[i]) for i in range(20)])


def test_every_image_gets_an_embedding_and_hashes_in_the_active_space(project, history):
    space = EmbeddingSpace.objects.get(project=project)
    assert space.status == SpaceStatus.ACTIVE and space.model_version is None
    rows = Embedding.objects.filter(space=space)
    assert rows.count() == len(history)
    vector = np.frombuffer(bytes(rows.first().vector), dtype=np.float16)
    assert vector.shape == (space.dim,) and abs(np.linalg.norm(vector) - 1) < 0.01
    assert not Item.objects.filter(reused=True).exists()  # distinct photos are not reuses


def test_a_screenshot_of_an_earlier_photo_is_marked_reused_and_linked(
    project, history, fashion, ingest
):
    images, _ = fashion
    rng = np.random.default_rng(1)
    copy = edit_screenshot(photo(images[7]), rng)
    [new] = ingest(project, [copy])
    item = Item.objects.get(pk=new)
    assert item.reused
    match = ReuseMatch.objects.get(item=item)
    assert match.matched_item_id == history[7]
    # Review policy (the default): the credit waits for an admin.
    credit = CreditDecision.objects.get(item=item)
    assert credit.outcome == "pending" and "reused photo" in credit.reason


def test_a_cropped_tinted_copy_is_found_by_aligning_it_with_its_original(
    project, people, history, fashion, ingest
):
    images, _ = fashion
    rng = np.random.default_rng(6)
    copy = edit_tint(edit_crop(photo(images[9]), rng), rng)
    [new] = ingest(project, [copy])
    match = ReuseMatch.objects.get(item_id=new)
    assert match.matched_item_id == history[9] and match.matched_by == "aligned"
    assert match.aligned >= 0.985
    row = Embedding.objects.get(item_id=new)
    assert row.fingerprint and len(bytes(row.fingerprint)) <= 4098
    admin = Client()
    admin.force_login(people["admin"])
    detail = admin.get(f"/api/projects/reviews/items/{new}/reuse/").json()
    assert detail["matched_by"] == "aligned" and detail["aligned"] == pytest.approx(match.aligned)
    page = admin.get("/p/reviews/reuse/")
    assert b"aligned" in page.content


def test_rows_without_a_fingerprint_are_still_matched_by_the_other_arms(
    project, history, fashion, ingest
):
    # Rows written before fingerprints existed: the alignment arm skips them.
    Embedding.objects.filter(item_id__in=history).update(fingerprint=None)
    images, _ = fashion
    copy = edit_screenshot(photo(images[4]), np.random.default_rng(8))
    [new] = ingest(project, [copy])
    match = ReuseMatch.objects.get(item_id=new)
    assert match.matched_item_id == history[4] and match.matched_by == "hash"
    assert match.aligned is None


def test_with_the_alignment_arm_off_a_crop_is_left_to_the_other_arms(
    project, history, fashion, ingest, settings
):
    settings.REUSE_ALIGNMENT = False
    images, _ = fashion
    rng = np.random.default_rng(6)
    [new] = ingest(project, [edit_tint(edit_crop(photo(images[9]), rng), rng)])
    assert not ReuseMatch.objects.filter(item_id=new, matched_by="aligned").exists()


def test_deny_policy_denies_the_credit_and_dismissing_gives_it_back(
    project, history, fashion, ingest
):
    project.reuse_policy = Project.ReusePolicy.DENY
    project.save()
    images, _ = fashion
    copy = edit_reencode(photo(images[3]), np.random.default_rng(2))
    [new] = ingest(project, [copy])
    credit = CreditDecision.objects.get(item_id=new)
    assert (credit.outcome, credit.source) == ("denied", "machine")
    reuse_decide(project=project, item_id=new, confirmed=False, by=None)
    assert not Item.objects.get(pk=new).reused
    assert CreditDecision.objects.get(item_id=new).outcome == "pending"  # waits for its label


def test_a_copy_of_a_catalog_photo_matches_the_catalog(project, fashion, ingest, run_jobs):
    images, _ = fashion
    catalog = run_jobs(
        catalog_upload,
        project=project,
        uploads=[Upload(f"c{i}.png", encoded(photo(images[100 + i]))) for i in range(5)],
    )
    assert catalog.count("created") == 5
    assert not Item.objects.filter(project=project).exists()  # never queued for labeling
    copy = edit_screenshot(photo(images[102]), np.random.default_rng(3))
    [new] = ingest(project, [copy])
    match = ReuseMatch.objects.get(item_id=new)
    assert match.matched_catalog_id == catalog.created_ids[2]


def test_the_api_exposes_the_match_and_admins_decide_it(project, people, history, fashion, ingest):
    images, _ = fashion
    copy = edit_screenshot(photo(images[5]), np.random.default_rng(4))
    [new] = ingest(project, [copy])
    admin = Client()
    admin.force_login(people["admin"])
    body = admin.get(f"/api/projects/reviews/items/{new}/").json()
    assert body["reused"] is True
    assert body["reuse_match"]["kind"] == "item" and body["reuse_match"]["id"] == history[5]
    detail = admin.get(f"/api/projects/reviews/items/{new}/reuse/").json()
    assert detail["matched_id"] == history[5] and detail["status"] == "open"
    decided = admin.post(
        f"/api/projects/reviews/items/{new}/reuse/",
        {"decision": "confirm"},
        content_type="application/json",
    )
    assert decided.status_code == 200 and decided.json()["status"] == "confirmed"
    assert CreditDecision.objects.get(item_id=new).outcome == "denied"
    listed = admin.get("/api/projects/reviews/reuse/?status=confirmed").json()
    assert [m["item"] for m in listed["results"]] == [new]
    page = admin.get("/p/reviews/reuse/?status=confirmed")
    assert page.status_code == 200 and f"image {history[5]}".encode() in page.content
    assert admin.get(f"/api/projects/reviews/items/{history[0]}/reuse/").status_code == 404
    bad = admin.post(
        f"/api/projects/reviews/items/{new}/reuse/",
        {"decision": "maybe"},
        content_type="application/json",
    )
    assert bad.status_code == 400


def test_similar_images_come_nearest_first_with_distances(project, people, history):
    admin = Client()
    admin.force_login(people["admin"])
    response = admin.get(f"/api/projects/reviews/items/{history[0]}/similar/?k=5")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5 and history[0] not in [r["id"] for r in results]
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    assert admin.get(f"/api/projects/reviews/items/{history[0]}/similar/?k=0").status_code == 400
    page = admin.get(f"/p/reviews/items/{history[0]}/similar/")
    assert page.status_code == 200 and page.content.count(b"distance ") >= 5


def test_bad_catalog_uploads_are_refused_one_by_one(project, people, fashion, run_jobs):
    import io

    images, _ = fashion
    admin = Client()
    admin.force_login(people["admin"])
    good = io.BytesIO(encoded(photo(images[1])))
    good.name = "good.png"
    bad = io.BytesIO(b"<html>not an image</html>")
    bad.name = "bad.png"
    response = run_jobs(
        admin.post, path="/api/projects/reviews/catalog/", data={"files": [good, bad]}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["rejected"]) == (1, 1)
    assert [r["outcome"] for r in body["results"]] == ["created", "rejected"]
    listed = admin.get("/api/projects/reviews/catalog/").json()["results"]
    assert [p["original_name"] for p in listed] == ["good.png"]
    assert Embedding.objects.filter(catalog_image_id=listed[0]["id"]).exists()
    assert admin.post("/api/projects/reviews/catalog/", {}).status_code == 400
    gone = admin.delete(f"/api/projects/reviews/catalog/{listed[0]['id']}/")
    assert gone.status_code == 204
    assert admin.delete(f"/api/projects/reviews/catalog/{listed[0]['id']}/").status_code == 404


def test_admins_choose_the_reuse_policy(project, people):
    admin, manager = Client(), Client()
    admin.force_login(people["admin"])
    manager.force_login(people["manager"])
    url = "/api/projects/reviews/reuse/policy/"
    assert admin.get(url).json() == {"reuse_policy": "review"}
    changed = admin.put(url, {"reuse_policy": "deny"}, content_type="application/json")
    assert changed.status_code == 200 and Project.objects.get(pk=project.pk).reuse_policy == "deny"
    assert admin.put(url, {"reuse_policy": "x"}, content_type="application/json").status_code == 400
    refused = manager.put(url, {"reuse_policy": "review"}, content_type="application/json")
    assert refused.status_code == 403
    admin.post("/p/reviews/reuse/policy", {"reuse_policy": "review"})
    assert Project.objects.get(pk=project.pk).reuse_policy == "review"
