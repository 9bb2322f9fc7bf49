"""The embedded demo: users for each role and a project seeded from Fashion-MNIST, with a
labeled history imported as a Ground Truth manifest and a first model trained from it in the
background, so the machine is at work within minutes of the first start."""

import io
import json
import random
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from PIL import Image

from labeling.access import Role
from labeling.answers import gold_item_add
from labeling.ingest import Upload, item_ingest
from labeling.machine.training import TrainingRefused, training_start
from labeling.manifests import GT_TYPE, ImportReport, manifest_import
from labeling.members import site_admin_set
from labeling.models import Item, ItemSource, ModelVersion, Project
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


# The demo's first model, trained in the background by the worker on the imported history.
# One learning rate and six epochs instead of the default search: on 5,000 labels it finishes in
# a few minutes on two cores (README, "The demo") and is the model the newcomer sees at work.
DEMO_TRAINING = {
    "trainable_blocks": [8],
    "epochs": [6],
    "learning_rates": [0.004],
    "time_budget_s": 420,
}
HISTORY_JOB = "fashion-mnist-history"


@dataclass
class DemoResult:
    project: Project
    new_credentials: dict[str, str] = field(default_factory=dict)
    created: int = 0
    gold: int = 0
    history_imported: int = 0
    history_errors: list[tuple[int, str]] = field(default_factory=list)
    first_model: ModelVersion | None = None
    training_refused: str = ""
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


def demo_pools(truth: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the training split: the labeled history comes from the first,
    the images waiting for labels from the second, so no demo image is one the model trained
    on, and sizes can grow between runs without the two sets meeting."""
    order = np.random.default_rng(seed).permutation(len(truth))
    half = len(order) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def fashion_history_import(
    *,
    project: Project,
    pixels: np.ndarray,
    truth: np.ndarray,
    indices: np.ndarray,
    job_name: str = HISTORY_JOB,
    progress=None,
) -> ImportReport:
    """Import Fashion-MNIST images with their true labels the way a shop brings its labeled
    history: as a SageMaker Ground Truth augmented manifest plus a folder of images, through
    ``labeling.manifests.manifest_import`` (items labeled with source ``imported``)."""
    labels = list(project.labels.all())
    created = timezone.now().astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    lines = []
    with tempfile.TemporaryDirectory(prefix="demo-history-") as folder:
        for index in indices:
            name = f"fmnist-{int(index):05d}.png"
            (Path(folder) / name).write_bytes(_png(pixels[index]))
            label = labels[int(truth[index])]
            lines.append(
                {
                    "source-ref": f"s3://fashion-mnist/train/{name}",
                    "category": label.position,
                    "category-metadata": {
                        "class-name": label.name,
                        "confidence": 1.0,
                        "human-annotated": "yes",
                        "creation-date": created,
                        "type": GT_TYPE,
                        "job-name": job_name,
                    },
                }
            )
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return manifest_import(
            project=project,
            content=content,
            images_dir=folder,
            file_name=f"{job_name}.manifest",
            progress=progress,
        )


def demo_seed(
    *,
    images: int = 1000,
    history: int = 5000,
    gold_share: float = 0.05,
    train: bool = True,
    data_root: str | Path | None = None,
    seed: int = 0,
    progress=None,
    history_progress=None,
) -> DemoResult:
    """Idempotent: users and project are created once; images and the labeled history are
    added up to ``images`` and ``history``; the project's first model is queued (to the
    worker) once, when it has none.

    ``images`` wait for labels (a ``gold_share`` of them are seeded gold answers); ``history``
    are labels imported as a Ground Truth manifest, from which the first model trains in the
    background (``DEMO_TRAINING``), so a newcomer sees images auto-labeled within minutes."""
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
            # 95 %, not the default 98 %: proving 98 % per class takes about 150 held-out
            # images of it with no error, more than a first model's held-out share has.
            target_precision=0.95,
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
    history_pool, image_pool = demo_pools(truth, seed=seed)

    _seed_images(project, pixels, truth, image_pool, images, gold_share, seed, result, progress)

    have = project.items.filter(final_source=ItemSource.IMPORTED).count()
    if history > have:
        chosen = history_pool[
            fashion_mnist.stratified_subset(
                truth[history_pool], min(history, len(history_pool)), seed=seed
            )
        ]
        report = fashion_history_import(
            project=project, pixels=pixels, truth=truth, indices=chosen, progress=history_progress
        )
        result.history_imported = report.created + report.relabeled
        result.history_errors = report.errors

    if train and not ModelVersion.objects.filter(project=project).exists():
        try:
            result.first_model = training_start(
                project=project,
                reason="demo: first model from the imported history",
                overrides=DEMO_TRAINING,
            )
        except TrainingRefused as exc:
            result.training_refused = exc.message
    return result


def _seed_images(project, pixels, truth, pool, images, gold_share, seed, result, progress):
    """Add unlabeled images from ``pool`` up to ``images``; a ``gold_share`` of the new ones
    become seeded gold answers (known answers that measure inspectors)."""
    waiting = project.items.filter(metadata__source="fashion-mnist")
    wanted = max(0, images - waiting.count())
    if not wanted:
        return
    # The source index goes into metadata so benchmarks can look up the truth; the label
    # itself is never stored where an inspector could see it.
    chosen = pool[fashion_mnist.stratified_subset(truth[pool], min(images, len(pool)), seed=seed)]
    labels = list(project.labels.all())
    rng = random.Random(seed)
    for start in range(0, len(chosen), 200):
        chunk = chosen[start : start + 200]
        uploads = [
            Upload(
                name=f"fmnist-{int(index):05d}.png",
                content=_png(pixels[index]),
                metadata={"source": "fashion-mnist", "fmnist_index": int(index)},
            )
            for index in chunk
        ]
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
