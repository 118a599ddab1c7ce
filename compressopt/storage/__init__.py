"""Files on disk, torch-free: the compressed-model format and the run outputs.

* a compressed model stores Θ, not Δ(Θ): one small JSON record per tensor's scheme plus
  bit-packed uint8 buffers, in a safetensors container (no pickle);
* :mod:`compressopt.storage.atomic`: every output is written as a transaction (temporary
  name, fsync, rename; the run's report last, naming its files with sizes and SHA-256).

This subpackage never imports torch; :mod:`compressopt.dnn` adds the glue to ``nn.Module``.
"""
