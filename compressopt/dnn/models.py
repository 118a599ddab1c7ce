"""The models of the main job, written out (no torchvision).

* LeNet-300-100 (LeCun et al. 1998): a fully connected net ``d -> 300 -> 100 -> classes``
  with ReLU; d is the number of input pixels (784 on MNIST, 64 on scikit-learn's digits).
* LeNet-5, Caffe variant (the ``lenet.prototxt`` of Caffe's MNIST example, used by Han et al.
  2016 and the LC papers): conv 5×5 × 20 → max-pool 2 → conv 5×5 × 50 → max-pool 2 →
  fc 500 (ReLU) → fc classes; 431,080 parameters on 28×28 inputs with 10 classes.
* ResNet-20, the CIFAR-style residual net of He et al. 2016 (§4.2, option A shortcuts):
  269,722 parameters on 32×32×3 inputs with 10 classes.
* A small vision/text transformer classifier (:class:`TransformerClassifier`): patch or token
  embedding, pre-norm encoder layers, mean pooling, a linear head.

Image models take inputs of shape ``(N, C, H, W)`` (LeNet-300-100 flattens them), the text
transformer int64 token ids ``(N, L)`` or a tuple (ids, padding mask); all return logits of
shape ``(N, classes)``, float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "INPUT_SIZES",
    "MODELS",
    "LeNet5",
    "LeNet300",
    "ResNet20",
    "TransformerClassifier",
    "build_model",
    "count_parameters",
]


class LeNet300(nn.Module):
    """LeNet-300-100: ``fc1 (d→300), ReLU, fc2 (300→100), ReLU, fc3 (100→classes)``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one example, e.g. ``(1, 28, 28)``; ``d = prod(input_shape)``.
    num_classes : int
        Output logits.

    Notes
    -----
    ``(d·300 + 300) + (300·100 + 100) + (100·c + c)`` parameters: 266,610 for MNIST
    (266,200 weights, of which 5 % is the 13,310 kept by the LC pruning experiments).

    References
    ----------
    .. [1] LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
       recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> count_parameters(LeNet300((1, 28, 28), 10))
    266610
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        d = math.prod(input_shape)
        _check_positive(d, num_classes)
        self.fc1 = nn.Linear(d, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5, Caffe variant: conv 20, pool, conv 50, pool, fc 500, ReLU, fc classes.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)`` of one example.
    num_classes : int
    padding : int
        Zero padding of both convolutions. Caffe's net uses 0 (28×28 → 24 → 12 → 8 → 4, so
        fc1 sees 50·4·4 = 800 inputs); small images such as the 8×8 digits need 2.

    Raises
    ------
    ValueError
        The input is too small for two 5×5 convolutions and two 2×2 poolings at this padding.

    Notes
    -----
    On 28×28×1 inputs with 10 classes: 520 + 25,050 + 400,500 + 5,010 = 431,080 parameters,
    as in Han et al. 2016 (Table 1) and Carreira-Perpiñán & Idelbayev 2018.

    Examples
    --------
    >>> count_parameters(LeNet5((1, 28, 28), 10))
    431080
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int = 10, *, padding: int = 0
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"LeNet5 needs (C, H, W) inputs, got shape {tuple(input_shape)}")
        c, h, w = (int(s) for s in input_shape)
        _check_positive(c * h * w, num_classes)
        side = [h, w]
        for _ in range(2):  # conv 5x5 then max-pool 2x2 (floor)
            side = [(s + 2 * padding - 4) // 2 for s in side]
        if min(side) < 1:
            raise ValueError(
                f"LeNet5 with padding={padding} needs larger inputs than {h}x{w} "
                "(use padding=2 for 8x8 images)"
            )
        self.conv1 = nn.Conv2d(c, 20, 5, padding=padding)
        self.conv2 = nn.Conv2d(20, 50, 5, padding=padding)
        self.fc1 = nn.Linear(50 * side[0] * side[1], 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(self.conv1(x), 2)
        x = torch.max_pool2d(self.conv2(x), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def _check_positive(d: int, num_classes: int) -> None:
    if d < 1 or num_classes < 1:
        raise ValueError(f"need positive input size and classes, got {d} and {num_classes}")


def _image_shape(input_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or not all(isinstance(s, int) for s in input_shape):
        raise ValueError(f"{model} needs (C, H, W) inputs, got shape {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


class _BasicBlock(nn.Module):
    """conv3×3 (stride s) → BN → ReLU → conv3×3 → BN, plus the option-A shortcut, → ReLU.

    Option A (He et al. 2016, §3.3 and §4.2): where the block halves the resolution and
    doubles the channels, the shortcut is the input subsampled by 2 (``x[:, :, ::2, ::2]``)
    and zero-padded with the new channels (half before, half after); otherwise the identity.
    The shortcuts have no parameters.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, :: self.stride, :: self.stride] if self.stride != 1 else x
        if self.pad:
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class ResNet20(nn.Module):
    """ResNet-20 for 32×32 images (He et al. 2016, §4.2, n = 3, option A shortcuts).

    conv3×3 × 16 → BN → ReLU, then three stages of 3 basic blocks with 16, 32 and 64
    channels (the first block of stages 2 and 3 has stride 2), global average pooling and a
    fully connected layer: 6n + 2 = 20 weighted layers. Weights initialized as He et al.
    2015 (``kaiming_normal_``, fan-in); BN weights 1, biases 0.

    Parameters
    ----------
    input_shape : (C, H, W)
        Any C; 32×32 as in the paper (the net runs on any H, W >= 4 thanks to the global
        pooling; MNIST is padded to 32×32 by ``load_dataset(..., size=32)``).
    num_classes : int

    Raises
    ------
    ValueError
        `input_shape` is not (C, H, W), or is smaller than 4×4.

    Notes
    -----
    269,722 parameters on 3×32×32 inputs with 10 classes (0.27 M, He et al. Table 6):
    267,696 in the 19 convolutions (no biases), 650 in the fc layer, 1,376 in BN. The
    default parameter selection compresses the 268,336 weights of the convolutions and the
    fc layer (:func:`~compressopt.dnn.params.select_parameters`).

    References
    ----------
    .. [1] He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016.

    Examples
    --------
    >>> count_parameters(ResNet20((3, 32, 32), 10))
    269722
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape, "ResNet20")
        _check_positive(c * h * w, num_classes)
        if min(h, w) < 4:
            raise ValueError(f"ResNet20 needs inputs of at least 4x4, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for b in range(3):
                blocks.append(_BasicBlock(c_in, c_out, 2 if stage > 0 and b == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TransformerClassifier(nn.Module):
    """A small transformer classifier of images (patches) or token sequences.

    Embedding → learned position embedding → `depth` pre-norm encoder layers
    (:class:`torch.nn.TransformerEncoderLayer`, ``norm_first=True``: x + MHA(LN(x)), then
    x + MLP(LN(x)), GELU) → LayerNorm → mean over the tokens (padding excluded) → Linear.
    Images are cut into ``patch × patch`` patches embedded by a strided convolution (ViT,
    Dosovitskiy et al. 2021); token ids (``vocab_size`` given) by an :class:`~torch.nn.Embedding`.

    Parameters
    ----------
    input_shape : (C, H, W) for images; (L,) for token sequences (or ((L,), (L,)) for a
        tuple input of ids and mask).
    num_classes : int
    vocab_size : int, optional
        Number of token ids; given: a text classifier on int64 ids in [0, vocab_size).
    dim, depth, heads : model width (divisible by `heads`), encoder layers, attention heads.
    mlp_ratio : the MLP's hidden width is ``mlp_ratio·dim``.
    patch : side of the image patches; default 4 for images of side >= 16, else 2. H and
        W are cut down to multiples of it.
    dropout : of the encoder layers (default 0).

    Inputs
    ------
    images: float (N, C, H, W); text: int64 ids (N, L), or a tuple ``(ids, mask)`` with a
    bool (N, L) mask, True at padding positions (PyTorch's ``key_padding_mask``), which are
    ignored by the attention and the pooling. Shorter sequences than L are accepted.

    Raises
    ------
    ValueError
        A shape, size or setting that cannot work (the message says which).

    Notes
    -----
    Parameter selection (:func:`~compressopt.dnn.params.select_parameters`) compresses the
    patch convolution or the token embedding, every attention's ``in_proj_weight`` (the Q, K,
    V projections as one (3·dim, dim) tensor) and ``out_proj.weight``, the MLP weights and the
    head; position embeddings, LayerNorms and biases stay uncompressed.

    Examples
    --------
    >>> net = TransformerClassifier((1, 28, 28), 10)
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> txt = TransformerClassifier((12,), 3, vocab_size=50)
    >>> txt(torch.zeros(2, 12, dtype=torch.int64)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        input_shape: Sequence[int] | Sequence[Sequence[int]],
        num_classes: int = 10,
        *,
        vocab_size: int | None = None,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        patch: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) and not isinstance(input_shape[0], int):
            input_shape = tuple(input_shape[0])  # a tuple input: the ids' shape
        if min(dim, depth, heads, mlp_ratio) < 1 or dim % heads:
            raise ValueError(f"need positive dim, depth, heads, mlp_ratio with dim % heads == 0, "
                             f"got {dim}, {depth}, {heads}, {mlp_ratio}")
        _check_positive(math.prod(input_shape), num_classes)  # type: ignore[arg-type]
        self.text = vocab_size is not None
        self.embed: nn.Module
        if self.text:
            if len(input_shape) != 1 or vocab_size < 1:  # type: ignore[operator]
                raise ValueError(f"a text transformer needs (L,) inputs and vocab_size >= 1, "
                                 f"got {tuple(input_shape)} and {vocab_size}")
            tokens = int(input_shape[0])  # type: ignore[arg-type]
            self.embed = nn.Embedding(vocab_size, dim)  # type: ignore[arg-type]
        else:
            c, h, w = _image_shape(input_shape, "TransformerClassifier")  # type: ignore[arg-type]
            p = patch if patch is not None else (4 if min(h, w) >= 16 else 2)
            if not 1 <= p <= min(h, w):
                raise ValueError(f"patch must be in [1, {min(h, w)}], got {p}")
            tokens = (h // p) * (w // p)
            self.embed = nn.Conv2d(c, dim, p, stride=p)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, mlp_ratio * dim, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        mask = None
        if not isinstance(x, torch.Tensor):
            x, mask = x
        if self.text:
            if x.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"a text transformer takes int64 token ids, got {x.dtype}")
            h = self.embed(x)
        else:
            h = torch.flatten(self.embed(x), 2).transpose(1, 2)  # (N, tokens, dim)
        if h.shape[1] > self.pos.shape[1]:
            raise ValueError(f"{h.shape[1]} tokens, more than the {self.pos.shape[1]} the "
                             "model was built for")
        h = h + self.pos[:, : h.shape[1]]
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=mask)
        h = self.norm(h)
        if mask is None:
            return self.head(h.mean(dim=1))
        keep = (~mask).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0))


MODELS = {
    "lenet300": LeNet300,
    "lenet5": LeNet5,
    "resnet20": ResNet20,
    "transformer": TransformerClassifier,
}

#: the image side a model was designed for; the job pads smaller images to it
#: (``load_dataset(name, data_dir, size=INPUT_SIZES.get(model))``)
INPUT_SIZES = {"resnet20": 32}


def build_model(
    name: str,
    input_shape: Sequence[int] | Sequence[Sequence[int]],
    num_classes: int,
    *,
    vocab_size: int | None = None,
) -> nn.Module:
    """A model of :data:`MODELS` by name, sized for the data.

    LeNet-5 gets padding 2 when the images are smaller than 28×28 (the 8×8 digits), so
    that two 5×5 convolutions fit; on MNIST it is Caffe's net exactly. ``"transformer"``
    is a patch classifier of images, or with `vocab_size` (the data hold int64 token ids,
    see :attr:`~compressopt.dnn.data.Splits.vocab_size`) a text classifier.

    Raises
    ------
    ValueError
        Unknown `name`, token data (`vocab_size`) for an image model, or as the model's
        constructor.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name == "transformer":
        return TransformerClassifier(input_shape, num_classes, vocab_size=vocab_size)
    if vocab_size is not None:
        raise ValueError(f"model {name!r} takes images; the data set holds token ids "
                         "(use --model transformer)")
    if name == "lenet5":
        padding = 0 if min(input_shape[-2:]) >= 28 else 2  # type: ignore[type-var]
        return LeNet5(input_shape, num_classes, padding=padding)  # type: ignore[arg-type]
    return MODELS[name](input_shape, num_classes)  # type: ignore[arg-type]


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of `model` (weights, biases, everything)."""
    return sum(p.numel() for p in model.parameters())
