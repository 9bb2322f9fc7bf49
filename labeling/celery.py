"""The Celery app; workers start with ``celery -A labeling worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

app = Celery("labeling")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
