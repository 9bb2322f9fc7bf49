from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.manifests import manifest_import
from labeling.models import Project


class Command(BaseCommand):
    help = "Import a Ground Truth augmented manifest (labels become 'imported' final labels)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("manifest")
        parser.add_argument("--images", help="folder holding the images the source-refs name")

    def handle(self, *args, project: str, manifest: str, images: str | None, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        path = Path(manifest)
        if not path.is_file():
            raise CommandError(f"{manifest} is not a file.")
        report = manifest_import(
            project=target, content=path.read_bytes(), images_dir=images, file_name=path.name
        )
        for line, error in report.errors:
            self.stderr.write(f"line {line}: {error}")
        self.stdout.write(
            f"{report.created} imported, {report.relabeled} relabeled, "
            f"{report.unchanged} unchanged, {len(report.errors)} lines with errors."
        )
