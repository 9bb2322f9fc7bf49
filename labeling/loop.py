"""The whole loop, simulated end to end: images arrive through the upload API, a real Celery
worker predicts, routes and retrains, and a crowd of simulated inspectors answers through the
same queue endpoints the inspector page uses. Driven by ``manage.py simulate_loop`` and
``bench/loop.py``; see docs/loop.md.

The truth (Fashion-MNIST's labels) stays here, in the simulator. The system only ever sees it as
seeded gold items (an admin's act, through ``gold_item_add``) and as an expert's resolutions of
disputed items (through the resolve endpoint). Everything else it learns from the crowd.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import requests
from django.db.models import Count, Sum
from django.utils import timezone
from PIL import Image

from labeling import consensus
from labeling import simulation as sim
from labeling.access import Role
from labeling.models import (
    Annotation,
    CostEntry,
    CostKind,
    Item,
    ItemSource,
    ItemStatus,
    ModelStatus,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
)

ROOT = Path(__file__).resolve().parent.parent
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


# --- waiting for the worker ---------------------------------------------------------------------


def broker_busy() -> bool:
    """Tasks waiting in the broker or held by a worker."""
    from labeling.celery import app

    with app.connection_for_read() as conn:
        waiting = conn.default_channel.queue_declare("celery", passive=False).message_count
    if waiting:
        return True
    inspect = app.control.inspect(timeout=1.0)
    return any(any(reply.values()) for reply in (inspect.active() or {}, inspect.reserved() or {}))


def settle(project: Project, *, timeout: float, poll: float = 1.0) -> float:
    """Wait until nothing is being predicted, trained or queued; returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2:
        busy = (
            Item.objects.filter(project=project, status=ItemStatus.NEW).exists()
            or ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).exists()
            or broker_busy()
        )
        quiet = 0 if busy else quiet + 1
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the worker did not settle within {timeout:.0f} s")
        time.sleep(poll)
    return time.monotonic() - started


# --- the simulation -----------------------------------------------------------------------------


