"""The simulator's side of the loop: Fashion-MNIST's truth, the crowd and their API sessions."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
import requests
from PIL import Image

from labeling.access import Role
from labeling.models import (
    Project,
)
from simulation import crowd_model as sim

LABELS = (
    ("t-shirt-top", "T-shirt/top"),
    ("trouser", "Trouser"),
    ("pullover", "Pullover"),
    ("dress", "Dress"),
    ("coat", "Coat"),
    ("sandal", "Sandal"),
    ("shirt", "Shirt"),
    ("sneaker", "Sneaker"),
    ("bag", "Bag"),
    ("ankle-boot", "Ankle boot"),
)
CROWD = {"expert": 3, "average": 10, "careless": 4, "spammer_uniform": 1}
# Median seconds per answer by kind (log-normal around it): careful people are slower.
PACE_S = {"expert": 4.0, "average": 3.0, "careless": 1.6, "spammer_uniform": 0.7}


@dataclass
class LoopConfig:
    images: int = 20_000
    batch: int = 2_000
    # What the crowd can answer while one batch waits: the human capacity per period.
    answers_per_batch: int = 900
    seed: int = 0
    crowd: dict = field(default_factory=lambda: dict(CROWD))
    gold_items: int = 100  # seeded from the first batch with the true answer
    # Project settings (an admin's choices)
    min_answers: int = 1
    max_answers: int = 5
    consensus_target: float = 0.95
    threshold_mode: str = "target"
    target_precision: float = 0.98
    threshold_confidence: float = 0.95
    threshold_scope: str = "overall"
    calibration_share: float = 0.05
    train_on_machine_labels: bool = False
    manual_threshold: float = 0.99  # per class, when threshold_mode is "manual"
    audit_rate: float = 0.03
    gold_rate: float = 0.03
    retrain_every: int = 500
    upload_chunk: int = 250
    settle_timeout_s: float = 3600.0
    slug: str = ""


# --- the truth, on the simulator's side ---------------------------------------------------------


def images_pick(labels: np.ndarray, pixels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random training indices with distinct pixels (ingest de-duplicates equal images)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    seen, picked = set(), []
    for index in order:
        digest = hashlib.sha256(pixels[index].tobytes()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        picked.append(int(index))
        if len(picked) == n:
            break
    return np.asarray(picked)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Person:
    username: str
    inspector: sim.Inspector | None  # None for the admin (uploads, expert) and the manager
    session: requests.Session


class Api:
    """The system's HTTP API as one user sees it (token authentication)."""

    def __init__(self, base_url: str, slug: str):
        self.base = base_url.rstrip("/") + f"/api/projects/{slug}/"

    def post(self, person: Person, path: str, **kwargs) -> requests.Response:
        return person.session.post(self.base + path, timeout=120, **kwargs)

    def get(self, person: Person, path: str, **kwargs) -> requests.Response:
        return person.session.get(self.base + path, timeout=120, **kwargs)


def session_for(user) -> requests.Session:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.key}"
    return session


def project_prepare(cfg: LoopConfig) -> tuple[Project, Person, Person, list[Person]]:
    """An empty project with no model, its admin (uploads, expert), manager and inspectors."""
    from django.contrib.auth import get_user_model

    from labeling.project_setup import LabelSpec, member_add, project_create

    settings = {
        "min_answers": cfg.min_answers,
        "max_answers": cfg.max_answers,
        "consensus_target": cfg.consensus_target,
        "threshold_mode": cfg.threshold_mode,
        "target_precision": cfg.target_precision,
        "threshold_confidence": cfg.threshold_confidence,
        "audit_rate": cfg.audit_rate,
        "gold_rate": cfg.gold_rate,
        "retrain_every": cfg.retrain_every,
        "threshold_scope": cfg.threshold_scope,
        "calibration_share": cfg.calibration_share,
        "train_on_machine_labels": cfg.train_on_machine_labels,
    }
    if cfg.threshold_mode == "manual":
        settings["manual_thresholds"] = {name: cfg.manual_threshold for name, _ in LABELS}
    project = project_create(
        name=f"Loop {cfg.slug}",
        slug=cfg.slug,
        labels=[LabelSpec(name, display) for name, display in LABELS],
        **settings,
    )
    User = get_user_model()

    def person(name: str, role: Role, inspector=None) -> Person:
        user = User.objects.create_user(username=f"{cfg.slug}-{name}")
        member_add(project=project, user=user, role=role)
        return Person(user.username, inspector, session_for(user))

    admin = person("admin", Role.ADMIN)
    manager = person("manager", Role.MANAGER)
    crowd = sim.make_crowd(mix=cfg.crowd, seed=cfg.seed)
    inspectors = [person(f"{i.kind}-{i.id:02d}", Role.INSPECTOR, i) for i in crowd]
    return project, admin, manager, inspectors
