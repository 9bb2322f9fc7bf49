"""What the loop reports: accuracy by source, audits, costs against the manager's report,
the baselines, and the invariants every run must keep."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import date
from decimal import Decimal

import numpy as np
from django.db.models import Count, Sum
from django.utils import timezone

from labeling import consensus
from labeling.models import (
    Annotation,
    CostEntry,
    CostKind,
    Item,
    ItemSource,
    ItemStatus,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
)
from simulation import crowd_model as sim
from simulation.crowd import LABELS


class LoopMeasures:
    """Measurements over a running loop (mixed into :class:`simulation.driver.Loop`)."""

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
        """Live audit precision (``labeling.machine.audit.live_precision``) per model and pooled."""
        from labeling.machine.audit import live_precision

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

    def answers_by_kind(self) -> dict:
        """Human answers split by why the image was with humans: seeded gold, the calibration
        share, the audit, routed while no threshold was in force (blind), or the queue of
        images a model was unsure of; with the images of each kind humans finished."""
        from labeling.models import GoldItem

        gold = set(GoldItem.objects.filter(project=self.project).values_list("item_id", flat=True))
        kinds: dict[str, dict] = {}
        rows = Item.objects.filter(project=self.project).values_list(
            "pk", "is_calibration", "is_audit", "routed_blind", "answer_count", "final_source"
        )
        answers = dict(
            Annotation.objects.filter(project=self.project, label__isnull=False)
            .values("item")
            .annotate(n=Count("id"))
            .values_list("item", "n")
        )
        for pk, calibration, audit, blind, _count, source in rows:
            if pk in gold:
                kind = "gold"
            elif calibration:
                kind = "calibration"
            elif audit:
                kind = "audit"
            elif blind:
                kind = "blind"
            elif source == ItemSource.MACHINE:
                kind = "machine"
            else:
                kind = "queue"
            entry = kinds.setdefault(kind, {"images": 0, "answers": 0, "human_finished": 0})
            entry["images"] += 1
            entry["answers"] += answers.get(pk, 0)
            entry["human_finished"] += int(source in (ItemSource.CONSENSUS, ItemSource.EXPERT))
        return kinds

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

    def seeded_gold_finished(self) -> int:
        """Items whose final label is a seeded gold answer (not decided by inspectors)."""
        return Item.objects.filter(
            project=self.project, final_source=ItemSource.EXPERT, gold__origin="seeded"
        ).count()

    def manager_report(self) -> dict:
        """The totals of the manager's cost report (``labeling.reports``) over the run's days."""
        from labeling.reports import Period, cost_report_build

        period = Period(self.start_date, max(timezone.localdate(), self.start_date))
        summary = cost_report_build(project=self.project, period=period).summary
        keys = (
            "images_ingested",
            "auto_labeled",
            "human_labeled",
            "seeded_gold",
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
            # Seeded gold answers came with the data: the report counts them apart.
            "human_labeled": snapshot["by_source"].get(ItemSource.CONSENSUS, 0)
            + snapshot["by_source"].get(ItemSource.EXPERT, 0)
            - self.seeded_gold_finished(),
            "seeded_gold": self.seeded_gold_finished(),
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
            "expert_rechecks": self.expert_rechecks,
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
            "answers_by_kind": self.answers_by_kind(),
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
