"""Inspector trust: Dawid-Skene confusion matrices per inspector, kept in AnnotatorSkill.

The math lives in ``labeling.consensus`` (plain numpy); this module loads and stores its inputs.
Evidence is added incrementally as items close (answer posterior-weighted, gold answers as
certain), and a periodic EM refit over all of a project's answers replaces it.
"""

import time
from collections.abc import Iterable, Mapping

import numpy as np
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from labeling import consensus
from labeling.models import Annotation, AnnotatorSkill, GoldItem, Item, Project

SKILL_EVIDENCE_FIELDS = [
    "counts",
    "confusion",
    "estimated_accuracy",
    "gold_answers",
    "gold_correct",
    "answers",
    "updated_at",
]


def class_count(project: Project) -> int:
    return project.labels.count()


def class_prior(project: Project, k: int) -> np.ndarray:
    """The project's class balance (uniform until a refit has measured it)."""
    stored = project.consensus_state.get("class_prior")
    if stored and len(stored) == k:
        return np.asarray(stored, dtype=float)
    return np.full(k, 1.0 / k)


def newcomer_confusion(project: Project, k: int) -> np.ndarray:
    """The confusion a new inspector starts with: the project's pool."""
    stored = project.consensus_state.get("newcomer_confusion")
    if stored and len(stored) == k:
        return np.asarray(stored, dtype=float)
    return consensus.confusion_matrix(np.zeros((k, k)), consensus.pooled_prior(np.zeros((k, k))))


def confusions_for(project: Project, annotator_ids: Iterable[int], k: int) -> dict[int, np.ndarray]:
    """Stored confusion per inspector, the pool for those without evidence yet."""
    ids = set(annotator_ids)
    found = {
        annotator: np.asarray(confusion, dtype=float)
        for annotator, confusion in AnnotatorSkill.objects.filter(
            project=project, annotator_id__in=ids
        )
        .order_by()
        .values_list("annotator_id", "confusion")
        if confusion and len(confusion) == k
    }
    default = newcomer_confusion(project, k)
    return {annotator: found.get(annotator, default) for annotator in ids}


def _counts(skill: AnnotatorSkill, k: int) -> np.ndarray:
    if skill.counts and len(skill.counts) == k:
        return np.asarray(skill.counts, dtype=float)
    return np.zeros((k, k))


def skills_add_evidence(
    *,
    project: Project,
    evidence: Mapping[int, np.ndarray],
    gold_results: Mapping[int, tuple[int, int]] | None = None,
    answers: Mapping[int, int] | None = None,
    k: int,
) -> None:
    """Add evidence (K×K per inspector, may be negative to take an undone answer back), gold
    results ({inspector: (answers, correct)}) and answer counts, and refresh those inspectors'
    confusions against the project's pool.

    Only the touched inspectors' rows are locked, always in inspector-id order, so concurrent
    answers never deadlock and an answer does not wait for unrelated ones. The pool (and the
    newcomer confusion it gives) moves slowly and is refreshed by the periodic EM refit."""
    gold_results = gold_results or {}
    answers = answers or {}
    touched = sorted(set(evidence) | set(gold_results) | set(answers))
    if not touched:
        return
    now = timezone.now()
    # Part of the caller's transaction (no savepoint of its own): a failure fails the answer.
    with transaction.atomic(savepoint=False):
        if not evidence and not gold_results:
            # Only answer counts move (an answer that closed nothing): one UPDATE per inspector,
            # in id order, without reading the row first. Rows that do not exist yet are made
            # below.
            touched = [
                annotator_id
                for annotator_id in touched
                if not AnnotatorSkill.objects.filter(
                    project=project, annotator_id=annotator_id
                ).update(answers=Greatest(F("answers") + answers[annotator_id], 0), updated_at=now)
            ]
            if not touched:
                return
        pool = newcomer_confusion(project, k)
        prior = class_prior(project, k)
        # One statement locks every touched row, in id order (no deadlocks).
        locked = {
            skill.annotator_id: skill
            for skill in AnnotatorSkill.objects.select_for_update()
            .filter(project=project, annotator_id__in=touched)
            .order_by("annotator_id")
        }
        for annotator_id in touched:
            skill = locked.get(annotator_id)
            if skill is None:
                skill, _ = AnnotatorSkill.objects.select_for_update().get_or_create(
                    project=project, annotator_id=annotator_id
                )
            counts = _counts(skill, k)
            if annotator_id in evidence:
                counts = np.maximum(counts + evidence[annotator_id], 0.0)
                alpha = consensus.priors_given_pool(
                    counts, pool, strength=consensus.DEFAULT_PRIOR_STRENGTH
                )[0]
                confusion = consensus.confusion_matrix(counts, alpha)
                skill.confusion = confusion.round(6).tolist()
                skill.estimated_accuracy = float(consensus.annotator_accuracy(confusion, prior))
            skill.counts = counts.round(6).tolist()
            gold_n, gold_ok = gold_results.get(annotator_id, (0, 0))
            skill.gold_answers = max(0, skill.gold_answers + gold_n)
            skill.gold_correct = min(skill.gold_answers, max(0, skill.gold_correct + gold_ok))
            skill.answers = max(0, skill.answers + answers.get(annotator_id, 0))
            # One UPDATE per row: bulk_update's CASE expressions cost more to build than the
            # round trips they save (about 4 ms of Python for three rows).
            skill.save(update_fields=SKILL_EVIDENCE_FIELDS)


