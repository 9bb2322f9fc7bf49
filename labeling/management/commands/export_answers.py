"""Every raw answer of a project as CSV (see labeling.answer_export): the same rows and filters
as the Answers page and GET /api/projects/<slug>/answers/."""

from django.core.management.base import BaseCommand, CommandError

from labeling.answer_export import STATES, answer_filters_parse, answer_rows, answers_filter
from labeling.csv_export import csv_lines
from labeling.errors import ServiceError
from labeling.models import Project


class Command(BaseCommand):
    help = "Write every raw answer of a project as CSV (to a file, or to standard output)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("-o", "--output", help="file to write (default: standard output)")
        parser.add_argument("--inspector", help="only this inspector's answers (user name)")
        parser.add_argument("--label", help="only answers with this label")
        parser.add_argument("--state", choices=STATES)
        parser.add_argument("--start", help="given on or after this day (YYYY-MM-DD)")
        parser.add_argument("--end", help="given on or before this day (YYYY-MM-DD)")

    def handle(self, *args, project: str, output: str | None, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        params = {
            key: options[key]
            for key in ("inspector", "label", "state", "start", "end")
            if options.get(key)
        }
        try:
            rows = answer_rows(answers_filter(project=target, filters=answer_filters_parse(params)))
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if not output:
            for line in csv_lines(rows):
                self.stdout.write(line, ending="")
            return
        count = -1  # the header is not an answer
        with open(output, "w", newline="", encoding="utf-8") as out:
            for line in csv_lines(rows):
                out.write(line)
                count += 1
        self.stderr.write(f"{count} answers written to {output}")
