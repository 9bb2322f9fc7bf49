"""What admins read about their inspectors: trust, gold results, speed and confusion, per person."""

from collections import defaultdict
from statistics import median

from django.contrib.auth import get_user_model
from scipy import stats

from labeling import consensus, crowd_checks
from labeling.models import Annotation, AnnotatorSkill, Project
from labeling.trust import class_prior, newcomer_confusion


def near_chance_floor(project: Project, k: int) -> tuple[float, float]:
    """(guessing, floor): the accuracy of pressing keys at random among ``k`` labels, and the
    floor between there and the project's typical (median) inspector that the near-chance test
    uses (``labeling.crowd_checks``); the pool stands in before anyone has an estimate."""
    chance = 1.0 / k
    estimates = [
        x
        for x in AnnotatorSkill.objects.filter(project=project).values_list(
            "estimated_accuracy", flat=True
        )
        if x is not None
    ]
    if estimates:
        typical = float(median(estimates))
    else:
        pool = newcomer_confusion(project, k)
        typical = float(consensus.annotator_accuracy(pool, class_prior(project, k)))
    return chance, chance + crowd_checks.NEAR_CHANCE_FRACTION * max(typical - chance, 0.0)


def p_text(p: float | None) -> str:
    if p is None:
        return ""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def gold_near_chance(gold_answers: int, gold_correct: int, floor: float) -> bool:
    """The near-chance test on gold answers alone (exact binomial), so a guesser shows before
    the first refit has looked at the other answers."""
    if gold_answers < crowd_checks.NEAR_CHANCE_MIN_ANSWERS:
        return False
    p = stats.binom.cdf(gold_correct, gold_answers, floor)
    return bool(p < crowd_checks.NEAR_CHANCE_ALPHA)


def _confusion_rows(confusion: list, label_names: list[str]) -> list[dict]:
    """Rows = true class, columns = the answer given; cells carry what the template shows."""
    k = len(label_names)
    if not confusion or len(confusion) != k:
        return []
    return [
        {
            "label": label_names[true],
            "cells": [
                {"value": p, "percent": round(100 * p), "diagonal": true == given}
                for given, p in enumerate(row)
            ],
        }
        for true, row in enumerate(confusion)
    ]


def inspector_trust_table(*, project: Project) -> list[dict]:
    """One row per person who answered in ``project`` (or has a skill record there): estimated
    accuracy, gold accuracy, current answers, median seconds per answer, confusion matrix, and
    what the trust checks found: answers close to guessing (a statistical test on gold and on
    the answers the rest of the crowd decides with confidence), per-class biases, and copying
    (agreement with another inspector beyond what both skills predict). Flagged people first,
    then by name."""
    label_names = [label.name for label in project.labels.all()]
    k = len(label_names)

    times: dict[int, list[int]] = defaultdict(list)
    current = Annotation.objects.filter(
        project=project, superseded_by__isnull=True, label__isnull=False
    ).values_list("annotator_id", "time_on_task_ms")
    for annotator_id, ms in current.iterator(chunk_size=5000):
        times[annotator_id].append(ms)

    skills = {s.annotator_id: s for s in AnnotatorSkill.objects.filter(project=project)}
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=set(times) | set(skills))}
    _, floor = near_chance_floor(project, k) if k else (0.0, 0.0)

    rows = []
    for user in users.values():
        skill = skills.get(user.pk)
        answers = len(times.get(user.pk, []))
        estimated = skill.estimated_accuracy if skill else None
        gold_answers = skill.gold_answers if skill else 0
        gold_correct = skill.gold_correct if skill else 0
        flags = (skill.flags if skill else None) or {}
        near_chance = bool(flags.get("near_chance")) or gold_near_chance(
            gold_answers, gold_correct, floor
        )
        copies = [
            {
                **pair,
                "username": users[pair["user_id"]].get_username(),
                "p_text": p_text(pair.get("p_value")),
            }
            for pair in flags.get("copies_with", [])
            if pair["user_id"] in users
        ]
        rows.append(
            {
                "user_id": user.pk,
                "username": user.get_username(),
                "estimated_accuracy": estimated,
                "gold_answers": gold_answers,
                "gold_correct": gold_correct,
                "gold_accuracy": gold_correct / gold_answers if gold_answers else None,
                "estimated_percent": round(100 * estimated) if estimated is not None else None,
                "gold_percent": round(100 * gold_correct / gold_answers) if gold_answers else None,
                "answers": answers,
                "median_seconds": (
                    round(median(times[user.pk]) / 1000, 1) if times.get(user.pk) else None
                ),
                "confusion": _confusion_rows(skill.confusion if skill else [], label_names),
                "likely_spammer": near_chance,
                "near_chance_test": {
                    **{
                        key: flags[key]
                        for key in ("scored", "scored_correct", "p_value", "floor")
                        if key in flags
                    },
                    "p_text": p_text(flags.get("p_value")),
                },
                "biases": [
                    {**b, "percent": round(100 * b["share"])} for b in flags.get("biases", [])
                ],
                "copies_with": copies,
                "flagged": near_chance or bool(copies) or bool(flags.get("biases")),
            }
        )
    rows.sort(key=lambda row: (not row["flagged"], not row["likely_spammer"], row["username"]))
    return rows


def floor_percent(project: Project) -> int:
    k = project.labels.count()
    return round(100 * near_chance_floor(project, k)[1]) if k else 0
