"""The study: what a run is (config, presets), how runs are computed, stored and swept (compute,
run_store, sweep, executors), and what is measured (analysis, curves, mechanism, aggregate); the run
format is read by run_folder. The public entry points are ``icgt.run_experiment``, ``icgt.run_sweep``
and ``icgt.load_run``.
"""

from .._lazy import lazy_attributes

__getattr__ = lazy_attributes(__name__)  # icgt.study.config, icgt.study.curves, ... on first use
