"""The command line on the user's own model and data: ``--model file.py:factory --dataset
data.npz``, and a bad factory or data file as one line before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from compressopt.cli import main

FACTORY = '''
import torch

def net(input_shape, num_classes):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.ReLU(),
                               torch.nn.Linear(12, num_classes))

def not_a_model():
    return 3
'''


@pytest.fixture
def user_files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 1, 4, 4)).astype(np.float32)
    y = (x[:, 0, 0, :2].sum(1) > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:],
             y_test=y[60:])
    (tmp_path / "nets.py").write_text(FACTORY)
    return tmp_path / "nets.py", tmp_path / "data.npz"


def test_own_model_and_data(tmp_path, user_files, capsys):
    nets, data = user_files
    out = tmp_path / "out"
    rc = main(["compress", "--quiet", "--model", f"{nets}:net", "--dataset", str(data),
               "--pretrain-epochs", "2", "--steps", "2", "--epochs", "1", "--prune", "0.3",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((out / "report.json").read_text())
    assert [x["name"] for x in r["layers"]] == ["1.weight", "3.weight"]
    assert r["nonzero_fraction"] == pytest.approx(0.3, abs=0.01)
    assert 0 <= r["accuracy"] <= 1 and "model.cpz" in r["files"]


@pytest.mark.parametrize(("model", "dataset", "match"), [
    ("{nets}:not_a_model", "{data}", "not a torch.nn.Module"),
    ("{nets}:nothing", "{data}", "nothing"),
    ("{nets}:net", "{tmp}/missing.npz", "missing.npz"),
])
def test_bad_factory_or_data_one_line(tmp_path, user_files, capsys, model, dataset, match):
    nets, data = user_files
    fill = {"nets": nets, "data": data, "tmp": tmp_path}
    rc = main(["compress", "--progress-every", "0", "--model", model.format(**fill),
               "--dataset", dataset.format(**fill), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc in (1, 2) and err.count("\n") == 1 and match in err and "Traceback" not in err
    assert "reference" not in err and not (tmp_path / "o").exists()


def test_readme_one_call_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("### From Python: one call", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the block as a newcomer runs it
    report = scope["result"].report
    assert report["nonzero_fraction"] == pytest.approx(0.1, abs=1e-3)
    assert 0 <= report["accuracy"] <= 1
