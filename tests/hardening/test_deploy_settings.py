"""Security settings and behaviour: ``check --deploy``, login throttling, CSRF on every form,
images served with a safe content type, and no path traversal through imports or storage."""

import json
import os
import secrets
import subprocess
import sys
import time

import pytest
import requests
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from labeling.ingest import Upload, item_ingest
from labeling.manifests import manifest_import
from labeling.models import Item
from labeling.throttling import login_throttle_reset
from tests.conftest import image_bytes
from tests.worker import ROOT

PASSWORD = "pw-Secret-123"


def production_env(**extra: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    return {
        **env,
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "example.com",
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
        **extra,
    }


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- deployment checks ---------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "strong"])
def test_a_recalibration_strength_that_is_no_number_over_zero_stops_the_start(value):
    result = manage("check", env=production_env(EVIDENCE_RECALIBRATION_STRENGTH=value))

    assert result.returncode != 0
    assert f"EVIDENCE_RECALIBRATION_STRENGTH must be a number ≥ 0, not '{value}'" in result.stderr


def test_production_settings_turn_on_the_secure_defaults():
    code = (
        "import django; django.setup(); from django.conf import settings as s; import json;"
        "print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_CONTENT_TYPE_NOSNIFF,"
        " s.X_FRAME_OPTIONS, s.SESSION_COOKIE_HTTPONLY, s.ALLOWED_HOSTS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == [False, True, True, True, 31536000, True, "DENY", True, ["example.com"]]


# --- login throttling ----------------------------------------------------------------------


@pytest.fixture
def throttle_subjects():
    """User names and addresses a test locks; their counters are forgotten afterwards (the
    cache may be a shared Redis that outlives the test run)."""
    used: list[tuple[str, str]] = []
    yield used
    for username, ip in used:
        login_throttle_reset(username=username, ip=ip)


def login(client: Client, username: str, password: str, ip: str, **headers):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        **headers,
    )


@pytest.mark.django_db
def test_five_failed_logins_lock_the_user_name_with_a_clear_refusal(
    client, make_user, throttle_subjects
):
    make_user("lock-me")
    throttle_subjects.append(("lock-me", "127.0.0.21"))
    throttle_subjects.append(("lock-me", "127.0.0.22"))
    for _ in range(5):
        response = login(client, "lock-me", "wrong", "127.0.0.21")
        assert response.status_code == 200  # the form again, with the usual error

    # Even the right password, even from another address: refused, and told why.
    response = login(client, "LOCK-ME", PASSWORD, "127.0.0.22")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # Anything else that checks a password (the admin login, an API) is refused as well.
    assert authenticate(None, username="lock-me", password=PASSWORD) is None
    admin = client.post(
        reverse("admin:login"),
        {"username": "lock-me", "password": PASSWORD},
        REMOTE_ADDR="127.0.0.22",
        HTTP_ACCEPT="application/json",
    )
    assert admin.status_code == 429
    assert admin.json()["code"] == "login_throttled"


@pytest.mark.django_db
def test_a_good_login_resets_the_count_for_its_user_name(client, make_user, throttle_subjects):
    make_user("typo-prone")
    throttle_subjects.append(("typo-prone", "127.0.0.23"))
    for _ in range(4):
        login(client, "typo-prone", "wrong", "127.0.0.23")
    assert login(client, "typo-prone", PASSWORD, "127.0.0.23").status_code == 302
    client.logout()
    for _ in range(4):
        assert login(client, "typo-prone", "wrong", "127.0.0.23").status_code == 200

    assert login(client, "typo-prone", PASSWORD, "127.0.0.23").status_code == 302


@pytest.mark.django_db
def test_one_address_guessing_many_names_is_locked(client, make_user, settings, throttle_subjects):
    settings.LOGIN_FAILURES_PER_IP = 8
    make_user("bystander")
    names = [f"guess-{i}" for i in range(8)]
    throttle_subjects.extend((name, "127.0.0.24") for name in [*names, "bystander"])
    for name in names:
        assert login(client, name, "wrong", "127.0.0.24").status_code == 200

    assert login(client, "bystander", PASSWORD, "127.0.0.24").status_code == 429
    # The same person from another address is not affected.
    assert login(client, "bystander", PASSWORD, "127.0.0.25").status_code == 302


