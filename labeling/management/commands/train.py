from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.errors import ServiceError
from labeling.machine.training import training_run, training_start
from labeling.models import Project


class Command(BaseCommand):
    help = "Train a model from the project's human labels (here, with a progress bar, or --queue)."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--queue", action="store_true", help="hand the training to a worker")
        parser.add_argument("--time-budget", type=float, help="seconds for the whole search")
        parser.add_argument("--input-size", type=int)
        parser.add_argument("--epochs", type=int, nargs="+")
        parser.add_argument("--trainable-blocks", type=int, nargs="+")
        parser.add_argument("--learning-rates", type=float, nargs="+")

    def handle(self, *args, project: str, queue: bool, **opts):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        keys = ("time_budget", "input_size", "epochs", "trainable_blocks", "learning_rates")
        overrides = {
            k if k != "time_budget" else "time_budget_s": opts[k] for k in keys if opts.get(k)
        }
        try:
            model = training_start(
                project=target, reason="command", overrides=overrides, queue=queue
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        if queue:
            self.stdout.write(f"Queued training of {target.slug} v{model.version}.")
            return
        with tqdm(total=100, desc=f"v{model.version}", unit="%", disable=None) as bar:

            def show(progress):
                if progress.phase == "training":
                    step = (
                        f"trial {progress.trial}/{progress.trials} "
                        f"epoch {progress.epoch}/{progress.epochs}"
                    )
                else:
                    step = progress.message
                left = progress.eta_s if progress.eta_s is not None else progress.eta_max_s
                if left is not None and progress.phase != "done":
                    word = "about" if progress.eta_s is not None else "at most"
                    step += f", {word} {left:.0f} s left"
                bar.set_postfix_str(step[:70])
                bar.update(max(0.0, float(progress.percent) - bar.n))

            model = training_run(model_version_id=model.pk, progress=show)
        if model.status == "failed":
            raise CommandError(f"Training failed: {model.status_reason}")
        metrics = model.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"v{model.version} {model.status}: accuracy {metrics.get('accuracy', 0):.3f}, "
                f"macro F1 {metrics.get('macro_f1', 0):.3f}, ECE {metrics.get('ece', 0):.3f}. "
                f"{model.status_reason}"
            )
        )
