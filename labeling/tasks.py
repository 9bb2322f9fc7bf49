"""Periodic and queued jobs of the human side. Tasks take ids and call a service."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labeling.models import Project
from labeling.queue import leases_expire
from labeling.refit import project_refit

RETRY = {"autoretry_for": (OperationalError, InterfaceError), "retry_backoff": 2, "max_retries": 5}


@shared_task(**RETRY)
def expire_leases() -> int:
    return leases_expire()


@shared_task(**RETRY)
def refit_project_trust(project_id: int) -> dict:
    project = Project.objects.filter(pk=project_id).first()
    return project_refit(project=project) if project else {}


@shared_task
def refit_all_projects() -> int:
    ids = list(Project.objects.filter(archived_at__isnull=True).values_list("pk", flat=True))
    for project_id in ids:
        refit_project_trust.delay(project_id)
    return len(ids)
