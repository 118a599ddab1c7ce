"""The recipes shipped in compressopt/recipes/: each one loads, parses into a JobConfig whose
method builds on its model (the papers' numbers where the paper gives them), is listed by
``compressopt recipes`` with its first comment line; and ``--recipe`` < ``--config`` < the
command line compose as documented."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

from compressopt.cli import build_parser, main, settings_from
from compressopt.options import JobConfig, load_recipe, recipe_folder, recipes

ROOT = Path(__file__).resolve().parents[1]

#: recipe -> settings it must hold (the papers' numbers, the benchmarks' recipes)
EXPECTED = {
    "yang-lenet5": {"model": "lenet5", "dataset": "mnist", "method": "admm", "rho": 0.05,
                    "batch_size": 256, "lstep_lr": 0.1, "lr_schedule": "cos", "steps": 120,
                    "momentum": 0.93, "keep_momentum": True, "weight_decay": 5e-4,
                    "warmup": 10, "budget_ratio": 2000.0},
    "lenet5-joint-2000x": {"nesterov": False, "distill": 4.0, "distill_phase": "finish",
                           "finetune_epochs": 10, "finetune_lr": 0.01, "val_split": 5000,
                           "val_seed": 0, "pretrain_epochs": 20},
    "zhou-slr-lenet5": {"method": "slr", "slr_rho": 0.1, "s0": 0.01, "slr_M": 300.0,
                        "slr_r": 0.1, "optimizer": "adam", "lstep_lr": 0.01,
                        "batch_size": 128, "prune_scope": "layer"},
    "lc-lenet300": {"model": "lenet300", "method": "lc", "mu0": 9.76e-5, "mu_growth": 1.2,
                    "steps": 40, "epochs": 6, "first_epochs": 12, "inner_iterations": 1},
    "lixin-apgdssm": {"method": "apgdssm", "bits": 4, "lambda1": 0.04, "lambda2": 5e-6,
                      "beta": 1e-3, "milestones": (35, 70, 110, 150),
                      "lambda1_factors": (0.5, 0.2, 0.5, 0.5),
                      "beta_factors": (0.5, 0.2, 0.1, 0.1), "lstep_lr": 0.1,
                      "lr_milestones": (80, 120, 160), "lr_factor": 0.1, "steps": 200},
}


def test_every_recipe_is_listed_with_its_first_line(capsys):
    found = recipes()
    assert set(EXPECTED) <= set(found)
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out.splitlines()
    for name, line in found.items():
        first = (recipe_folder() / f"{name}.toml").read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and line == first[2:].strip() and len(line) > 20
        assert any(row.split()[0] == name and row.endswith(line) for row in out)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_recipe_parses_and_its_method_builds(name):
    from compressopt.dnn.api import prepare
    from compressopt.dnn.models import build_model

    settings = load_recipe(name)
    for key, value in EXPECTED[name].items():
        assert settings[key] == value, key
    config = JobConfig.from_settings({**settings, "data_dir": "mnist"}).resolved()
    assert config.to_settings() == JobConfig.from_settings(config.to_settings()).to_settings()
    text = (recipe_folder() / f"{name}.toml").read_text(encoding="utf-8")
    assert "[paper]" in text and ("[ours]" in text or "[job]" in text)  # sources marked
    plan = prepare(build_model(config.model, (1, 28, 28), 10), config)
    assert plan.solver.niter == config.steps


def test_the_2000x_recipe_is_the_benchmarks_and_runs_without_other_options(monkeypatch):
    """lenet5-joint-2000x = benchmarks/lenet5_issue4.py's YANG + --heavy-ball + KD_FINETUNE,
    plus its own reference and validation split; only the data location comes from the
    environment."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench = importlib.import_module("lenet5_issue4")
    sys.modules.pop("lenet5_issue4", None)
    monkeypatch.setenv("COMPRESSOPT_MNIST_DIR", "/data/mnist")
    parse = build_parser().parse_args
    ours = settings_from(parse(["compress", "--recipe", "lenet5-joint-2000x"]))
    theirs = settings_from(parse(["compress", "--model", "lenet5", "--dataset", "mnist",
                                  *bench.YANG, "--heavy-ball", *bench.KD_FINETUNE]))
    assert ours["data_dir"] == "/data/mnist"
    for key, value in theirs.items():
        if key != "out":
            assert ours[key] == value, key
    config = JobConfig.from_settings(ours).resolved()
    assert config.val_split == 5000 and config.reference is None  # it trains its reference
    assert math.isclose(config.options.budget_ratio, 2000.0)


def test_recipe_then_config_then_command_line(tmp_path):
    """--recipe < --config < the command line, key by key; the rest from the recipe."""
    conf = tmp_path / "run.toml"
    conf.write_text("steps = 17\nrho = 0.1\nseed = 3\n")
    ns = build_parser().parse_args(["compress", "--recipe", "yang-lenet5", "--config",
                                    str(conf), "--rho", "0.2", "--data-dir", "d"])
    s = settings_from(ns)
    assert (s["steps"], s["rho"], s["seed"]) == (17, 0.2, 3)
    assert (s["lstep_lr"], s["batch_size"], s["momentum"]) == (0.1, 256, 0.93)
    config = JobConfig.from_settings(s).resolved()
    assert config.options.rho == 0.2 and config.steps == 17


def test_an_unknown_recipe_is_one_line(capsys):
    assert main(["compress", "--recipe", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no recipe 'nope'" in err and "yang-lenet5" in err
