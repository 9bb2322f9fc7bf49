"""The simulation harness, kept out of the production packages: a seeded crowd of simulated
Fashion-MNIST inspectors (``crowd_model``, plain numpy) and the whole loop driven end to end
(``driver``): images arrive through the upload API, a real Celery worker predicts, routes and
retrains, and simulated inspectors (``crowd``) answer through the same queue endpoints the
inspector page uses. ``measures`` checks invariants and sums the figures; ``processes`` starts
the worker and web server. Used by ``manage.py simulate_loop``, ``bench/loop.py``,
``bench/consensus.py`` and the tests; see docs/loop.md.

The truth (Fashion-MNIST's labels) stays here, in the simulator. The system only ever sees it as
seeded gold items (an admin's act, through ``gold_item_add``) and as an expert's resolutions of
disputed items (through the resolve endpoint). Everything else it learns from the crowd.

A Django app only so that ``simulate_loop`` is a management command; it has no models. Modules
are imported one by one (``from simulation.driver import Loop``): this file imports nothing, so
the app loads before Django's models are ready.
"""
