import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # Exits non-zero (SystemExit) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_per_project_roles_are_filled_from_the_old_groups():
    """0007 gives each membership the role its user's groups gave everywhere before."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("labeling", "0006_queue_order_index")], [("labeling", "0007_project_admin")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    User, Group = apps.get_model("auth", "User"), apps.get_model("auth", "Group")
    Project, Membership = (
        apps.get_model("labeling", "Project"),
        apps.get_model("labeling", "Membership"),
    )
    project = Project.objects.create(name="Old", slug="old")
    expected = {}
    for name, groups, superuser, role in [
        ("boss", ["admin", "manager"], False, "admin"),
        ("counter", ["manager"], False, "manager"),
        ("labeler", ["inspector"], False, "inspector"),
        ("nobody", [], False, "inspector"),
        ("root", [], True, "admin"),
    ]:
        user = User.objects.create(username=name, is_superuser=superuser)
        for group in groups:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
        Membership.objects.create(project=project, user=user)
        expected[name] = role

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    Membership = apps.get_model("labeling", "Membership")
    roles = dict(Membership.objects.values_list("user__username", "role"))
    assert roles == expected

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
