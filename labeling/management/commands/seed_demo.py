from django.core.management.base import BaseCommand
from tqdm import tqdm

from labeling.demo import DEMO_USERS, demo_seed


class Command(BaseCommand):
    help = "Create the demo users (one per role) and the Fashion-MNIST demo project."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=1000, help="images in the demo project")
        parser.add_argument(
            "--data-root", default=None, help="folder with Fashion-MNIST idx.gz files"
        )
        parser.add_argument("--gold-share", type=float, default=0.05)

    def handle(self, *args, images: int, data_root: str | None, gold_share: float, **options):
        with tqdm(total=images, desc="Demo images", unit="img", disable=None) as bar:
            result = demo_seed(
                images=images, data_root=data_root, gold_share=gold_share, progress=bar.update
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
        if result.data_missing:
            self.stdout.write(
                self.style.WARNING(
                    "Fashion-MNIST is not installed, so the demo project is empty. Install it with "
                    "`sudo apt-get install dataset-fashion-mnist`, or import a folder of images:\n"
                    f"  python manage.py import_images {result.project.slug} /path/to/images "
                    "[--metadata metadata.csv]"
                )
            )
        else:
            self.stdout.write(
                f"Project '{result.project.slug}': {result.project.items.count()} images "
                f"({result.created} added now, {result.gold} of them gold)."
            )
