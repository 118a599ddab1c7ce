"""The torch adapter: the only subpackage that imports torch."""

import torch  # noqa: F401  (this subpackage requires torch)