@pytest.mark.django_db
def test_the_lock_lifts_after_the_lockout(client, make_user, settings, throttle_subjects):
    settings.LOGIN_LOCKOUT_SECONDS = 1
    make_user("patient")
    throttle_subjects.append(("patient", "127.0.0.26"))
    for _ in range(5):
        login(client, "patient", "wrong", "127.0.0.26")
    assert login(client, "patient", PASSWORD, "127.0.0.26").status_code == 429

    time.sleep(1.2)

    assert login(client, "patient", PASSWORD, "127.0.0.26").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_the_lock_holds_across_gunicorn_workers_with_a_redis_cache(
    redis_server, make_user, tmp_path
):
    from tests.hardening.conftest import Gunicorn

    make_user("multi-worker")
    server = Gunicorn(tmp_path / "gunicorn.log", workers=3, CACHE_URL=redis_server.url)
    server.start()
    try:
        statuses = []
        for _ in range(7):
            # A fresh connection each time, so requests spread over the workers.
            with requests.Session() as browser:
                page = browser.get(f"{server.url}/login/", timeout=10)
                token = page.cookies["csrftoken"]
                response = browser.post(
                    f"{server.url}/login/",
                    data={
                        "username": "multi-worker",
                        "password": "wrong",
                        "csrfmiddlewaretoken": token,
                    },
                    headers={"Referer": f"{server.url}/login/"},
                    timeout=10,
                    allow_redirects=False,
                )
                statuses.append(response.status_code)
    finally:
        server.stop()
    assert statuses == [200] * 5 + [429] * 2, server.log()


# --- CSRF ----------------------------------------------------------------------------------


def _routes(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if getattr(entry, "app_name", None) == "admin":
                continue
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str, values: dict[str, str]) -> str | None:
    import re

    path = route
    for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", route):
        value = values.get(name) or values.get(converter or "str")
        if value is None:
            return None
        pattern = f"<{converter}:{name}>" if converter else f"<{name}>"
        path = path.replace(pattern, value)
    return "/" + path.lstrip("^").rstrip("$")


@pytest.mark.django_db
def test_every_form_and_api_post_without_a_csrf_token_is_refused(people, project):
    item_id = item_ingest(project=project, uploads=[Upload("a.png", image_bytes())]).created_ids[0]
    values = {
        "slug": project.slug,
        "pk": str(item_id),
        "item_id": str(item_id),
        "int": "1",
        "str": "x",
        "path": "x",
    }
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["admin"])

    checked, unchecked = [], []
    for route in _routes(get_resolver().url_patterns):
        path = _concrete(route, values)
        if path is None or "(?P" in path:
            unchecked.append(route)
            continue
        response = client.post(path, {"label": "package"})
        checked.append((path, response.status_code))
    assert len(checked) > 20, checked
    allowed = [(path, status) for path, status in checked if status != 403]
    assert allowed == [], f"POST without a CSRF token was not refused: {allowed}"
    # The login form and the admin are protected too.
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post(reverse("login"), {"username": "x", "password": "y"}).status_code == 403
    assert client.post(reverse("admin:logout")).status_code == 403


# --- images are served safely --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")],
)
def test_images_are_served_with_their_checked_type_and_nosniff(
    client, people, project, fmt, content_type
):
    [item_id] = item_ingest(
        project=project, uploads=[Upload("x.bin.html", image_bytes(fmt))]
    ).created_ids
    client.force_login(people["inspector"])

    for name, expected in (("item-image", content_type), ("item-thumbnail", "image/jpeg")):
        response = client.get(reverse(name, args=[project.slug, item_id]))
        assert response.status_code == 200
        assert response["Content-Type"] == expected
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
        assert "html" not in response.get("Content-Disposition", "")
    client.force_login(people["outsider"])
    assert client.get(reverse("item-image", args=[project.slug, item_id])).status_code == 404


# --- no path traversal ---------------------------------------------------------------------


def _manifest_line(ref: str) -> str:
    return json.dumps(
        {
            "source-ref": ref,
            "category": 0,
            "category-metadata": {"class-name": "package", "confidence": 1.0},
        }
    )


@pytest.mark.django_db
def test_manifest_source_refs_cannot_reach_outside_the_folder_or_storage(
    project, tmp_path, settings
):
    secret = tmp_path / "secret.png"
    secret.write_bytes(image_bytes(color=(1, 2, 3)))
    images = tmp_path / "images"
    images.mkdir()
    (images / "link.png").symlink_to(secret)
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    refs = [
        "../secret.png",
        str(secret),
        f"file://{secret}",
        "s3://bucket/../../secret.png",
        "items/../../secret.png",
        "/etc/passwd",
        "link.png",  # a symlink inside the folder pointing out of it
        "..\\..\\secret.png",
    ]
    content = "\n".join(_manifest_line(ref) for ref in refs).encode()

    report = manifest_import(project=project, content=content, images_dir=images)

    assert report.created == 0
    assert [line for line, _ in report.errors] == list(range(1, len(refs) + 1))
    assert all("not found" in reason for _, reason in report.errors), report.errors
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_import_images_follows_no_symlink_out_of_the_folder(project, tmp_path, settings):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.png").write_bytes(image_bytes(color=(9, 9, 9)))
    folder = tmp_path / "import"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "ok.png").write_bytes(image_bytes(color=(50, 60, 70)))
    (folder / "file-link.png").symlink_to(outside / "private.png")
    (folder / "dir-link").symlink_to(outside, target_is_directory=True)

    call_command("import_images", project.slug, str(folder), stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert list(Item.objects.values_list("original_name", flat=True)) == ["sub/ok.png"]
    stored = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()]
    root = settings.MEDIA_ROOT.resolve()
    assert all(p.resolve().is_relative_to(root) for p in stored)
