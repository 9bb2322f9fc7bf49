"""The whole loop, simulated end to end: images arrive through the upload API, a real Celery
worker predicts, routes and retrains, and a crowd of simulated inspectors answers through the
same queue endpoints the inspector page uses. Driven by ``manage.py simulate_loop`` and
``bench/loop.py``; see docs/loop.md.

The truth (Fashion-MNIST's labels) stays here, in the simulator. The system only ever sees it as
seeded gold items (an admin's act, through ``gold_item_add``) and as an expert's resolutions of
disputed items (through the resolve endpoint). Everything else it learns from the crowd.
"""

from labeling.loop.crowd import LoopConfig
from labeling.loop.driver import Loop
from labeling.loop.measures import invariants
from labeling.loop.processes import free_port, gunicorn_argv, process, wait_http, worker_argv

__all__ = [
    "Loop",
    "LoopConfig",
    "free_port",
    "gunicorn_argv",
    "invariants",
    "process",
    "wait_http",
    "worker_argv",
]
