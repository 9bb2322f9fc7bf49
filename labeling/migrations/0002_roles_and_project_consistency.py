"""Role groups, and composite foreign keys so no row can pair one project's item with another
project's label. Django has no composite foreign keys, so they are added in SQL; SQLite cannot
add constraints to an existing table, so the embedded demo relies on the services' checks."""

from django.db import migrations

ROLES = ("inspector", "admin", "manager")

# (table, constraint name, local columns, referenced table)
COMPOSITE_FKS = [
    ("labeling_item", "item_label_same_project", "project_id, final_label_id", "labeling_label"),
    ("labeling_annotation", "annotation_item_same_project", "project_id, item_id", "labeling_item"),
    ("labeling_annotation", "annotation_label_same_project", "project_id, label_id", "labeling_label"),
    ("labeling_assignment", "assignment_item_same_project", "project_id, item_id", "labeling_item"),
    ("labeling_golditem", "gold_item_same_project", "project_id, item_id", "labeling_item"),
    ("labeling_golditem", "gold_label_same_project", "project_id, label_id", "labeling_label"),
]


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


def add_composite_fks(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, columns, target in COMPOSITE_FKS:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) "
            f"REFERENCES {target} (project_id, id) DEFERRABLE INITIALLY DEFERRED"
        )


def drop_composite_fks(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, _columns, _target in COMPOSITE_FKS:
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_roles, drop_roles),
        migrations.RunPython(add_composite_fks, drop_composite_fks),
    ]
