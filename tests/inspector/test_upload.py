"""Uploading in the browser form and through the API, several files at once, with metadata."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling.models import Item
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def files():
    return [
        SimpleUploadedFile("one.png", image_bytes(color=(1, 2, 3)), content_type="image/png"),
        SimpleUploadedFile(
            "two.jpg", image_bytes("JPEG", color=(200, 2, 3)), content_type="image/jpeg"
        ),
        SimpleUploadedFile(
            "evil.jpg", b"<html><script>alert(1)</script></html>", content_type="image/jpeg"
        ),
    ]


def test_browser_upload_with_metadata_table(client, people):
    client.force_login(people["admin"])
    sheet = SimpleUploadedFile("meta.csv", b"file,review_id,review_type\none.png,R-9,style\n")
    response = client.post(
        reverse("upload", args=["reviews"]),
        {"files": files(), "metadata_file": sheet, "metadata": '{"uploader": "shop"}'},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<strong>2</strong> added" in body
    assert "<strong>1</strong> refused" in body
    assert "not an image" in body
    one = Item.objects.get(original_name="one.png")
    assert one.metadata == {"uploader": "shop", "review_id": "R-9", "review_type": "style"}
    assert Item.objects.get(original_name="two.jpg").metadata == {"uploader": "shop"}


def test_api_upload_reports_each_file(client, people):
    client.force_login(people["admin"])
    response = client.post(
        reverse("api-items-upload", args=["reviews"]),
        {"files": files(), "metadata": json.dumps({"one.png": {"review_type": "product"}})},
    )
    assert response.status_code == 201
    data = response.json()
    assert (data["created"], data["duplicate"], data["rejected"]) == (2, 0, 1)
    assert [r["outcome"] for r in data["results"]] == ["created", "created", "rejected"]
    assert Item.objects.get(original_name="one.png").metadata == {"review_type": "product"}


def test_api_upload_refusals(client, people):
    client.force_login(people["inspector"])
    url = reverse("api-items-upload", args=["reviews"])
    assert client.post(url, {"files": files()}).status_code == 403
    client.force_login(people["outsider"])
    assert client.post(url, {"files": files()}).status_code == 404
    client.force_login(people["admin"])
    response = client.post(url, {})
    assert response.status_code == 400
    assert "files" in response.json()["detail"]
    response = client.post(url, {"files": files(), "metadata": "{not json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    assert not Item.objects.exists()


def test_api_lists_only_member_projects_and_filters_items(client, people):
    client.force_login(people["admin"])
    client.post(reverse("api-items-upload", args=["reviews"]), {"files": files()})
    projects = client.get(reverse("api-projects")).json()["results"]
    assert [p["slug"] for p in projects] == ["reviews"]
    queued = client.get(reverse("api-items", args=["reviews"]), {"status": "queued"}).json()
    assert queued["count"] == 2
    assert (
        client.get(reverse("api-items", args=["reviews"]), {"status": "labeled"}).json()["count"]
        == 0
    )
    client.force_login(people["outsider"])
    assert client.get(reverse("api-items", args=["reviews"])).status_code == 404
    client.logout()
    assert client.get(reverse("api-projects")).status_code in (401, 403)
