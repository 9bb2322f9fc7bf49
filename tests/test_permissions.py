"""Every URL, every kind of visitor: a table-driven check of roles and membership.

Each named URL must have a row here; a new URL without one fails ``test_every_url_has_a_rule``.
Rows say which method to try and which roles may use it; a URL with several methods has a row
per method (``name@method``). Outsiders (members of another project) must get 404 on anything
project-scoped, so they cannot learn a project exists; anonymous visitors go to the login page
(pages) or get 401/403 (API). Project creation is not project-scoped: site admins (the ``admin``
group: here the project's admin and the outsider, an admin elsewhere) may, everyone else gets 403.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labeling.access import Role
from labeling.embeddings.catalog import catalog_upload
from labeling.ingest import Upload, item_ingest
from labeling.machine.training import training_start
from labeling.manifests import manifest_export
from labeling.models import LabelReview, Prototype, ReuseMatch
from labeling.project_setup import member_add
from tests.conftest import image_bytes
from tests.machine.fixtures import add_colours

pytestmark = pytest.mark.django_db

A, INSP, M = "admin", "inspector", "manager"
PAGE, API = "page", "api"
SITE_ADMINS = "site-admins"
SIGNED_IN = "signed-in"
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
    "thresholds-resume-shift": (PAGE, "post", {A}, {}),
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
    "api-thresholds-resume": (API, "post", {A}, {}),
    "api-models": (API, "get", {A, M}, {}),
    "api-models-train": (API, "post", {A}, {}),
    "api-models-rollback": (API, "post", {A}, {}),
    "api-models-import": (API, "post", {A}, {}),
    "api-model": (API, "get", {A, M}, {"version": "version"}),
    "api-model-promote": (API, "post", {A}, {"version": "version"}),
    "api-report-costs": (API, "get", {A, M}, {}),
    "api-credits": (API, "get", {A, M}, {}),
    # Setting up projects and people (labeling.project_setup, labeling.members).
    "project-new": (PAGE, "get", SITE_ADMINS, {}),
    "project-new@post": (PAGE, "post", SITE_ADMINS, {}),
    "project-settings": (PAGE, "get", {A}, {}),
    "project-settings@post": (PAGE, "post", {A}, {}),
    "project-archive": (PAGE, "post", {A}, {}),
    "project-restore": (PAGE, "post", {A}, {}),
    "members": (PAGE, "get", {A}, {}),
    "members@post": (PAGE, "post", {A}, {}),
    "member-role": (PAGE, "post", {A}, {"user_id": "member"}),
    "member-remove": (PAGE, "post", {A}, {"user_id": "member"}),
    "answers": (PAGE, "get", {A, M}, {}),
    "password-change": (PAGE, "get", SIGNED_IN, {}),
    "api-projects@post": (API, "post", SITE_ADMINS, {}),
    "api-project@patch": (API, "patch", {A}, {}),
    "api-project-archive": (API, "post", {A}, {}),
    "api-project-restore": (API, "post", {A}, {}),
    "api-members": (API, "get", {A}, {}),
    "api-members@post": (API, "post", {A}, {}),
    "api-member": (API, "patch", {A}, {"user_id": "member"}),
    "api-member@delete": (API, "delete", {A}, {"user_id": "member"}),
    "api-answers": (API, "get", {A, M}, {}),
    # Embeddings: similar images, reused photos and the catalog, prototypes, rechecks.
    "similar": (PAGE, "get", {A}, {"pk": "item"}),
    "reuse": (PAGE, "get", {A}, {}),
    "reuse-decide": (PAGE, "post", {A}, {"item_id": "item"}),
    "reuse-policy": (PAGE, "post", {A}, {}),
    "catalog": (PAGE, "get", {A}, {}),
    "catalog-delete": (PAGE, "post", {A}, {"pk": "catalog"}),
    "catalog-image": (PAGE, "get", {A, M}, {"pk": "catalog"}),
    "catalog-thumbnail": (PAGE, "get", {A, M}, {"pk": "catalog"}),
    "prototypes": (PAGE, "get", {A}, {}),
    "recheck": (PAGE, "get", {A}, {}),
    "recheck-decide": (PAGE, "post", {A}, {"pk": "review"}),
    "api-item-similar": (API, "get", {A, M}, {"pk": "item"}),
    "api-item-reuse": (API, "get", {A, M}, {"pk": "item"}),
    "api-reuse": (API, "get", {A, M}, {}),
    "api-reuse-policy": (API, "get", {A, M}, {}),
    "api-catalog": (API, "get", {A, M}, {}),
    "api-catalog-photo": (API, "delete", {A}, {"pk": "catalog"}),
    "api-prototypes": (API, "get", {A, M}, {}),
    "api-prototype": (API, "get", {A, M}, {"pk": "prototype"}),
    "api-rechecks": (API, "get", {A, M}, {}),
    "api-rechecks-run": (API, "post", {A}, {}),
    "api-recheck-decide": (API, "post", {A}, {"pk": "review"}),
    "api-embeddings": (API, "get", {A, M}, {}),
}
# Not project-scoped; covered by their own tests (login throttling, schema validation, the
# one-time set-password link in tests/inspector/test_members_page.py).
UNSCOPED = {"login", "logout", "api-schema", "api-docs", "password-set"}
NOT_PROJECT_SCOPED = {"home", "api-projects", "project-new", "password-change"}
# What an allowed visitor may get: success, a redirect with a message, or a refusal that is
# about the request's content rather than who sent it.
ALLOWED_STATUSES = {200, 201, 202, 204, 302, 400, 409, 415}


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


def url_name(rule: str) -> str:
    return rule.split("@")[0]


def test_every_url_has_a_rule():
    missing = url_names() - {url_name(rule) for rule in RULES} - UNSCOPED
    assert not missing, (
        f"URLs without an access rule in tests/test_permissions.py: {sorted(missing)}"
    )


@pytest.fixture
def objects(project, people, make_user):
    item = item_ingest(project=project, uploads=[Upload("a.png", image_bytes())]).created_ids[0]
    manifest = manifest_export(project=project)
    # A model version through the service: 20 human labels, then a training (queued, not run).
    add_colours(project, 20)
    model = training_start(project=project, queue=False)
    # A member none of the callers is, so removing them does not change who the callers are.
    member = make_user("tom-target", Role.INSPECTOR)
    member_add(project=project, user=member)
    catalog = catalog_upload(project=project, uploads=[Upload("c.png", image_bytes(size=(40, 40)))])
    catalog_id = catalog.created_ids[0]
    ReuseMatch.objects.create(
        project=project,
        item_id=item,
        matched_catalog_id=catalog_id,
        similarity=0.99,
        hash_distance=0,
        matched_by="hash",
    )
    labels = list(project.labels.all())
    review = LabelReview.objects.create(
        project=project,
        item_id=item,
        given_label=labels[0],
        suggested_label=labels[1],
        model_version=model,
        given_probability=0.01,
        suggested_probability=0.98,
    )
    prototype = Prototype.objects.create(project=project, label=labels[3])
    return {
        "item": item,
        "manifest": manifest.pk,
        "version": model.version,
        "member": member.pk,
        "catalog": catalog_id,
        "review": review.pk,
        "prototype": prototype.pk,
    }


def url_for(rule: str, objects: dict) -> str:
    kind, method, roles, extra = RULES[rule]
    kwargs = {key: objects[value] for key, value in extra.items()}
    if url_name(rule) in NOT_PROJECT_SCOPED:
        return reverse(url_name(rule))
    return reverse(url_name(rule), kwargs={"slug": "reviews", **kwargs})


def call(client: Client, rule: str, url: str):
    kind, method, _, _ = RULES[rule]
    if method == "get":
        return client.get(url)
    if kind == API:
        return getattr(client, method)(url, {}, content_type="application/json")
    return client.post(url)


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
        elif roles == SIGNED_IN:
            assert code == 200, (name, who, code)
        elif roles == SITE_ADMINS:
            expected = ALLOWED_STATUSES if who in ("admin", "outsider") else {403}
            assert code in expected, (name, who, code, response.content[:300])
        elif who == "outsider":
            assert code == 404, (name, who, code)
        elif who in roles:
            assert code in ALLOWED_STATUSES, (name, who, code, response.content[:300])
        else:
            assert code == 403, (name, who, code)


@pytest.mark.parametrize(
    "name", sorted(n for n, r in RULES.items() if r[0] == PAGE and r[1] == "get" and "@" not in n)
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
