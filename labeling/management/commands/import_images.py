from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from labeling.ingest import Upload, item_ingest
from labeling.metadata import MetadataError, metadata_format_for, metadata_table_parse
from labeling.models import Project

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CHUNK = 100


class Command(BaseCommand):
    help = "Import a folder of images into a project (JPEG, PNG, WebP), with optional metadata."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("directory", help="folder to import (searched recursively)")
        parser.add_argument("--metadata", help="CSV or JSON Lines file with a 'file' column")
        parser.add_argument(
            "--all-files",
            action="store_true",
            help="offer every file, not only image suffixes (others are refused with a reason)",
        )

    def handle(
        self, *args, project: str, directory: str, metadata: str | None, all_files: bool, **opts
    ):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        root = Path(directory)
        if not root.is_dir():
            raise CommandError(f"{directory} is not a folder.")
        table = {}
        if metadata:
            try:
                meta_path = Path(metadata)
                table = metadata_table_parse(
                    meta_path.read_text(encoding="utf-8-sig"), metadata_format_for(meta_path.name)
                )
            except (OSError, MetadataError) as exc:
                raise CommandError(f"Metadata: {exc}") from exc

        paths = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and (all_files or p.suffix.lower() in IMAGE_SUFFIXES)
        )
        totals = {"created": 0, "duplicate": 0, "rejected": 0}
        refused = []
        with tqdm(total=len(paths), desc="Importing", unit="img", disable=None) as bar:
            for start in range(0, len(paths), CHUNK):
                chunk = paths[start : start + CHUNK]
                uploads = [
                    Upload(
                        name=str(p.relative_to(root)),
                        content=p.read_bytes(),
                        metadata=table.get(p.name),
                    )
                    for p in chunk
                ]
                # One transaction per chunk: predictions are queued as each chunk commits.
                with transaction.atomic():
                    report = item_ingest(project=target, uploads=uploads)
                for key, value in report.summary().items():
                    totals[key] += value
                refused += [r for r in report.results if r.outcome == "rejected"]
                bar.update(len(chunk))
        for r in refused:
            self.stderr.write(f"refused {r.name}: {r.reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{totals['created']} imported, {totals['duplicate']} duplicates, "
                f"{totals['rejected']} refused."
            )
        )