def current_answers(item: Item, rows: Iterable[Annotation] | None = None) -> list[Annotation]:
    """The answers that count: the latest row of each inspector's chain, unless it is an undo.
    ``rows``: the item's annotation rows oldest first, when the caller has them already."""
    if rows is None:
        rows = Annotation.objects.filter(item=item).order_by("created_at", "id")
    latest: dict[int, Annotation] = {}
    for row in rows:
        latest[row.annotator_id] = row
    return [row for row in latest.values() if row.label_id is not None]


def skills_refit(*, project: Project) -> dict:
    """EM over every current answer of the project (gold items fixed to their answer); replaces
    the incremental evidence, the class balance and the newcomer pool. Returns timing figures.
    Open items are not re-scored here: ``labeling.refit.project_refit`` does both."""
    started = time.perf_counter()
    labels = list(project.labels.values_list("pk", flat=True))
    k = len(labels)
    column = {pk: i for i, pk in enumerate(labels)}
    rows = list(
        Annotation.objects.filter(project=project, superseded_by__isnull=True, label__isnull=False)
        .values_list("item_id", "annotator_id", "label_id")
        .order_by("item_id", "annotator_id")
    )
    if not rows:
        return {"answers": 0, "seconds": 0.0}
    item_ids = sorted({r[0] for r in rows})
    annotator_ids = sorted({r[1] for r in rows})
    item_index = {pk: i for i, pk in enumerate(item_ids)}
    annotator_index = {pk: i for i, pk in enumerate(annotator_ids)}
    items = np.fromiter((item_index[r[0]] for r in rows), dtype=np.intp, count=len(rows))
    annotators = np.fromiter((annotator_index[r[1]] for r in rows), dtype=np.intp, count=len(rows))
    answers = np.fromiter((column[r[2]] for r in rows), dtype=np.intp, count=len(rows))
    gold = {
        item_index[item_id]: column[label_id]
        for item_id, label_id in GoldItem.objects.filter(project=project).values_list(
            "item_id", "label_id"
        )
        if item_id in item_index
    }
    loaded = time.perf_counter()
    result = consensus.dawid_skene_em(
        items,
        annotators,
        answers,
        n_items=len(item_ids),
        n_annotators=len(annotator_ids),
        n_classes=k,
        gold=gold,
    )
    fitted = time.perf_counter()
    accuracy = consensus.annotator_accuracy(result.confusions, result.class_prior)
    with transaction.atomic():
        for annotator_id, i in annotator_index.items():
            AnnotatorSkill.objects.update_or_create(
                project=project,
                annotator_id=annotator_id,
                defaults={
                    "counts": result.counts[i].round(6).tolist(),
                    "confusion": result.confusions[i].round(6).tolist(),
                    "estimated_accuracy": float(accuracy[i]),
                    "answers": int((annotators == i).sum()),
                },
            )
        pool = consensus.confusion_matrix(np.zeros((k, k)), consensus.pooled_prior(result.counts))
        state = {
            "class_prior": result.class_prior.round(6).tolist(),
            "newcomer_confusion": pool.round(6).tolist(),
            "refit_answers": len(rows),
        }
        Project.objects.filter(pk=project.pk).update(consensus_state=state)
        project.consensus_state = state
    return {
        "answers": len(rows),
        "items": len(item_ids),
        "inspectors": len(annotator_ids),
        "iterations": result.iterations,
        "load_seconds": round(loaded - started, 3),
        "fit_seconds": round(fitted - loaded, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
