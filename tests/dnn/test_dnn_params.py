"""Parameter selection (defaults and patterns) and moving values in and out of a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compressopt.dnn.models import LeNet5, LeNet300, ResNet20, TransformerClassifier
from compressopt.dnn.params import read_parameters, select_parameters, write_parameters
from compressopt.errors import ShapeMismatchError


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(4, 2)
        self.ln = nn.LayerNorm(2)
        self.scale = nn.Parameter(torch.ones(2))  # a bare parameter: not compressed by default


def test_default_selects_conv_linear_and_embedding_weights_only():
    sel = select_parameters(Mixed())
    assert list(sel) == ["conv.weight", "emb.weight", "head.weight"]
    m = Mixed()
    sel = select_parameters(m)
    assert sel["conv.weight"] is m.conv.weight  # the model's own objects, not copies


def test_lenets_default_selection():
    assert list(select_parameters(LeNet300((1, 28, 28), 10))) == [
        "fc1.weight", "fc2.weight", "fc3.weight"
    ]
    assert list(select_parameters(LeNet5((1, 28, 28), 10))) == [
        "conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"
    ]


def test_include_and_exclude_patterns():
    m = Mixed()
    assert list(select_parameters(m, include="*.bias")) == [
        "conv.bias", "bn.bias", "head.bias", "ln.bias"
    ]
    # named_parameters order: a module's own parameters before its children's
    assert list(select_parameters(m, include=["emb.*", "scale"])) == ["scale", "emb.weight"]
    assert list(select_parameters(m, exclude="conv.*")) == ["emb.weight", "head.weight"]
    assert list(select_parameters(m, include="*", exclude=["bn.*", "ln.*", "*.bias"])) == [
        "scale", "conv.weight", "emb.weight", "head.weight"
    ]


def test_bad_patterns_raise():
    m = Mixed()
    with pytest.raises(ValueError, match=r"pattern 'fc\*' matches no parameter"):
        select_parameters(m, include="fc*")
    with pytest.raises(ValueError, match="matches no parameter"):
        select_parameters(m, exclude="nothing")
    with pytest.raises(ValueError, match="no parameter left"):
        select_parameters(m, exclude="*.weight")


def test_shared_weight_appears_once():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    m[2].weight = m[0].weight
    assert list(select_parameters(m)) == ["0.weight"]


def test_read_and_write_parameters():
    m = LeNet300((1, 8, 8), 10)
    sel = select_parameters(m)
    w = read_parameters(sel)
    assert all(w[n].data_ptr() != p.data_ptr() and torch.equal(w[n], p) for n, p in sel.items())
    new = {n: torch.full_like(t, 0.5) for n, t in w.items()}
    write_parameters(sel, new)
    assert torch.all(m.fc2.weight == 0.5)
    assert torch.all(new["fc2.weight"] == 0.5)  # source untouched
    assert not torch.all(m.fc2.bias == 0.5)  # only the selected tensors
    with pytest.raises(ShapeMismatchError, match="missing"):
        write_parameters(sel, {"fc1.weight": new["fc1.weight"]})
    with pytest.raises(ShapeMismatchError, match="has shape"):
        write_parameters(sel, {**new, "fc3.weight": torch.zeros(3)})


class Seq(nn.Module):
    """Conv1d, EmbeddingBag, an attention with separate q/k/v widths, a GRU (not selected)."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.attn = nn.MultiheadAttention(8, 2, kdim=4, vdim=4, batch_first=True)
        self.rnn = nn.GRU(8, 8)


def test_conv1d_embeddingbag_and_attention_projections_are_selected():
    m = Seq()
    assert list(select_parameters(m)) == [
        "bag.weight", "conv.weight", "attn.q_proj_weight", "attn.k_proj_weight",
        "attn.v_proj_weight", "attn.out_proj.weight",
    ]
    assert m.attn.in_proj_weight is None  # kdim != embed_dim: separate projections


def test_resnet20_default_selection():
    m = ResNet20((3, 32, 32), 10)
    sel = select_parameters(m)
    assert len(sel) == 20  # 19 convolutions and the fc layer: the 20 weighted layers
    assert all(n.endswith(".weight") and "bn" not in n for n in sel)
    assert sum(p.numel() for p in sel.values()) == 268_336
    names = list(sel)
    assert names[0] == "conv1.weight" and names[-1] == "fc.weight"


@pytest.mark.parametrize("text", [False, True])
def test_transformer_default_selection_takes_attention_in_proj(text):
    m = (TransformerClassifier((12,), 3, vocab_size=20, depth=2) if text
         else TransformerClassifier((1, 8, 8), 3, depth=2))
    sel = select_parameters(m)
    per_layer = ["self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight",
                 "linear2.weight"]
    assert list(sel) == ["embed.weight", *(f"layers.{i}.{n}" for i in (0, 1) for n in per_layer),
                         "head.weight"]
    assert sel["layers.0.self_attn.in_proj_weight"] is m.layers[0].self_attn.in_proj_weight
    assert isinstance(m.embed, nn.Embedding if text else nn.Conv2d)
    # left out: the position embedding, LayerNorms and every bias
    left = set(dict(m.named_parameters())) - set(sel)
    assert "pos" in left and all(n == "pos" or "norm" in n or n.endswith("bias") for n in left)


def test_substituted_in_proj_weight_changes_the_output():
    """functional_call reaches MultiheadAttention's own parameter (the oracle relies on it)."""
    from torch.func import functional_call

    torch.manual_seed(0)
    m = TransformerClassifier((1, 8, 8), 3, depth=1).eval()
    x = torch.randn(2, 1, 8, 8)
    w = {"layers.0.self_attn.in_proj_weight": torch.zeros_like(
        m.layers[0].self_attn.in_proj_weight)}
    with torch.no_grad():
        assert not torch.allclose(functional_call(m, w, (x,)), m(x))
