"""Shared fixtures: users per role, a small project, and image bytes made on the fly."""

import io
import os

import pytest
from django.contrib.auth import get_user_model
from PIL import Image

from labeling.access import Role, roles_ensure
from labeling.project_setup import member_add, project_create

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse
# ORM calls from the live-server fixtures in that thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    # Real hashing costs ~0.3 s per user on two cores; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"
    settings.EMBEDDING_INDEX_ROOT = tmp_path / "indexes"
    # The embedding step runs the ImageNet backbone on every batch without a model; tests that
    # are about embeddings turn it on (tests/embeddings), the rest stay fast. Real worker
    # processes started by tests run it as production does.
    settings.EMBEDDINGS_ENABLED = False
    # Tasks queued on commit run inline unless a test starts a real worker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from labeling.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def image_bytes(
    fmt: str = "PNG", size=(32, 32), color=(200, 30, 30), mode: str = "RGB", **save
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.fixture
def make_user(db):
    User = get_user_model()

    def make(username: str, role: Role | None = None, password: str = "pw-Secret-123"):
        roles_ensure()
        user = User.objects.create_user(username=username, password=password)
        if role is not None:
            from django.contrib.auth.models import Group

            user.groups.add(Group.objects.get(name=role.value))
        return user

    return make


@pytest.fixture
def project(db):
    return project_create(
        name="Review photos",
        slug="reviews",
        labels=["package", "product", "full_body", "half_body"],
        min_answers=2,
        max_answers=4,
        credit_rules={"product": "product", "style": "full_body"},
        # Routing tests expect every image to follow its confidence; the calibration share's
        # own tests set it.
        calibration_share=0.0,
    )


@pytest.fixture
def people(project, make_user):
    """One user per role in ``project``, plus an outsider who is an admin elsewhere."""
    admin = make_user("alice-admin", Role.ADMIN)
    inspector = make_user("ivan-inspector", Role.INSPECTOR)
    manager = make_user("mona-manager", Role.MANAGER)
    outsider = make_user("olga-outsider", Role.ADMIN)
    for user in (admin, inspector, manager):
        member_add(project=project, user=user)
    other = project_create(name="Other shop", slug="other-shop", labels=["a", "b"])
    member_add(project=other, user=outsider)
    return {"admin": admin, "inspector": inspector, "manager": manager, "outsider": outsider}


@pytest.fixture
def people_for(make_user):
    """An inspector who is a member of the given project."""

    def make(project, username: str = "insp"):
        user = make_user(username, Role.INSPECTOR)
        member_add(project=project, user=user)
        return user

    return make
