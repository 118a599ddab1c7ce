"""The torch adapter: the only subpackage of compressopt that imports torch.

* :class:`TorchOracle` wraps a model, a loss, a data loader and an optimizer as the loss
  oracle of the coordinators (value, gradient, and the L step with the clipped learning rate);
* :func:`select_parameters` picks the compressed parameters (Conv/Linear weights by default);
  :func:`read_parameters` / :func:`write_parameters` move values out of and into a model;
* :func:`compress`, the front door: compress any ``nn.Module`` in one call
  (:class:`CompressionResult`);
* :class:`LeNet300`, :class:`LeNet5` and the data sets (:func:`load_digits`,
  :func:`load_mnist`, :func:`read_idx`) of the main job, :func:`run_job`, which
  ``compressopt compress`` runs;
* :class:`Distillation`, a knowledge-distillation term from the reference added to L.
"""

import torch  # noqa: F401  (this subpackage requires torch)

from compressopt.dnn.api import CompressionResult, JobStopped, compress
from compressopt.dnn.data import (
    Splits,
    load_dataset,
    load_digits,
    load_mnist,
    make_loader,
    read_idx,
)
from compressopt.dnn.distill import Distillation
from compressopt.dnn.job import run_job
from compressopt.dnn.methods import METHODS, Method, build_compression, register
from compressopt.dnn.models import LeNet5, LeNet300, build_model, count_parameters
from compressopt.dnn.oracle import LStepSchedule, MinibatchOracle, TorchOracle, clipped_lr
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.dnn.train import cosine_lr, evaluate, train
from compressopt.options import JobConfig

__all__ = [
    "METHODS",
    "CompressionResult",
    "Distillation",
    "JobConfig",
    "JobStopped",
    "LStepSchedule",
    "LeNet5",
    "LeNet300",
    "Method",
    "MinibatchOracle",
    "Splits",
    "TorchOracle",
    "build_compression",
    "build_model",
    "clipped_lr",
    "compress",
    "cosine_lr",
    "count_parameters",
    "evaluate",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "make_loader",
    "read_idx",
    "read_parameters",
    "register",
    "run_job",
    "select_parameters",
    "train",
    "write_parameters",
]
