"""Which parameters of a model are compressed, and moving values in and out of a model.

By default the weights of the convolutional, fully connected, embedding and attention layers
are compressed (the setting of every LC paper, extended to transformers); biases and
normalization layers stay uncompressed and are trained inside the L step. Name patterns
(``fnmatch`` globs over ``model.named_parameters()`` names, e.g. ``"fc*.weight"``) override
the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

import torch
from torch import nn

from compressopt.errors import ShapeMismatchError

__all__ = [
    "ATTENTION_WEIGHTS",
    "COMPRESSIBLE_LAYERS",
    "check_like",
    "read_parameters",
    "select_parameters",
    "write_parameters",
]

#: layer types whose ``weight`` is compressed by default
COMPRESSIBLE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.EmbeddingBag,
)

#: :class:`torch.nn.MultiheadAttention` holds its input projections as parameters of its
#: own, not in a Linear: ``in_proj_weight`` (Q, K, V stacked, (3·E, E)), or
#: ``q/k/v_proj_weight`` when the key or value width differs from E. They are weights of
#: linear maps like any Linear's and are compressed by default (as one tensor each); its
#: ``out_proj`` is a Linear and is selected as such.
ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def _default_weights(model: nn.Module) -> set[int]:
    """ids of the parameters compressed by default (see :func:`select_parameters`)."""
    ids = set()
    for m in model.modules():
        names = ("weight",) if isinstance(m, COMPRESSIBLE_LAYERS) else ()
        if isinstance(m, nn.MultiheadAttention):
            names = ATTENTION_WEIGHTS
        for name in names:
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                ids.add(id(p))
    return ids


def _as_patterns(p: str | Iterable[str] | None) -> tuple[str, ...]:
    if p is None:
        return ()
    return (p,) if isinstance(p, str) else tuple(p)


def select_parameters(
    model: nn.Module,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The parameters to compress, ``{name: parameter}`` in ``named_parameters`` order.

    Parameters
    ----------
    model : torch.nn.Module
    include : glob pattern(s), optional
        Select the parameters whose name matches any pattern (``fnmatch``, case-sensitive),
        instead of the default: the ``weight`` of every :data:`COMPRESSIBLE_LAYERS` module
        (Linear, Conv1d/2d/3d and their transposes, Embedding, EmbeddingBag) and the input
        projections :data:`ATTENTION_WEIGHTS` of every MultiheadAttention; biases, norm
        layers and bare parameters (position embeddings, class tokens) are left out.
    exclude : glob pattern(s), optional
        Then drop the parameters whose name matches any of these.

    Returns
    -------
    dict name -> torch.nn.Parameter
        The model's own parameter objects (not copies). Parameters shared by several modules
        appear once.

    Raises
    ------
    ValueError
        A pattern matches no parameter (a typo would otherwise compress nothing silently),
        or nothing is left to compress.

    Examples
    --------
    >>> from compressopt.dnn.models import LeNet300
    >>> net = LeNet300((1, 8, 8), 10)
    >>> list(select_parameters(net))
    ['fc1.weight', 'fc2.weight', 'fc3.weight']
    >>> list(select_parameters(net, include="fc*", exclude="*.bias"))
    ['fc1.weight', 'fc2.weight', 'fc3.weight']
    >>> list(select_parameters(net, exclude="fc3.*"))
    ['fc1.weight', 'fc2.weight']
    """
    named = dict(model.named_parameters())
    inc, exc = _as_patterns(include), _as_patterns(exclude)
    for pat in (*inc, *exc):
        if not any(fnmatchcase(n, pat) for n in named):
            raise ValueError(
                f"pattern {pat!r} matches no parameter of the model; names: {list(named)}"
            )
    if inc:
        chosen = [n for n in named if any(fnmatchcase(n, p) for p in inc)]
    else:
        weights = _default_weights(model)
        chosen = [n for n, p in named.items() if id(p) in weights]
    chosen = [n for n in chosen if not any(fnmatchcase(n, p) for p in exc)]
    if not chosen:
        raise ValueError("no parameter left to compress (check include/exclude patterns)")
    return {n: named[n] for n in chosen}


def check_like(
    w: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor], what: str = "w"
) -> None:
    """Raise unless `w` has exactly the names, shapes and device of `params`.

    Raises
    ------
    ShapeMismatchError
        Names differ, a shape differs, or a tensor is on another device.
    TypeError
        A value is not a torch tensor.
    """
    if set(w) != set(params):
        raise ShapeMismatchError(
            f"{what} names differ from the compressed parameters: "
            f"missing {sorted(set(params) - set(w))}, unexpected {sorted(set(w) - set(params))}"
        )
    for n, p in params.items():
        x = w[n]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what}[{n!r}] must be a torch.Tensor, got {type(x).__name__}")
        if x.shape != p.shape:
            raise ShapeMismatchError(
                f"{what}[{n!r}] has shape {tuple(x.shape)}, expected {tuple(p.shape)}"
            )
        if x.device != p.device:
            raise ShapeMismatchError(f"{what}[{n!r}] is on {x.device}, the model on {p.device}")


def read_parameters(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh copies ``{name: p.detach().clone()}``, on the parameters' device."""
    return {n: p.detach().clone() for n, p in params.items()}


@torch.no_grad()
def write_parameters(params: Mapping[str, torch.Tensor], w: Mapping[str, torch.Tensor]) -> None:
    """Copy `w` into the parameters in place (``p.copy_(w[name])``); `w` is not modified.

    Raises
    ------
    ShapeMismatchError, TypeError
        As :func:`check_like`.
    """
    check_like(w, params)
    for n, p in params.items():
        p.copy_(w[n])
