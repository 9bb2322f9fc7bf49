from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.manifests import manifest_export
from labeling.models import Project


class Command(BaseCommand):
    help = "Snapshot a project's human labels as a Ground Truth augmented manifest (JSON Lines)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("-o", "--output", help="also write the manifest to this file")

    def handle(self, *args, project: str, output: str | None, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        manifest = manifest_export(project=target)
        if output:
            with manifest.file.open("rb") as fh:
                Path(output).write_bytes(fh.read())
        self.stdout.write(f"Manifest {manifest.job_name}: {manifest.line_count} labels.")
