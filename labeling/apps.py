from django.apps import AppConfig


class LabelingConfig(AppConfig):
    name = "labeling"
    verbose_name = "Labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the Celery app here makes tasks queued from web requests use its settings
        # without pulling Django into labeling/__init__.py (the consensus math stays Django-free).
        from labeling import celery  # noqa: F401
