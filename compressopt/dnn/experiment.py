"""The main job under its earlier module name (benchmarks and users import from here).

The job now lives in :mod:`compressopt.dnn.job` (:func:`run_job`, the command line's steps)
and :mod:`compressopt.dnn.api` (:func:`~compressopt.dnn.api.compress`, the library's front
door); its settings in :mod:`compressopt.options`.
"""

from compressopt.dnn.api import layer_table, lstep_optimizer
from compressopt.dnn.job import run_job
from compressopt.options import DEFAULTS, JobConfig, TrainingDefaults, defaults_for

__all__ = ["DEFAULTS", "JobConfig", "TrainingDefaults", "defaults_for", "layer_table",
           "lstep_optimizer", "run_job"]
