"""The REST API around items, predictions, disputes and manifests, and its OpenAPI schema."""

import json

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token

from labeling.answers import item_finalize
from labeling.ingest import Upload, item_ingest
from labeling.models import Item, ItemStatus
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def items(project):
    ids = item_ingest(
        project=project,
        uploads=[Upload(f"{i}.png", image_bytes(color=(i, 80, 80))) for i in range(4)],
    ).created_ids
    labels = list(project.labels.all())
    for i, item_id in enumerate(ids[:2]):
        item_finalize(
            item=Item.objects.get(pk=item_id), label=labels[i], source="consensus", confidence=0.97
        )
    return ids


def test_token_auth_and_item_filters(client, people, items):
    token = Token.objects.create(user=people["manager"])
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    url = reverse("api-items", args=["reviews"])
    assert client.get(url, {"source": "consensus"}, **auth).json()["count"] == 2
    assert client.get(url, {"label": "package"}, **auth).json()["count"] == 1
    assert client.get(url, {"status": "queued"}, **auth).json()["count"] == 2
    assert client.get(url, {"created_after": "2000-01-01"}, **auth).json()["count"] == 4
    assert client.get(url, {"created_after": "yesterday"}, **auth).status_code == 400
    assert client.get(url, HTTP_AUTHORIZATION="Token nope").status_code == 401


def test_inspectors_cannot_read_item_lists_or_predictions(client, people, items):
    client.force_login(people["inspector"])
    assert client.get(reverse("api-items", args=["reviews"])).status_code == 403
    assert (
        client.get(reverse("api-item-predictions", args=["reviews", items[0]])).status_code == 403
    )


def test_resolve_api_refuses_undisputed_items_and_resolves_disputed(client, people, items):
    client.force_login(people["admin"])
    url = reverse("api-item-resolve", args=["reviews", items[3]])
    response = client.post(url, {"label": "product"}, content_type="application/json")
    assert response.status_code == 409
    assert "Only disputed" in response.json()["detail"]
    Item.objects.filter(pk=items[3]).update(status=ItemStatus.DISPUTED)
    response = client.post(url, {"label": "selfie"}, content_type="application/json")
    assert response.status_code == 400 and "not a label" in response.json()["detail"]
    response = client.post(url, {"label": "product"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["final_source"] == "expert"
    client.force_login(people["manager"])
    assert (
        client.post(url, {"label": "product"}, content_type="application/json").status_code == 403
    )


def test_manifest_snapshot_download_and_import(client, people, items):
    client.force_login(people["admin"])
    created = client.post(reverse("api-manifests", args=["reviews"]))
    assert created.status_code == 201 and created.json()["line_count"] == 2
    download = client.get(reverse("api-manifest-download", args=["reviews", created.json()["id"]]))
    body = b"".join(download.streaming_content).decode()
    lines = [json.loads(line) for line in body.splitlines()]
    assert (
        len(lines) == 2
        and lines[0]["category-metadata"]["type"] == "groundtruth/image-classification"
    )

    bad = body + "{broken\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        reverse("api-manifests-import", args=["reviews"]),
        {"file": SimpleUploadedFile("labels.manifest", bad.encode())},
    )
    assert response.status_code == 200  # both labels were already there
    report = response.json()
    assert report["unchanged"] == 2
    assert report["errors"] == [{"line": 3, "error": report["errors"][0]["error"]}]
    assert "not valid JSON" in report["errors"][0]["error"]
    client.force_login(people["manager"])
    assert client.get(reverse("api-manifests", args=["reviews"])).json()["count"] == 2
    assert client.post(reverse("api-manifests", args=["reviews"])).status_code == 403


def test_openapi_schema_validates_and_docs_page_works_offline(client, people, tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert "/api/projects/{slug}/queue/next/" in schema["paths"]
    assert "/api/projects/{slug}/items/upload/" in schema["paths"]
    client.force_login(people["admin"])
    assert client.get(reverse("api-schema")).status_code == 200
    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content and b"cdn.jsdelivr" not in docs.content


def test_ids_too_large_for_the_database_are_refused_not_a_server_error(client, people, items):
    """Found by the fuzzer: a 21-digit id used to overflow the database's integer (500)."""
    client.force_login(people["admin"])
    huge = 10**20
    renew = client.post(
        reverse("api-queue-renew", args=["reviews"]),
        {"assignments": [1, -huge, huge]},
        content_type="application/json",
    )
    assert renew.status_code == 400
    answer = client.post(
        reverse("api-queue-answer", args=["reviews"]),
        {"assignment": huge, "label": "package"},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert client.get(f"/api/projects/reviews/items/{huge}/").status_code == 404
    assert client.get(f"/p/reviews/items/{huge}/image").status_code == 404
