"""Files on disk, torch-free: the compressed-model format and the state codec.

* :mod:`~compressopt.storage.model_file`: a compressed model stores Θ, not Δ(Θ): one small
  JSON record per tensor's scheme plus bit-packed / entropy-coded uint8 parts, in a
  safetensors container (no pickle): :func:`save_theta`, :func:`load_theta`,
  :func:`read_model`, :func:`inspect`, :func:`file_accounting`, :func:`check_model`,
  :func:`export_dense`;
* :mod:`~compressopt.storage.schemes`: one codec per kind of Θ, in one registry
  (:data:`~compressopt.storage.schemes.CODECS`);
* :mod:`~compressopt.storage.codecs`: bit packing, positions (bitmask, gaps with fillers,
  entropy-coded gaps), the ANS stage, the floor ``log2 C(n, nnz)``;
* :mod:`~compressopt.storage.tree`: lossless encoding of nested state (the coordinators'
  states and histories, Θ) as safetensors tensors plus a JSON skeleton, for checkpoints;
* :mod:`compressopt.storage.atomic`: every output is written as a transaction (temporary
  name, fsync, rename; the run's report last, naming its files with sizes and SHA-256).

This subpackage never imports torch; :mod:`compressopt.dnn` adds the glue to ``nn.Module``.
"""

from compressopt.storage.model_file import (
    FORMAT,
    VERSION,
    ModelFile,
    check_model,
    export_dense,
    file_accounting,
    inspect,
    load_theta,
    read_model,
    save_theta,
    theta_to_bytes,
)
from compressopt.storage.tree import (
    decode_tree,
    encode_tree,
    load_tree,
    register_array_hook,
    register_type,
    save_tree,
    tree_from_bytes,
    tree_to_bytes,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "ModelFile",
    "check_model",
    "decode_tree",
    "encode_tree",
    "export_dense",
    "file_accounting",
    "inspect",
    "load_theta",
    "load_tree",
    "read_model",
    "register_array_hook",
    "register_type",
    "save_theta",
    "save_tree",
    "theta_to_bytes",
    "tree_from_bytes",
    "tree_to_bytes",
]
