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
* :class:`Distillation`, a knowledge-distillation term from the reference added to L;
* :class:`ResNet20` and :class:`TransformerClassifier`; the user's own model and data
  (:func:`build_user_model`, :func:`load_user_dataset`); several processes
  (:mod:`compressopt.dnn.distributed`).
* :func:`save_compressed` / :func:`load_compressed`: the compressed-model file (Θ, not Δ(Θ)).
"""

import torch  # noqa: F401  (this subpackage requires torch)

from compressopt.dnn.api import CompressionResult, JobStopped, compress
from compressopt.dnn.compressed import (
    CompressedModel,
    compressed_bytes,
    load_compressed,
    save_compressed,
)
from compressopt.dnn.data import (
    Splits,
    check_splits,
    load_dataset,
    load_digits,
    load_mnist,
    make_loader,
    read_idx,
)
from compressopt.dnn.distill import Distillation
from compressopt.dnn.job import run_job
from compressopt.dnn.methods import METHODS, Method, build_compression, register
from compressopt.dnn.models import (
    LeNet5,
    LeNet300,
    ResNet20,
    TransformerClassifier,
    build_model,
    count_parameters,
)
from compressopt.dnn.oracle import LStepSchedule, MinibatchOracle, TorchOracle, clipped_lr
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.dnn.train import cosine_lr, evaluate, train
from compressopt.dnn.user import build_user_model, load_factory, load_user_dataset
from compressopt.options import JobConfig

__all__ = [
    "METHODS",
    "CompressedModel",
    "CompressionResult",
    "Distillation",
    "JobConfig",
    "JobStopped",
    "LStepSchedule",
    "LeNet5",
    "LeNet300",
    "Method",
    "MinibatchOracle",
    "ResNet20",
    "Splits",
    "TorchOracle",
    "TransformerClassifier",
    "build_compression",
    "build_model",
    "build_user_model",
    "check_splits",
    "clipped_lr",
    "compress",
    "compressed_bytes",
    "cosine_lr",
    "count_parameters",
    "evaluate",
    "load_compressed",
    "load_dataset",
    "load_digits",
    "load_factory",
    "load_mnist",
    "load_user_dataset",
    "make_loader",
    "read_idx",
    "read_parameters",
    "register",
    "run_job",
    "save_compressed",
    "select_parameters",
    "train",
    "write_parameters",
]
