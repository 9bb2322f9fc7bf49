from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the Celery app here makes tasks queued from web requests use its settings
        # without pulling Django into labeling/__init__.py (the consensus math stays Django-free).
        # The task modules register every job that labeling.dispatch queues by name, in web
        # processes and workers alike (Celery's autodiscovery only finds ``labeling.tasks``).
        from labeling import (
            celery,  # noqa: F401
            tasks,  # noqa: F401
        )
        from labeling.embeddings import tasks as embedding_tasks  # noqa: F401
        from labeling.machine import tasks as machine_tasks  # noqa: F401
