from django.core.management.base import BaseCommand
from tqdm import tqdm

from labeling.demo import DEMO_USERS, demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo users (one per role) and the Fashion-MNIST demo project: images waiting "
        "for labels, a labeled history imported as a Ground Truth manifest, and its first model "
        "queued to the worker."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--images", type=int, default=1000, help="images waiting for labels (default 1000)"
        )
        parser.add_argument(
            "--history",
            type=int,
            default=5000,
            help="labeled images imported as the project's history (default 5000; 0: none)",
        )
        parser.add_argument(
            "--no-train",
            action="store_true",
            help="do not queue the first model's training (it starts when the worker runs)",
        )
        parser.add_argument(
            "--data-root", default=None, help="folder with Fashion-MNIST idx.gz files"
        )
        parser.add_argument("--gold-share", type=float, default=0.05)

    def handle(
        self,
        *args,
        images: int,
        history: int,
        no_train: bool,
        data_root: str | None,
        gold_share: float,
        **options,
    ):
        with (
            tqdm(total=images, desc="Demo images", unit="img", disable=None) as bar,
            tqdm(total=history, desc="Labeled history", unit="img", disable=None) as history_bar,
        ):
            result = demo_seed(
                images=images,
                history=history,
                data_root=data_root,
                gold_share=gold_share,
                train=not no_train,
                progress=bar.update,
                history_progress=history_bar.update,
            )
        if result.new_credentials:
            self.stdout.write(self.style.SUCCESS("Demo users (shown once; store them now):"))
            for username, password in result.new_credentials.items():
                role = DEMO_USERS[username].value
                self.stdout.write(f"  {role:<10} {username:<18} password: {password}")
        else:
            self.stdout.write(
                "Demo users already exist (reset a password with `manage.py changepassword`)."
            )
        project = result.project
        if result.data_missing:
            self.stdout.write(
                self.style.WARNING(
                    "Fashion-MNIST is not installed, so the demo project is empty. Install it with "
                    "`sudo apt-get install dataset-fashion-mnist`, or import a folder of images:\n"
                    f"  python manage.py import_images {project.slug} /path/to/images "
                    "[--metadata metadata.csv]"
                )
            )
            return
        imported = project.items.filter(final_source="imported").count()
        self.stdout.write(
            f"Project '{project.slug}': {project.items.count()} images: "
            f"{project.items.filter(metadata__source='fashion-mnist').count()} waiting for labels "
            f"({result.created} added now, {result.gold} of them gold) and {imported} with "
            f"imported labels ({result.history_imported} added now)."
        )
        for line_no, error in result.history_errors[:5]:
            self.stdout.write(self.style.WARNING(f"  history line {line_no}: {error}"))
        if result.first_model is not None:
            self.stdout.write(
                f"First model v{result.first_model.version} queued: the worker trains it from "
                "the imported labels in the background (a few minutes on two cores), then "
                "auto-labels the images it is sure of. Watch it on the Models page."
            )
        elif result.training_refused:
            self.stdout.write(f"No first model yet: {result.training_refused}")
