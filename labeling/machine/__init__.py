"""The machine side's Django wiring: everything that loads, runs, judges or changes a model for a
project. ``ml/`` holds the plain PyTorch and numpy code; this package gives it the project's
images, labels and settings, and stores what comes back. One entry per use case:

- predict and route a batch of new images: ``predict.items_predict`` (re-route the waiting queue:
  ``predict.project_repredict``);
- the thresholds in force for a model: ``predictors.project_thresholds``;
- the live audit of auto-labels: ``audit.audit_record``, ``threshold_changes.threshold_resume``;
- threshold tuning for admins: ``threshold_tuning.threshold_curve``,
  ``threshold_tuning.threshold_preview``, ``threshold_changes.thresholds_save``;
- training jobs: ``training.training_start``, ``training.training_run``;
- promotion: ``promotion.promotion_gate``, ``promotion.model_promote``,
  ``promotion.model_rollback``.

Celery tasks (``tasks``) take ids and call one of these. The package is imported module by
module (``from labeling.machine.predict import items_predict``): nothing is re-exported here, so
importing one use case never drags in the others.
"""
