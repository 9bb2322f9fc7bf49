from django.core.management.base import BaseCommand, CommandError

from labeling.machine.predict import project_repredict
from labeling.models import Project


class Command(BaseCommand):
    help = "Queue prediction of a project's new and untouched queued items with its active model."

    def add_arguments(self, parser):
        parser.add_argument("project")

    def handle(self, *args, project: str, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        if target.active_model is None:
            self.stdout.write("The project has no active model; items stay with humans.")
        count = project_repredict(project=target)
        self.stdout.write(f"Queued {count} items for prediction.")
