"""What ``bench/load.py`` checks in the database after a run (PostgreSQL or SQLite).

Two sums matter most: **double hand-outs** (an item leased to the same inspector twice, more
open leases on an item than the slots it still needs, more answers than its maximum, or an
answer arriving after the item was decided, which only a slot leased beyond need can produce)
and **answers stored twice** (an inspector with two current answers on one item, or one lease
answered twice)."""

DOUBLE_HAND_OUTS = (
    "item_leased_twice_to_one_inspector",
    "items_with_open_leases_beyond_need",
    "items_over_max_answers",
    "answers_after_item_closed",
)
STORED_TWICE = ("inspector_answered_an_item_twice", "lease_answered_twice")

QUERIES = {
    "inspector_answered_an_item_twice": (
        "SELECT count(*) FROM (SELECT item_id, annotator_id FROM labeling_annotation a "
        "WHERE project_id = %s AND label_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM labeling_annotation b WHERE b.supersedes_id = a.id) "
        "GROUP BY item_id, annotator_id HAVING count(*) > 1) t"
    ),
    "lease_answered_twice": (
        "SELECT count(*) FROM (SELECT assignment_id FROM labeling_annotation "
        "WHERE project_id = %s AND label_id IS NOT NULL AND assignment_id IS NOT NULL "
        "GROUP BY assignment_id HAVING count(*) > 1) t"
    ),
    "item_leased_twice_to_one_inspector": (
        "SELECT count(*) FROM (SELECT item_id, annotator_id FROM labeling_assignment "
        "WHERE project_id = %s GROUP BY item_id, annotator_id HAVING count(*) > 1) t"
    ),
    "items_over_max_answers": (
        "SELECT count(*) FROM (SELECT a.item_id FROM labeling_annotation a "
        "JOIN labeling_project p ON p.id = a.project_id WHERE a.project_id = %s "
        "AND a.label_id IS NOT NULL GROUP BY a.item_id, p.max_answers "
        "HAVING count(*) > p.max_answers) t"
    ),
    "answers_after_item_closed": (
        "SELECT count(*) FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id "
        "WHERE a.project_id = %s AND a.label_id IS NOT NULL AND i.finished_at IS NOT NULL "
        "AND a.created_at > i.finished_at"
    ),
    # CASE rather than GREATEST: SQLite has no GREATEST.
    "items_with_open_leases_beyond_need": (
        "SELECT count(*) FROM (SELECT i.id FROM labeling_item i "
        "JOIN labeling_project p ON p.id = i.project_id "
        "JOIN labeling_assignment s ON s.item_id = i.id AND s.status = 'open' "
        "WHERE i.project_id = %s GROUP BY i.id, p.min_answers, i.answer_count "
        "HAVING count(*) > CASE WHEN p.min_answers - i.answer_count > 1 "
        "THEN p.min_answers - i.answer_count ELSE 1 END) t"
    ),
}


def database_checks(slug: str, accepted: list[int]) -> dict:
    from django.db import connection

    from labeling.models import Annotation, Project

    project = Project.objects.get(slug=slug)
    found = Annotation.objects.filter(pk__in=accepted).count() if accepted else 0
    labelled = Annotation.objects.filter(project=project, label__isnull=False).count()
    checks: dict = {
        "answers_accepted": len(accepted),
        "accepted_answers_missing": len(accepted) - found,
        "answer_rows_without_a_201": labelled - found,
    }
    with connection.cursor() as cursor:
        for name, sql in QUERIES.items():
            cursor.execute(sql, [project.pk])
            checks[name] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT status, count(*) FROM labeling_item WHERE project_id = %s GROUP BY status",
            [project.pk],
        )
        checks["item_statuses"] = dict(cursor.fetchall())
    checks["double_hand_outs"] = sum(checks[name] for name in DOUBLE_HAND_OUTS)
    checks["answers_stored_twice"] = sum(checks[name] for name in STORED_TWICE)
    return checks


def anomalies(checks: dict) -> int:
    """Every count that must be zero, added up (the two sums above are made of these)."""
    counted = (*DOUBLE_HAND_OUTS, *STORED_TWICE, "accepted_answers_missing")
    return sum(checks[name] for name in counted) + checks["answer_rows_without_a_201"]
