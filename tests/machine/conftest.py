"""Fixtures for the machine side's Django wiring: a tiny trained checkpoint shared per module,
and the ml tests' small generated image sets and thread limit."""

from tests.machine.fixtures import tiny_checkpoint  # noqa: F401
from tests.ml.conftest import _two_threads, shape_samples  # noqa: F401
