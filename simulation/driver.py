"""The loop itself: upload a batch, let the worker settle, let the crowd answer, repeat."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import date

import numpy as np
from django.utils import timezone

from labeling.models import (
    Item,
    ItemStatus,
    ModelStatus,
    ModelVersion,
    Project,
)
from simulation import crowd_model as sim
from simulation.crowd import (
    LABELS,
    PACE_S,
    Api,
    LoopConfig,
    images_pick,
    png_bytes,
    project_prepare,
)
from simulation.measures import LoopMeasures

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


class Loop(LoopMeasures):
    """One simulated run: see docs/loop.md. Measurements come from :class:`LoopMeasures`."""

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
        self.expert_rechecks = 0
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

    def all_pages(self, url: str) -> list[dict]:
        """Every row of a paginated API list, as the admin."""
        rows = []
        while url:
            page = self.api.get(self.admin, url)
            page.raise_for_status()
            body = page.json()
            rows += body["results"]
            url = body["next"].split(self.api.base, 1)[1] if body["next"] else None
        return rows

    def resolve_disputes(self) -> int:
        """The expert decides every disputed image (with the truth) through the resolve API."""
        disputed = [row["id"] for row in self.all_pages("items/?status=disputed")]
        for item_id in disputed:
            response = self.api.post(
                self.admin,
                f"items/{item_id}/resolve/",
                json={"label": LABELS[self.truth(item_id)][0]},
            )
            response.raise_for_status()
            self.expert_resolutions += 1
        return len(disputed)

    def resolve_rechecks(self) -> int:
        """The expert rechecks every flagged label (with the truth) through the recheck API:
        certification flags the evidence labels a confident model contradicts."""
        open_ids = [(row["id"], row["item"]) for row in self.all_pages("rechecks/?status=open")]
        for review_id, item_id in open_ids:
            response = self.api.post(
                self.admin,
                f"rechecks/{review_id}/decide/",
                json={"label": LABELS[self.truth(item_id)][0]},
            )
            response.raise_for_status()
            self.expert_rechecks += 1
        return len(open_ids)

    def triggers(self) -> None:
        """The periodic jobs beat would run, sent now: a trust refit, the thresholds certified
        again on the evidence that arrived, and the training check."""
        from labeling.machine.tasks import check_training_triggers, recertify_thresholds
        from labeling.tasks import refit_project_trust

        refit_project_trust.delay(self.project.pk)
        recertify_thresholds.delay()
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
        rechecked = self.resolve_rechecks()
        self.triggers()
        waited += settle(self.project, timeout=self.cfg.settle_timeout_s)
        row = {
            "period": name,
            "uploaded": uploaded,
            "answers_this_period": answered,
            "resolved_this_period": resolved,
            "rechecked_this_period": rechecked,
            "period_seconds": round(time.monotonic() - t0, 1),
            "waiting_for_worker_seconds": round(waited, 1),
            **self.snapshot(),
        }
        self.timeline.append(row)
        self.log(
            f"[{name}] images {row['images']} finished {row['finished']} "
            f"(machine {row['by_source'].get('machine', 0)}) answers {row['answers']} "
            f"rechecked {rechecked} "
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
