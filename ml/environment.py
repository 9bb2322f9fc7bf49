"""A description of the machine and software a run used, for benchmark and training records."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    """The processor's model name: the same benchmark differs by more than its goals' margins
    between two 2-core machines of different makes."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine_info() -> dict:
    """CPU, core count, load, memory and library versions (timings mean little without them)."""
    # Imported here so that cpu_model() stays cheap for the load benchmark's torch-free client.
    import numpy as np
    import PIL
    import timm
    import torch

    cpu = cpu_model()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": load,
        "memory_gib": mem_gib,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }
