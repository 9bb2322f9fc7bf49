"""The embedded demo: users for each role and a project seeded from Fashion-MNIST."""

import io
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from PIL import Image

from labeling.access import Role
from labeling.answers import gold_item_add
from labeling.ingest import Upload, item_ingest
from labeling.members import site_admin_set
from labeling.models import Item, Project
from labeling.project_setup import LabelSpec, member_add, project_create
from ml import fashion_mnist

DEMO_SLUG = "fashion-demo"
DEMO_USERS = {
    "demo-admin": Role.ADMIN,
    "demo-manager": Role.MANAGER,
    "demo-inspector": Role.INSPECTOR,
    "demo-inspector2": Role.INSPECTOR,
    "demo-inspector3": Role.INSPECTOR,
}
FASHION_LABELS = [
    LabelSpec("t-shirt", "T-shirt/top"),
    LabelSpec("trouser", "Trouser"),
    LabelSpec("pullover", "Pullover"),
    LabelSpec("dress", "Dress"),
    LabelSpec("coat", "Coat"),
    LabelSpec("sandal", "Sandal"),
    LabelSpec("shirt", "Shirt"),
    LabelSpec("sneaker", "Sneaker"),
    LabelSpec("bag", "Bag"),
    LabelSpec("ankle-boot", "Ankle boot"),
]


@dataclass
class DemoResult:
    project: Project
    new_credentials: dict[str, str] = field(default_factory=dict)
    created: int = 0
    gold: int = 0
    data_missing: bool = False


def demo_users_ensure() -> dict[str, str]:
    """Create the demo users that do not exist yet; return {username: password} for those only,
    so credentials are shown once and never stored in clear."""
    User = get_user_model()
    created = {}
    for username, _role in DEMO_USERS.items():
        if User.objects.filter(username=username).exists():
            continue
        password = secrets.token_urlsafe(9)
        User.objects.create_user(username=username, password=password, is_staff=False)
        created[username] = password
    return created


def demo_seed(
    *,
    images: int = 1000,
    gold_share: float = 0.05,
    data_root: str | Path | None = None,
    seed: int = 0,
    progress=None,
) -> DemoResult:
    """Idempotent: users and project are created once; images are added up to ``images``."""
    credentials = demo_users_ensure()
    project = Project.objects.filter(slug=DEMO_SLUG).first()
    if project is None:
        project = project_create(
            name="Fashion-MNIST demo",
            slug=DEMO_SLUG,
            labels=FASHION_LABELS,
            description="Product photos from Fashion-MNIST: label each with its garment type.",
            min_answers=1,
            max_answers=5,
            retrain_every=500,
        )
    User = get_user_model()
    for username, role in DEMO_USERS.items():
        user = User.objects.get(username=username)
        member_add(project=project, user=user, role=role)
        if role == Role.ADMIN:
            site_admin_set(user=user, on=True)  # may create projects of their own
    result = DemoResult(project=project, new_credentials=credentials)

    root = Path(data_root) if data_root else fashion_mnist.DEFAULT_ROOT
    try:
        pixels, truth = fashion_mnist.load_split("train", root)
    except FileNotFoundError:
        result.data_missing = True
        return result

    have = project.items.count()
    wanted = max(0, images - have)
    if not wanted:
        return result
    # The source index goes into metadata so benchmarks can look up the truth; the label
    # itself is never stored where an inspector could see it.
    indices = fashion_mnist.stratified_subset(truth, min(images, len(truth)), seed=seed)[have:]
    labels = list(project.labels.all())
    rng = random.Random(seed)
    for start in range(0, len(indices), 200):
        chunk = indices[start : start + 200]
        uploads = []
        for index in chunk:
            buffer = io.BytesIO()
            Image.fromarray(pixels[index]).save(buffer, "PNG")
            uploads.append(
                Upload(
                    name=f"fmnist-{int(index):05d}.png",
                    content=buffer.getvalue(),
                    metadata={"source": "fashion-mnist", "fmnist_index": int(index)},
                )
            )
        with transaction.atomic():
            report = item_ingest(project=project, uploads=uploads)
            for upload_result, index in zip(report.results, chunk, strict=True):
                if upload_result.outcome != "created":
                    continue
                result.created += 1
                if rng.random() < gold_share:
                    gold_item_add(
                        item=Item.objects.get(pk=upload_result.item_id),
                        label=labels[int(truth[index])],
                    )
                    result.gold += 1
        if progress:
            progress(len(chunk))
    return result
