"""Members: roles per project and only there, new accounts with a one-time password or link,
and a project that always keeps an admin."""

import pytest
from django.contrib.auth import authenticate
from django.urls import reverse

from labeling.access import Role, has_role, may_create_projects, project_for_user
from labeling.members import (
    MemberChangeRefused,
    MemberInvalid,
    MemberNotFound,
    member_add,
    member_add_existing,
    member_invite,
    member_remove,
    member_role_set,
    site_admin_set,
)
from labeling.models import Annotation, Assignment, AssignmentStatus, Membership
from labeling.project_setup import project_create

pytestmark = pytest.mark.django_db


def test_a_role_holds_in_its_project_only(project, people, make_user):
    other = project_create(name="Other", slug="second", labels=["a", "b"])
    ines = make_user("ines")
    member_add(project=project, user=ines, role=Role.ADMIN)
    member_add(project=other, user=ines, role=Role.INSPECTOR)
    assert has_role(ines, Role.ADMIN, project=project)
    assert not has_role(ines, Role.ADMIN, project=other)
    # Being an admin of a project gives no site role: no new projects.
    assert not may_create_projects(ines)
    with pytest.raises(Exception, match="does not allow"):
        project_for_user(ines, "second", roles=(Role.ADMIN,))


def test_a_new_member_without_a_named_role_gets_their_site_groups_role(project, make_user):
    manager = make_user("mo", Role.MANAGER)
    assert member_add(project=project, user=manager).role == Role.MANAGER
    nobody = make_user("nobody")
    assert member_add(project=project, user=nobody).role == Role.INSPECTOR
    # An existing member keeps their role when none is named.
    member_role_set(project=project, user_id=nobody.pk, role=Role.MANAGER)
    assert member_add(project=project, user=nobody).role == Role.MANAGER


def test_an_existing_user_is_added_by_name_or_email(project, make_user):
    user = make_user("zoe")
    user.email = "Zoe@Example.com"
    user.save()
    membership = member_add_existing(project=project, user="zoe@example.com", role="manager")
    assert membership.user == user and membership.role == "manager"
    with pytest.raises(MemberChangeRefused, match="already a member"):
        member_add_existing(project=project, user="zoe", role="inspector")
    with pytest.raises(MemberNotFound, match="No active user"):
        member_add_existing(project=project, user="nobody-here", role="inspector")
    with pytest.raises(MemberInvalid, match="Role must be one of"):
        member_add_existing(project=project, user="zoe", role="superuser")


def test_a_created_member_logs_in_with_the_password_shown_once(project):
    invitation = member_invite(project=project, username="nina", role="inspector")
    assert len(invitation.password) >= 16 and not invitation.set_password_path
    user = invitation.membership.user
    assert authenticate(username="nina", password=invitation.password) == user
    # Stored only as a hash.
    assert invitation.password not in user.password
    assert not user.is_staff and not user.is_superuser and not user.groups.exists()


def test_a_created_member_can_get_a_set_password_link_instead(project):
    invitation = member_invite(
        project=project, username="omar", email="omar@example.com", role="manager", invite="link"
    )
    assert not invitation.password
    assert invitation.set_password_path.startswith("/password/set/")
    assert not invitation.membership.user.has_usable_password()


@pytest.mark.parametrize(
    ("username", "email", "words"),
    [
        ("", "", "user name needs"),
        ("has space", "", "user name needs"),
        ("alice-admin", "", "is taken"),
        ("ALICE-ADMIN", "", "is taken"),
        ("fine", "not-an-email", "not an e-mail"),
    ],
)
def test_bad_new_members_are_refused(project, people, username, email, words):
    with pytest.raises((MemberInvalid, MemberChangeRefused), match=words):
        member_invite(project=project, username=username, email=email, role="inspector")


def test_the_last_admin_can_be_neither_demoted_nor_removed(project, people):
    admin = people["admin"]
    with pytest.raises(MemberChangeRefused, match="only admin"):
        member_role_set(project=project, user_id=admin.pk, role="inspector")
    with pytest.raises(MemberChangeRefused, match="only admin"):
        member_remove(project=project, user_id=admin.pk)
    member_role_set(project=project, user_id=people["manager"].pk, role="admin")
    member_remove(project=project, user_id=admin.pk)
    assert not Membership.objects.filter(project=project, user=admin).exists()


@pytest.mark.django_db(transaction=True)
def test_removing_a_member_returns_their_images_and_keeps_their_answers(project, people):
    from labeling.answers import annotation_submit
    from labeling.ingest import Upload, item_ingest
    from labeling.queue import assignment_next
    from tests.conftest import image_bytes

    project.gold_rate = 0
    project.save()
    uploads = [Upload(f"{i}.png", image_bytes(color=(i, 9, 9))) for i in range(2)]
    item_ingest(project=project, uploads=uploads)
    inspector = people["inspector"]
    first = assignment_next(project=project, user=inspector)
    annotation_submit(
        project=project,
        assignment_id=first.pk,
        user=inspector,
        label_name="product",
        time_on_task_ms=900,
    )
    held = assignment_next(project=project, user=inspector)

    member_remove(project=project, user_id=inspector.pk)

    assert Annotation.objects.filter(annotator=inspector).count() == 1
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED
    assert not Assignment.objects.filter(annotator=inspector, status="open").exists()
    with pytest.raises(Exception, match="No such project"):
        project_for_user(inspector, project.slug)


def test_site_admins_are_made_by_operators(make_user):
    user = make_user("sam")
    assert not may_create_projects(user)
    site_admin_set(user=user, on=True)
    assert may_create_projects(user)
    site_admin_set(user=user, on=False)
    assert not may_create_projects(user)


def test_the_set_password_link_works_once(client, project):
    invitation = member_invite(project=project, username="pia", role="inspector", invite="link")
    page = client.get(invitation.set_password_path, follow=True)
    assert page.status_code == 200 and b"Choose your password" in page.content
    form_url = page.redirect_chain[-1][0]
    done = client.post(
        form_url, {"new_password1": "Blue-Kettle-42", "new_password2": "Blue-Kettle-42"}
    )
    assert done.status_code == 302 and done["Location"] == reverse("login")
    assert authenticate(username="pia", password="Blue-Kettle-42") is not None
    again = client.get(invitation.set_password_path, follow=True)
    assert b"This link no longer works" in again.content
