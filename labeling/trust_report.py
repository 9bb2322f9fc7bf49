"""What admins read about their inspectors: trust, gold results, speed and confusion, per person."""

from collections import defaultdict
from statistics import median

from django.contrib.auth import get_user_model

from labeling.models import Annotation, AnnotatorSkill, Project

# An inspector whose estimated accuracy is within this margin of guessing (1/K) is flagged, once
# they have given at least SPAMMER_MIN_ANSWERS answers. The estimate starts from a strong
# "probably decent" prior and takes dozens of answers to reach chance, so a gold record that is
# already at chance after SPAMMER_MIN_GOLD gold answers flags too (a 70%-accurate inspector
# scores that low on 20 gold answers about once in 200).
SPAMMER_MARGIN = 0.15
SPAMMER_MIN_ANSWERS = 10
SPAMMER_MIN_GOLD = 20


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
    accuracy, gold accuracy, current answers, median seconds per answer, confusion matrix and
    whether they look like a spammer. Likely spammers first, then by name."""
    label_names = [label.name for label in project.labels.all()]
    k = len(label_names)
    chance = 1.0 / k if k else 0.0

    times: dict[int, list[int]] = defaultdict(list)
    current = Annotation.objects.filter(
        project=project, superseded_by__isnull=True, label__isnull=False
    ).values_list("annotator_id", "time_on_task_ms")
    for annotator_id, ms in current.iterator(chunk_size=5000):
        times[annotator_id].append(ms)

    skills = {s.annotator_id: s for s in AnnotatorSkill.objects.filter(project=project)}
    users = get_user_model().objects.filter(pk__in=set(times) | set(skills))

    rows = []
    for user in users:
        skill = skills.get(user.pk)
        answers = len(times.get(user.pk, []))
        estimated = skill.estimated_accuracy if skill else None
        gold_answers = skill.gold_answers if skill else 0
        gold_correct = skill.gold_correct if skill else 0
        near_chance = chance + SPAMMER_MARGIN
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
                "likely_spammer": answers >= SPAMMER_MIN_ANSWERS
                and (
                    (estimated is not None and estimated <= near_chance)
                    or (
                        gold_answers >= SPAMMER_MIN_GOLD
                        and gold_correct / gold_answers <= near_chance
                    )
                ),
            }
        )
    rows.sort(key=lambda row: (not row["likely_spammer"], row["username"]))
    return rows
