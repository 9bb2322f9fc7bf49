import json

from django.core.management.base import BaseCommand, CommandError

from labeling.embeddings.build import reuse_calibrate, space_build
from labeling.embeddings.index import index_compact
from labeling.embeddings.label_review import label_review_run
from labeling.embeddings.spaces import photo_space
from labeling.embeddings.state import embedding_state
from labeling.models import EmbeddingSpace, Project, SpaceStatus


class Command(BaseCommand):
    help = (
        "Embeddings of a project: status; build (embed what the active or building space "
        "lacks, then hand over); reindex (rewrite the vector index file from the database); "
        "calibrate (the reused-photo rule on the project's images); review (look for label "
        "errors). Runs in this process: heavy steps load the network."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "build", "reindex", "calibrate", "review"])
        parser.add_argument("project")

    def handle(self, *args, action: str, project: str, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        if action == "status":
            self.stdout.write(json.dumps(embedding_state(project=target), indent=2))
            return
        if action == "review":
            self.stdout.write(json.dumps(label_review_run(project=target)))
            return
        if action == "build":
            spaces = EmbeddingSpace.objects.filter(
                project=target, status__in=(SpaceStatus.BUILDING, SpaceStatus.ACTIVE)
            ).order_by("status")
            for space in spaces:
                built = space_build(space_id=space.pk)
                self.stdout.write(f"{built.name}: {built.status}, {built.progress}")
            return
        if action == "reindex":
            spaces = list(EmbeddingSpace.objects.filter(project=target, status=SpaceStatus.ACTIVE))
            if not spaces:
                raise CommandError("The project has no embedded image yet.")
            for space in spaces:
                self.stdout.write(json.dumps(index_compact(space, rebuild=True)))
        else:
            space = photo_space(target)
            if space is None:
                raise CommandError("The project has no embedded image yet.")
            result = reuse_calibrate(space=space)
            self.stdout.write(json.dumps(result) if result else "Too few images: defaults kept.")
