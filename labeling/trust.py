"""Inspector trust: Dawid-Skene confusion matrices per inspector, kept in AnnotatorSkill.

The math lives in ``labeling.consensus`` (plain numpy); this module loads and stores its inputs.
Evidence is added incrementally as items close (answer posterior-weighted, gold answers as
certain), and a periodic EM refit over all of a project's answers replaces it.
"""

import logging
import time
from collections.abc import Iterable, Mapping

import numpy as np
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from labeling import consensus
from labeling.models import Annotation, AnnotatorSkill, GoldItem, Item, Prediction, Project

logger = logging.getLogger(__name__)

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


def linked_pairs(project: Project) -> list[tuple[int, int]]:
    """Inspector id pairs the last refit found copying each other: they count as one voice."""
    return [(int(a), int(b)) for a, b, *_ in project.consensus_state.get("linked_pairs", [])]


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
                confusion = consensus.skill_refresh(counts, pool)
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


def _model_probabilities(project: Project, item_ids: list[int], k: int) -> np.ndarray | None:
    """N×K probabilities of the active calibrated model (NaN rows where it has none), as the
    per-answer update uses them in the item prior (``labeling.answers.item_prior``)."""
    model = project.active_model
    if model is None or not model.is_calibrated:
        return None
    index = {pk: i for i, pk in enumerate(item_ids)}
    probs = np.full((len(item_ids), k), np.nan)
    rows = (
        Prediction.objects.filter(model_version=model, item__project=project)
        .exclude(probabilities=[])
        .values_list("item_id", "probabilities")
    )
    for item_id, p in rows.iterator(chunk_size=5000):
        if item_id in index and p and len(p) == k:
            probs[index[item_id]] = p
    return probs


def skills_refit(*, project: Project) -> dict:
    """EM over every current answer of the project (gold items fixed to their answer), warm
    from the current estimate; replaces the incremental evidence, the class balance, the
    newcomer pool and the copying pairs, and stores each inspector's checks (near chance,
    per-class bias, copying). A refit that would do worse on gold or in likelihood than the
    current estimate is not applied: it is logged and kept in ``consensus_state["last_refit"]``.
    Open items are not re-scored here: ``labeling.refit.project_refit`` does both."""
    started = time.perf_counter()
    labels = list(project.labels.all())
    k = len(labels)
    column = {label.pk: i for i, label in enumerate(labels)}
    rows = list(
        Annotation.objects.filter(project=project, superseded_by__isnull=True, label__isnull=False)
        .values_list("item_id", "annotator_id", "label_id")
        .order_by("item_id", "created_at", "id")  # answer order: the stopping check needs it
    )
    if not rows:
        return {"answers": 0, "seconds": 0.0, "applied": False, "reason": "no answers"}
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
    stored = confusions_for(project, annotator_ids, k)
    current = consensus.SkillState(
        confusions=np.stack([stored[pk] for pk in annotator_ids]),
        class_prior=class_prior(project, k),
    )
    model_probs = _model_probabilities(project, item_ids, k)
    loaded = time.perf_counter()
    result = consensus.refit(
        items,
        annotators,
        answers,
        n_items=len(item_ids),
        n_annotators=len(annotator_ids),
        n_classes=k,
        gold=gold,
        model_probs=model_probs,
        current=current,
        target=project.consensus_target,
        min_answers=project.min_answers,
    )
    fitted = time.perf_counter()
    figures = {
        "answers": len(rows),
        "items": len(item_ids),
        "inspectors": len(annotator_ids),
        **result.figures(),
        "at": timezone.now().isoformat(),
    }
    state = dict(project.consensus_state)
    state["last_refit"] = figures
    if not result.applied:
        logger.warning("project %s: trust refit not applied: %s", project.pk, result.reason)
        Project.objects.filter(pk=project.pk).update(consensus_state=state)
        project.consensus_state = state
        return {**figures, "seconds": round(time.perf_counter() - started, 3)}
    em = result.em
    accuracy = consensus.annotator_accuracy(em.confusions, em.class_prior)
    flags = _inspector_flags(result, annotator_ids, [label.name for label in labels])
    with transaction.atomic():
        for annotator_id, i in annotator_index.items():
            AnnotatorSkill.objects.update_or_create(
                project=project,
                annotator_id=annotator_id,
                defaults={
                    "counts": em.counts[i].round(6).tolist(),
                    "confusion": em.confusions[i].round(6).tolist(),
                    "estimated_accuracy": float(accuracy[i]),
                    "answers": int((annotators == i).sum()),
                    "flags": flags[annotator_id],
                },
            )
        state.update(
            class_prior=em.class_prior.round(6).tolist(),
            newcomer_confusion=result.pool.round(6).tolist(),
            refit_answers=len(rows),
            linked_pairs=[
                [annotator_ids[p.a], annotator_ids[p.b], p.shared, p.agreements]
                for p in result.pair_tests
                if p.flagged
            ],
        )
        Project.objects.filter(pk=project.pk).update(consensus_state=state)
        project.consensus_state = state
    return {
        **figures,
        "load_seconds": round(loaded - started, 3),
        "fit_seconds": round(fitted - loaded, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _inspector_flags(
    result: consensus.RefitResult, annotator_ids: list[int], label_names: list[str]
) -> dict[int, dict]:
    """What the Inspectors page shows per person, from the refit's checks (JSON-ready)."""
    flags: dict[int, dict] = {pk: {} for pk in annotator_ids}
    for test in result.inspector_tests:
        flags[annotator_ids[test.annotator]].update(
            near_chance=test.near_chance,
            scored=test.scored,
            scored_correct=test.correct,
            chance=round(test.chance, 4),
            floor=round(test.floor, 4),
            p_value=None if test.p_value is None else float(f"{test.p_value:.3g}"),
        )
    for bias in result.biases:
        flags[annotator_ids[bias.annotator]].setdefault("biases", []).append(
            {
                "true": label_names[bias.true_class],
                "given": label_names[bias.given_class],
                "share": round(bias.share, 3),
                "answers": round(bias.evidence, 1),
            }
        )
    for pair in result.pair_tests:
        if not pair.flagged:
            continue
        for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
            flags[annotator_ids[me]].setdefault("copies_with", []).append(
                {
                    "user_id": annotator_ids[other],
                    "shared": pair.shared,
                    "agreements": pair.agreements,
                    "expected": round(pair.expected_agreements, 1),
                    "p_value": float(f"{pair.p_value:.3g}"),
                }
            )
    return flags
