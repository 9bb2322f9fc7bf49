"""Celery tasks of the model side. Each takes ids, calls a service, and is safe to retry."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from ml import services


@shared_task(
    bind=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def predict_items(self, item_ids: list[int]) -> dict:
    """Predict and route a batch of items (idempotent: already-routed items are left alone)."""
    return services.items_predict(item_ids=item_ids)