class Loop:
    def __init__(self, cfg: LoopConfig, base_url: str, log: Callable[[str], None] = print):
        from ml.fashion_mnist import load_split

        self.cfg = cfg
        self.log = log
        self.pixels, self.truth_all = load_split("train")
        self.order = images_pick(self.truth_all, self.pixels, cfg.images, cfg.seed)
        rng = np.random.default_rng(cfg.seed + 1)
        self.difficulty = sim.item_difficulty(len(self.truth_all), rng)
        self.rng = np.random.default_rng(cfg.seed + 2)
        self.project, self.admin, self.manager, self.inspectors = project_prepare(cfg)
        self.api = Api(base_url, self.project.slug)
        self.index_of: dict[int, int] = {}  # item id -> Fashion-MNIST index
        self.answers_submitted = 0
        self.answers_refused = 0
        self.gold_answers = 0
        self.expert_resolutions = 0
        self.gold_seeded = 0
        self.timeline: list[dict] = []
        self.started = time.monotonic()
        self.start_date: date = timezone.localdate()

    # The system's inputs ------------------------------------------------------------------------

    def upload(self, indices: np.ndarray) -> int:
        created = 0
        for start in range(0, len(indices), self.cfg.upload_chunk):
            chunk = indices[start : start + self.cfg.upload_chunk]
            names = {f"fmnist-{int(i):05d}.png": int(i) for i in chunk}
            files = [
                ("files", (n, png_bytes(self.pixels[i]), "image/png")) for n, i in names.items()
            ]
            metadata = {n: {"source": "fashion-mnist", "fmnist_index": i} for n, i in names.items()}
            response = self.api.post(
                self.admin, "items/upload/", files=files, data={"metadata": json.dumps(metadata)}
            )
            response.raise_for_status()
            for result in response.json()["results"]:
                if result["outcome"] == "created":
                    self.index_of[result["item_id"]] = names[result["name"]]
                    created += 1
                else:
                    self.log(f"upload {result['name']}: {result['outcome']} {result['reason']}")
        return created

    def gold_seed(self, item_ids: list[int]) -> None:
        """An admin marks a few images with their known answer (no API for it: the service)."""
        from labeling.answers import gold_item_add

        labels = list(self.project.labels.all())
        for item in Item.objects.filter(pk__in=item_ids):
            gold_item_add(item=item, label=labels[self.truth(item.pk)])
            self.gold_seeded += 1

    def truth(self, item_id: int) -> int:
        return int(self.truth_all[self.index_of[item_id]])

    def inspect(self, budget: int) -> int:
        """Inspectors take the next image and answer it until ``budget`` answers are given or
        nobody gets any more work. Returns the answers given."""
        working = list(range(len(self.inspectors)))
        given = 0
        while given < budget and working:
            slot = int(self.rng.integers(len(working)))
            person = self.inspectors[working[slot]]
            response = self.api.post(person, "queue/next/")
            if response.status_code == 204:
                working.pop(slot)
                continue
            response.raise_for_status()
            lease = response.json()
            item_id = lease["item"]
            inspector = person.inspector
            label = sim.answer(
                inspector, self.truth(item_id), self.difficulty_of(item_id), self.rng
            )
            seconds = PACE_S[inspector.kind] * math.exp(0.4 * self.rng.standard_normal())
            response = self.api.post(
                person,
                "queue/answers/",
                json={
                    "assignment": lease["assignment"],
                    "label": LABELS[label][0],
                    "time_on_task_ms": int(seconds * 1000),
                },
            )
            if response.status_code == 201:
                given += 1
                self.answers_submitted += 1
            else:
                self.answers_refused += 1
                self.log(f"answer refused ({response.status_code}): {response.text[:200]}")
        return given

    def difficulty_of(self, item_id: int) -> float:
        return float(self.difficulty[self.index_of[item_id]])

    def resolve_disputes(self) -> int:
        """The expert decides every disputed image (with the truth) through the resolve API."""
        disputed = []
        url = "items/?status=disputed"
        while url:
            page = self.api.get(self.admin, url)
            page.raise_for_status()
            body = page.json()
            disputed += [row["id"] for row in body["results"]]
            url = body["next"].split(self.api.base, 1)[1] if body["next"] else None
        for item_id in disputed:
            response = self.api.post(
                self.admin,
                f"items/{item_id}/resolve/",
                json={"label": LABELS[self.truth(item_id)][0]},
            )
            response.raise_for_status()
            self.expert_resolutions += 1
        return len(disputed)

    def triggers(self) -> None:
        """The periodic jobs beat would run, sent now: a trust refit and the training check."""
        from labeling.tasks import refit_project_trust
        from ml.tasks import check_training_triggers

        refit_project_trust.delay(self.project.pk)
        check_training_triggers.delay()

    # The run ------------------------------------------------------------------------------------

    def period(self, name: str, batch: np.ndarray | None) -> dict:
        t0 = time.monotonic()
        uploaded = self.upload(batch) if batch is not None else 0
        waited = settle(self.project, timeout=self.cfg.settle_timeout_s)
        if self.gold_seeded < self.cfg.gold_items and uploaded:
            fresh = sorted(self.index_of)[self.gold_seeded : self.cfg.gold_items]
            self.gold_seed(fresh)
        answered = self.inspect(self.cfg.answers_per_batch)
        resolved = self.resolve_disputes()
        self.triggers()
        waited += settle(self.project, timeout=self.cfg.settle_timeout_s)
        row = {
            "period": name,
            "uploaded": uploaded,
            "answers_this_period": answered,
            "resolved_this_period": resolved,
            "period_seconds": round(time.monotonic() - t0, 1),
            "waiting_for_worker_seconds": round(waited, 1),
            **self.snapshot(),
        }
        self.timeline.append(row)
        self.log(
            f"[{name}] images {row['images']} finished {row['finished']} "
            f"(machine {row['by_source'].get('machine', 0)}) answers {row['answers']} "
            f"auto share {row['auto_share']:.1%} accuracy {row['accuracy']} "
            f"models {row['models_trained']}/{row['models_promoted']} t={row['elapsed_s']:.0f}s"
        )
        return row

    def run(self) -> dict:
        for number, start in enumerate(range(0, len(self.order), self.cfg.batch), start=1):
            self.period(f"batch {number}", self.order[start : start + self.cfg.batch])
        stalled = 0
        while self.unfinished() and stalled < 3:
            before = self.unfinished()
            self.period("drain", None)
            stalled = stalled + 1 if self.unfinished() >= before else 0
        return self.figures()

    # Measuring ----------------------------------------------------------------------------------

    def unfinished(self) -> int:
        return (
            Item.objects.filter(project=self.project)
            .exclude(status__in=(ItemStatus.AUTO_LABELED, ItemStatus.LABELED))
            .count()
        )

    def finished_items(self) -> list[tuple[int, int, str]]:
        return list(
            Item.objects.filter(project=self.project, final_label__isnull=False).values_list(
                "pk", "final_label__position", "final_source"
            )
        )

    def snapshot(self) -> dict:
        sources = self.accuracy_by_source()
        overall = sources.pop("overall")
        models = ModelVersion.objects.filter(project=self.project)
        answers = Annotation.objects.filter(project=self.project, label__isnull=False).count()
        cost = CostEntry.objects.filter(project=self.project).aggregate(total=Sum("amount"))
        audit = self.audit_precision()
        images = len(self.index_of)
        self.project.refresh_from_db()
        return {
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "images": images,
            "finished": overall["items"],
            "by_source": {source: entry["items"] for source, entry in sources.items()},
            "accuracy_by_source": {source: entry["accuracy"] for source, entry in sources.items()},
            "answers": answers,
            "answers_per_image": round(answers / images, 4) if images else 0.0,
            "auto_share": sources.get("machine", {}).get("items", 0) / overall["items"]
            if overall["items"]
            else 0.0,
            "accuracy": overall["accuracy"],
            "live_audit_precision": audit["precision"],
            "audited": audit["audited"],
            "cost": str(cost["total"] or Decimal(0)),
            "models_trained": models.exclude(status__in=("training", "failed")).count(),
            "models_failed": models.filter(status="failed").count(),
            "models_promoted": models.filter(promoted_at__isnull=False).count(),
            "active_model": self.project.active_model.version
            if self.project.active_model
            else None,
            "paused_classes": sorted(self.project.autolabel_paused or {}),
        }

    def accuracy_by_source(self) -> dict:
        stats: dict[str, dict] = {}
        for item_id, position, source in self.finished_items():
            entry = stats.setdefault(source, {"items": 0, "correct": 0})
            entry["items"] += 1
            entry["correct"] += int(position == self.truth(item_id))
        total = {"items": sum(e["items"] for e in stats.values())}
        total["correct"] = sum(e["correct"] for e in stats.values())
        for entry in [*stats.values(), total]:
            entry["accuracy"] = (
                round(entry["correct"] / entry["items"], 4) if entry["items"] else None
            )
        return {"overall": total, **stats}

    def audit_precision(self) -> dict:
        """Live audit precision (``ml.services.audit.live_precision``) per model and pooled."""
        from ml.services.audit import live_precision

        per_model, audited, correct = {}, 0, 0
        for model in ModelVersion.objects.filter(project=self.project).order_by("version"):
            stats = live_precision(project=self.project, model_version_id=model.pk)
            if not stats:
                continue
            n = sum(s["audited"] for s in stats.values())
            c = sum(s["correct"] for s in stats.values())
            per_model[f"v{model.version}"] = {"audited": n, "correct": c, "per_class": stats}
            audited, correct = audited + n, correct + c
        return {
            "audited": audited,
            "correct": correct,
            "precision": round(correct / audited, 4) if audited else None,
            "per_model": per_model,
        }

    def costs(self) -> dict:
        """The benchmark's own totals: answers it submitted, predictions the worker saved."""
        project = self.project
        human = CostEntry.objects.filter(project=project, kind=CostKind.HUMAN_ANSWER).aggregate(
            n=Count("id"), amount=Sum("amount"), seconds=Sum("seconds")
        )
        machine = CostEntry.objects.filter(project=project, kind=CostKind.PREDICTION).aggregate(
            units=Sum("units"), amount=Sum("amount")
        )
        predictions = (
            Prediction.objects.filter(item__project=project)
            .exclude(decision=PredictionDecision.FAILED)
            .count()
        )
        return {
            "answers": self.answers_submitted,
            "answers_cost_rows": human["n"],
            "human_cost": str(Decimal(self.answers_submitted) * project.price_per_answer),
            "human_cost_rows": str(human["amount"] or Decimal(0)),
            "human_seconds_rows": round(human["seconds"] or 0.0, 3),
            "predictions": predictions,
            "prediction_cost_units": machine["units"] or 0,
            "machine_cost_rows": str(machine["amount"] or Decimal(0)),
        }

    def manager_report(self) -> dict:
        """The totals of the manager's cost report (``labeling.reports``) over the run's days."""
        from labeling.reports import Period, cost_report_build

        period = Period(self.start_date, max(timezone.localdate(), self.start_date))
        summary = cost_report_build(project=self.project, period=period).summary
        keys = (
            "images_ingested",
            "auto_labeled",
            "human_labeled",
            "answers",
            "current_answers",
            "human_cost",
            "predictions",
            "machine_cost",
            "total_cost",
            "automation_percent",
            "baseline_answers_per_item",
            "baseline_cost",
            "saving",
        )
        return {key: _plain(summary.get(key)) for key in keys}

    def figures(self) -> dict:
        snapshot = self.snapshot()
        sources = self.accuracy_by_source()
        costs = self.costs()
        report = self.manager_report()
        machine_cost = Decimal(costs["machine_cost_rows"])
        bench_totals = {
            "images_ingested": len(self.index_of),
            "auto_labeled": snapshot["by_source"].get(ItemSource.MACHINE, 0),
            "human_labeled": snapshot["by_source"].get(ItemSource.CONSENSUS, 0)
            + snapshot["by_source"].get(ItemSource.EXPERT, 0),
            "answers": costs["answers"],
            "human_cost": costs["human_cost"],
            "predictions": costs["predictions"],
            "machine_cost": str(machine_cost),
            "total_cost": str(Decimal(costs["human_cost"]) + machine_cost),
        }
        mismatches = {
            key: {"benchmark": value, "report": report.get(key)}
            for key, value in bench_totals.items()
            if _plain(value) != report.get(key) and Decimal(str(value)) != _dec(report.get(key))
        }
        return {
            "images": len(self.index_of),
            "finished": snapshot["finished"],
            "unfinished": self.unfinished(),
            "answers": costs["answers"],
            "answers_refused": self.answers_refused,
            "answers_per_image": round(costs["answers"] / max(len(self.index_of), 1), 4),
            "gold_seeded": self.gold_seeded,
            "expert_resolutions": self.expert_resolutions,
            "auto_share": round(snapshot["auto_share"], 4),
            "accuracy": sources,
            "live_audit": self.audit_precision(),
            "models": self.models(),
            "models_trained": snapshot["models_trained"],
            "models_promoted": snapshot["models_promoted"],
            "wall_clock_s": round(time.monotonic() - self.started, 1),
            "costs": costs,
            "benchmark_totals": bench_totals,
            "manager_report": report,
            "report_mismatches": mismatches,
            "invariants": invariants(self.project, set(self.index_of)),
            "baselines": self.baselines(costs["answers"]),
            "timeline": self.timeline,
            "config": asdict(self.cfg),
        }

    def models(self) -> list[dict]:
        rows = []
        for model in ModelVersion.objects.filter(project=self.project).order_by("version"):
            gate = (model.metrics or {}).get("promotion_gate", {})
            rows.append(
                {
                    "version": model.version,
                    "status": model.status,
                    "labels": (model.manifest.line_count if model.manifest else None),
                    "val_accuracy": (model.metrics or {}).get("accuracy"),
                    "coverage_heldout": gate.get("candidate", {}).get("coverage"),
                    "promoted": model.promoted_at is not None,
                    "decision": gate.get("decision") or model.status_reason[:200],
                    "seconds": (model.trained_at - model.created_at).total_seconds()
                    if model.trained_at
                    else None,
                }
            )
        return rows

    def baselines(self, budget: int) -> dict:
        """All-human baselines on the same images and crowd, answered offline by the same
        simulator: 3 answers per image with this project's consensus (Dawid-Skene with the
        seeded gold), and majority vote with the loop's answer budget spread over the images."""
        item_ids = sorted(self.index_of)
        truth = np.array([self.truth(i) for i in item_ids])
        difficulty = np.array([self.difficulty_of(i) for i in item_ids])
        n, k, people = len(item_ids), len(LABELS), len(self.inspectors)
        rng = np.random.default_rng(self.cfg.seed + 3)
        tables = sim.CrowdTables.of([p.inspector for p in self.inspectors])
        gold_ids = set(
            Item.objects.filter(project=self.project, gold__origin="seeded").values_list(
                "pk", flat=True
            )
        )
        gold = {row: int(truth[row]) for row, pk in enumerate(item_ids) if pk in gold_ids}
        plain = np.array([pk not in gold_ids for pk in item_ids])

        who = sim.assign_inspectors(n, 3, people, rng)
        items3 = np.repeat(np.arange(n), 3)
        answers3 = sim.answer_batch(tables, who.ravel(), truth[items3], difficulty[items3], rng)
        em = consensus.dawid_skene_em(
            items3, who.ravel(), answers3, n_items=n, n_annotators=people, n_classes=k, gold=gold
        )
        ds3 = em.posteriors.argmax(axis=1)

        per_item = np.full(n, budget // n)
        per_item[rng.permutation(n)[: budget - per_item.sum()]] += 1
        per_item = np.minimum(per_item, people)
        who_b = sim.assign_inspectors(n, max(int(per_item.max()), 1), people, rng)
        mask = np.arange(who_b.shape[1])[None, :] < per_item[:, None]
        items_b = np.broadcast_to(np.arange(n)[:, None], mask.shape)[mask]
        answers_b = sim.answer_batch(tables, who_b[mask], truth[items_b], difficulty[items_b], rng)
        mv = consensus.majority_vote(items_b, answers_b, n_items=n, n_classes=k, seed=self.cfg.seed)
        unanswered = mv < 0
        # An image nobody looked at still needs a label: the most common answer overall.
        mv[unanswered] = np.bincount(answers_b, minlength=k).argmax() if answers_b.size else 0
        return {
            "all_human_3_answers_consensus": {
                "answers": int(3 * n),
                "accuracy": round(float((ds3 == truth).mean()), 4),
                "accuracy_excluding_gold": round(float((ds3 == truth)[plain].mean()), 4),
            },
            "all_human_majority_same_budget": {
                "answers": int(per_item.sum()),
                "answers_per_image": round(float(per_item.mean()), 4),
                "unanswered_images": int(unanswered.sum()),
                "accuracy": round(float((mv == truth).mean()), 4),
            },
        }


def invariants(project: Project, uploaded: set[int]) -> dict:
    """What must hold after a run: every image finished once, with a source."""
    items = Item.objects.filter(project=project)
    auto_twice = (
        Prediction.objects.filter(item__project=project, decision=PredictionDecision.AUTO_LABELED)
        .values("item")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    machine_with_answers = (
        items.filter(final_source=ItemSource.MACHINE, annotations__isnull=False).distinct().count()
    )
    return {
        "items": items.count(),
        "uploaded_items": len(uploaded),
        "same_items": set(items.values_list("pk", flat=True)) == uploaded,
        "unfinished": items.exclude(
            status__in=(ItemStatus.AUTO_LABELED, ItemStatus.LABELED)
        ).count(),
        "finished_without_source": items.filter(final_label__isnull=False, final_source="").count(),
        "finished_without_label": items.filter(
            status__in=(ItemStatus.AUTO_LABELED, ItemStatus.LABELED), final_label__isnull=True
        ).count(),
        "auto_labeled_twice": auto_twice,
        "machine_labels_with_answers": machine_with_answers,
        "finished_without_time": items.filter(
            final_label__isnull=False, finished_at__isnull=True
        ).count(),
    }


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _dec(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


# --- the processes: a Celery worker and gunicorn -------------------------------------------------


@contextmanager
def process(argv: list[str], env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def worker_argv(concurrency: int = 2) -> list[str]:
    return [
        *(["nice", "-n", "5"] if os.name == "posix" else []),
        sys.executable,
        *["-m", "celery", "-A", "labeling", "worker", "--loglevel", "info"],
        *["--without-gossip", "--without-mingle"],
        "--concurrency",
        str(concurrency),
    ]


def gunicorn_argv(port: int, workers: int = 2) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "labeling.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
