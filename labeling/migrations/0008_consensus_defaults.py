"""Trust checks' findings per inspector (AnnotatorSkill.flags) and the stopping rule's new
defaults for new projects (docs/consensus.md has the measurements behind them). Existing
projects keep their settings."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0007_project_admin"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="max_answers",
            field=models.PositiveSmallIntegerField(default=10),
        ),
        migrations.AddField(
            model_name="annotatorskill",
            name="flags",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
