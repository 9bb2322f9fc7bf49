"""Training progress in phases, with an estimate of the time left that does not lie.

A training goes through *preparing* (every image decoded once and pushed through the frozen
lower blocks), *training* (trial i of n, epoch j of m, each trial a point of the search grid),
*calibrating* (temperature, metrics, thresholds, the checkpoint) and *done*. The caller (the
worker's job, the ``train`` command) may add a phase of its own after that, such as scoring the
held-out images.

The estimate only counts what has been measured. While preparing, the speed of the search is
unknown: there is no estimate (``eta_s`` None), only the bound the time budget gives
(``eta_max_s``). From the first epoch on, the time left is the rest of this trial plus every
later trial at the measured seconds per epoch, capped by the time budget (the search stops
there), plus calibrating, estimated from the same measurement. An earlier version reported only
the current trial's remaining epochs, and said "about 1 s left" with minutes still to go.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PHASES = ("preparing", "training", "calibrating", "done")


@dataclass(frozen=True)
class TrainingProgress:
    phase: str  # one of PHASES
    percent: float  # 0..100, never going back
    eta_s: float | None  # estimated seconds left in ml.training.train; None while unknown
    eta_max_s: float | None  # at most this many (the time budget's bound); None when done
    trial: int = 0
    trials: int = 0
    epoch: int = 0
    epochs: int = 0
    done: int = 0  # images prepared so far (preparing)
    total: int = 0  # images to prepare
    seconds_per_image: float | None = None  # measured while preparing (decode + frozen trunk)
    message: str = ""


ProgressCallback = Callable[[TrainingProgress], None]


class ProgressReporter:
    """Turns what ``ml.training`` measures into :class:`TrainingProgress` for a callback."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        *,
        budget_s: float,
        epochs_per_trial: Sequence[int],
        n_train: int,
        n_val: int,
        started: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.callback = callback
        self.budget_s = budget_s
        self.plan = list(epochs_per_trial)
        self.n_train = max(1, n_train)
        self.n_val = n_val
        self.clock = clock
        self.started = clock() if started is None else started
        self.seconds_per_image: float | None = None
        self.seconds_per_epoch: float | None = None
        self.percent = 0.0

    def _elapsed(self) -> float:
        return max(0.0, self.clock() - self.started)

    def _finishing_s(self) -> float:
        """Calibrating: a pass over the validation features plus fitting and saving, estimated
        from one epoch's cost scaled to the validation set."""
        if self.seconds_per_epoch is None:
            return 0.0
        return 2.0 * self.seconds_per_epoch * self.n_val / self.n_train + 1.0

    def _budget_left(self) -> float:
        return max(0.0, self.budget_s - self._elapsed())

    def _emit(self, phase: str, eta: float | None, eta_max: float | None, **fields) -> None:
        elapsed = self._elapsed()
        horizon = eta if eta is not None else eta_max
        if phase == "done":
            percent = 100.0
        elif horizon is not None and elapsed + horizon > 0:
            percent = min(99.0, 100.0 * elapsed / (elapsed + horizon))
        else:
            percent = self.percent
        self.percent = max(self.percent, percent)
        if self.callback is not None:
            self.callback(
                TrainingProgress(
                    phase=phase,
                    percent=round(self.percent, 1),
                    eta_s=None if eta is None else max(0.0, eta),
                    eta_max_s=None if eta_max is None else max(0.0, eta_max),
                    trials=len(self.plan),
                    seconds_per_image=self.seconds_per_image,
                    **fields,
                )
            )

    def preparing(self, done: int, total: int) -> None:
        if done:
            self.seconds_per_image = self._elapsed() / done
        left = (self.seconds_per_image or 0.0) * (total - done)
        self._emit(
            "preparing",
            None,
            max(left, self._budget_left()),
            done=done,
            total=total,
            message=f"preparing {done:,} of {total:,} images",
        )

    def epoch_done(
        self, trial: int, epoch: int, epochs: int, seconds_per_epoch: float, message: str
    ) -> None:
        """After epoch ``epoch`` of ``epochs`` in trial ``trial`` (1-based)."""
        self.seconds_per_epoch = seconds_per_epoch
        later = sum(self.plan[trial:])  # epochs of the trials still to come
        search_left = min((epochs - epoch + later) * seconds_per_epoch, self._budget_left())
        eta = search_left + self._finishing_s()
        self._emit(
            "training",
            eta,
            self._budget_left() + self._finishing_s(),
            trial=trial,
            epoch=epoch,
            epochs=epochs,
            message=message,
        )

    def calibrating(self) -> None:
        eta = self._finishing_s()
        self._emit(
            "calibrating",
            eta,
            eta,
            trial=len(self.plan),
            message="calibrating confidences, choosing thresholds, saving the model",
        )

    def done(self, message: str) -> None:
        self._emit("done", 0.0, 0.0, trial=len(self.plan), message=message)
