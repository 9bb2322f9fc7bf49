"""Per-project roles and archived projects.

Until now a member's role came from their Django group and held in every project they belonged
to, so an admin of one project was an admin of each. Each membership now carries its own role,
filled here from the user's groups as they were (admin, then manager, then inspector; a
superuser is admin); a member with no role group becomes an inspector. Going back drops the
column: roles are read from the groups again, which were left as they were.
"""

from django.db import migrations, models

RANK = ("admin", "manager", "inspector")


def roles_from_groups(apps, schema_editor):
    Membership = apps.get_model("labeling", "Membership")
    for membership in Membership.objects.select_related("user").iterator():
        user = membership.user
        names = set(user.groups.values_list("name", flat=True))
        role = "admin" if user.is_superuser else next((r for r in RANK if r in names), "inspector")
        if membership.role != role:
            Membership.objects.filter(pk=membership.pk).update(role=role)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_queue_order_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(
                choices=[("inspector", "Inspector"), ("admin", "Admin"), ("manager", "Manager")],
                default="inspector",
                max_length=10,
            ),
        ),
        migrations.RunPython(roles_from_groups, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["inspector", "admin", "manager"])),
                name="membership_role_valid",
            ),
        ),
    ]
