"""How many machine labels of each class to train on, so that no class swamps the others.

The classes a model is surest of are the ones it auto-labels most, so its machine labels are
heavily skewed towards the easy classes, while human labels lean the other way (humans label
what the model was unsure of). Each class's total (human + machine) is capped at the larger of
the biggest human class and the mean total over classes: a class short of labels keeps every
machine label it has, the easy classes are cut back to the others' size.
"""

from __future__ import annotations

import numpy as np


def machine_label_quota(human_counts: np.ndarray, machine_counts: np.ndarray) -> np.ndarray:
    """Per class, how many of its available machine labels to use."""
    human = np.asarray(human_counts, dtype=np.int64)
    machine = np.asarray(machine_counts, dtype=np.int64)
    if not len(human):
        return machine
    cap = int(max(human.max(), (human + machine).mean()))
    return np.minimum(machine, np.maximum(cap - human, 0))
