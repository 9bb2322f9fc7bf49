"""Every URL, every kind of visitor: a table-driven check of roles and membership.

Each named URL must have a row here; a new URL without one fails ``test_every_url_has_a_rule``.
Rows say which method to try and which roles may use it. Outsiders (members of another project)
must get 404 on anything project-scoped, so they cannot learn a project exists; anonymous
visitors go to the login page (pages) or get 401/403 (API).
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labeling.ingest import Upload, item_ingest
from labeling.manifests import manifest_export
from labeling.models import ModelVersion
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db

A, INSP, M = "admin", "inspector", "manager"
PAGE, API = "page", "api"
# name: (kind, method, roles allowed, extra kwargs besides slug)
RULES = {
    "home": (PAGE, "get", "public-members", {}),
    "project": (PAGE, "get", {A, INSP, M}, {}),
    "upload": (PAGE, "get", {A}, {}),
    "item-image": (PAGE, "get", {A, INSP, M}, {"pk": "item"}),
    "item-thumbnail": (PAGE, "get", {A, INSP, M}, {"pk": "item"}),
    "inspect": (PAGE, "get", {A, INSP}, {}),
    "disputed": (PAGE, "get", {A}, {}),
    "disputed-resolve": (PAGE, "post", {A}, {"item_id": "item"}),
    "inspectors": (PAGE, "get", {A}, {}),
    "thresholds": (PAGE, "get", {A}, {}),
    "thresholds-resume": (PAGE, "post", {A}, {}),
    "models": (PAGE, "get", {A}, {}),
    "models-train": (PAGE, "post", {A}, {}),
    "models-rollback": (PAGE, "post", {A}, {}),
    "models-promote": (PAGE, "post", {A}, {"version": "version"}),
    "models-import": (PAGE, "post", {A}, {}),
    "costs": (PAGE, "get", {A, M}, {}),
    "credits": (PAGE, "get", {A, M}, {}),
    "api-projects": (API, "get", "public-members", {}),
    "api-project": (API, "get", {A, INSP, M}, {}),
    "api-items": (API, "get", {A, M}, {}),
    "api-items-upload": (API, "post", {A}, {}),
    "api-item": (API, "get", {A, M}, {"pk": "item"}),
    "api-item-predictions": (API, "get", {A, M}, {"pk": "item"}),
    "api-item-resolve": (API, "post", {A}, {"pk": "item"}),
    "api-manifests": (API, "get", {A, M}, {}),
    "api-manifests-import": (API, "post", {A}, {}),
    "api-manifest-download": (API, "get", {A, M}, {"pk": "manifest"}),
    "api-queue-next": (API, "post", {A, INSP}, {}),
    "api-queue-leases": (API, "get", {A, INSP}, {}),
    "api-queue-answer": (API, "post", {A, INSP}, {}),
    "api-queue-skip": (API, "post", {A, INSP}, {}),
    "api-queue-undo": (API, "post", {A, INSP}, {}),
    "api-queue-renew": (API, "post", {A, INSP}, {}),
    "api-queue-me": (API, "get", {A, INSP}, {}),
    "api-thresholds": (API, "get", {A, M}, {}),
    "api-thresholds-preview": (API, "post", {A}, {}),
    "api-models": (API, "get", {A, M}, {}),
    "api-models-train": (API, "post", {A}, {}),
    "api-models-rollback": (API, "post", {A}, {}),
    "api-models-import": (API, "post", {A}, {}),
    "api-model": (API, "get", {A, M}, {"version": "version"}),
    "api-model-promote": (API, "post", {A}, {"version": "version"}),
    "api-report-costs": (API, "get", {A, M}, {}),
    "api-credits": (API, "get", {A, M}, {}),
}
# Not project-scoped; covered by their own tests (login throttling, schema validation).
UNSCOPED = {"login", "logout", "api-schema", "api-docs"}
# What an allowed visitor may get: success, a redirect with a message, or a refusal that is
# about the request's content rather than who sent it.
ALLOWED_STATUSES = {200, 201, 204, 302, 400, 409, 415}


def url_names() -> set[str]:
    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith("admin/"):
                    continue  # Django's own admin site has its own staff checks
                yield from walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                yield p.name

    return set(walk(get_resolver().url_patterns))


def test_every_url_has_a_rule():
    missing = url_names() - set(RULES) - UNSCOPED
    assert not missing, (
        f"URLs without an access rule in tests/test_permissions.py: {sorted(missing)}"
    )


@pytest.fixture
def objects(project, people):
    item = item_ingest(project=project, uploads=[Upload("a.png", image_bytes())]).created_ids[0]
    manifest = manifest_export(project=project)
    ModelVersion.objects.create(project=project, version=1, status=ModelVersion.Status.READY)
    return {"item": item, "manifest": manifest.pk, "version": 1}


def url_for(name: str, objects: dict) -> str:
    kind, method, roles, extra = RULES[name]
    kwargs = {key: objects[value] for key, value in extra.items()}
    if name in ("home", "api-projects"):
        return reverse(name)
    return reverse(name, kwargs={"slug": "reviews", **kwargs})


def call(client: Client, name: str, url: str):
    kind, method, _, _ = RULES[name]
    if method == "get":
        return client.get(url)
    return (
        client.post(url, {}, content_type="application/json") if kind == API else client.post(url)
    )


@pytest.mark.parametrize("name", sorted(RULES))
def test_access_rule(name, people, objects):
    kind, method, roles, _ = RULES[name]
    url = url_for(name, objects)

    anonymous = call(Client(), name, url)
    if kind == PAGE:
        assert anonymous.status_code == 302 and "/login/" in anonymous["Location"], name
    else:
        assert anonymous.status_code in (401, 403), name

    for who in ("admin", "inspector", "manager", "outsider"):
        client = Client()
        client.force_login(people[who])
        response = call(client, name, url)
        code = response.status_code
        if roles == "public-members":
            assert code == 200, (name, who, code)
            if who == "outsider":
                assert b"reviews" not in response.content, name  # they see only their projects
        elif who == "outsider":
            assert code == 404, (name, who, code)
        elif who in roles:
            assert code in ALLOWED_STATUSES, (name, who, code, response.content[:300])
        else:
            assert code == 403, (name, who, code)


@pytest.mark.parametrize(
    "name", sorted(n for n, r in RULES.items() if r[0] == PAGE and r[1] == "get")
)
def test_pages_refuse_the_wrong_method(name, people, objects):
    client = Client()
    client.force_login(people["admin"])
    assert client.delete(url_for(name, objects)).status_code == 405


def test_forms_need_a_csrf_token(people, objects):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["admin"])
    assert client.post(url_for("models-train", objects)).status_code == 403
    assert client.post(url_for("upload", objects)).status_code == 403
