"""Import a checkpoint trained elsewhere into a project (see labeling.machine.model_import)."""

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.errors import ServiceError
from labeling.machine.model_import import checkpoint_unpack, model_import, model_import_score
from labeling.models import Project


class Command(BaseCommand):
    help = (
        "Import a checkpoint written by ml.training.train (a folder with config.json and model.pt,"
        " or a .zip/.tar.gz of one): check it fits the project, score it on the project's "
        "held-out labels and run the promotion gate (here, or in a worker with --queue)."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("checkpoint", help="checkpoint folder or archive")
        parser.add_argument("--queue", action="store_true", help="score it in a worker")

    def handle(self, *args, project: str, checkpoint: str, queue: bool, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        source = Path(checkpoint)
        if not source.exists():
            raise CommandError(f"No such file or folder: {checkpoint}")
        with tempfile.TemporaryDirectory() as unpacked:
            try:
                folder = source
                if source.is_file():
                    folder = checkpoint_unpack(source.read_bytes(), Path(unpacked))
                model = model_import(project=target, checkpoint_dir=folder, queue=queue)
            except ServiceError as exc:
                raise CommandError(exc.message) from exc
        if queue:
            self.stdout.write(f"Imported {target.slug} v{model.version}; a worker scores it.")
            return
        with tqdm(desc=f"scoring v{model.version}", unit="image", disable=None) as bar:

            def show(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            model = model_import_score(model_version_id=model.pk, progress=show)
        if model.status == "failed":
            raise CommandError(model.status_reason)
        metrics = model.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"v{model.version} {model.status}: accuracy {metrics.get('accuracy', 0):.3f} on "
                f"{metrics.get('heldout_items')} held-out labels ({metrics.get('heldout_source')}),"
                f" auto-labels {metrics.get('coverage_at_target', 0):.1%} at "
                f"{target.target_precision:.0%}. {model.status_reason}"
            )
        )
