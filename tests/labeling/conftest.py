"""Fixtures for the labeling tests: a tiny model for the reviews project's four labels, trained
once per module and brought into a project the supported way (``install_model``)."""

from tests.machine.fixtures import review_checkpoint  # noqa: F401
