"""``compressopt compress --config FILE`` and ``--recipe NAME``: TOML settings, command-line
overrides, OUT/config.toml repeating a run exactly, and every command line of the README,
RESULTS and benchmarks still accepted."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from compressopt.cli import build_parser, main, settings_from
from compressopt.options import JobConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--pretrain-epochs", "2", "--steps", "2", "--epochs", "1", "--no-plots", "--quiet"]


def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def without_timings(r: dict) -> dict:
    def clean(d):
        return {k: v for k, v in d.items()
                if not (k.startswith("time_") or k == "seconds" or k.endswith("_seconds"))}

    r = clean(r)
    r["iterations"] = [clean(x) for x in r["iterations"]]
    r["config"] = {k: v for k, v in r["config"].items() if k != "out"}
    r.pop("environment")
    r.pop("run_id")
    return r


def test_config_file_and_command_line_override(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('# a run\nmethod = "admm"\nprune = 0.3\nsteps = 2\nepochs = 1\n'
                    "pretrain_epochs = 2\neval_projected = true\n")
    rc, _, err = run(["compress", "--quiet", "--config", str(toml), "--prune", "0.2",
                      "--out", str(tmp_path / "a")], capsys)
    assert rc == 0, err
    r = report(tmp_path / "a")
    assert (r["method"], r["prune"], len(r["iterations"])) == ("admm", 0.2, 2)
    assert r["config"]["options"]["eval_projected"] is True
    assert "projected_test_accuracy" in r["iterations"][0]


def test_out_config_toml_repeats_the_run_exactly(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    rc, _, err = run(["compress", *TINY, "--method", "slr", "--prune", "0.3", "--s0", "0.02",
                      "--retrain-epochs", "1", "--seed", "5", "--out", str(a)], capsys)
    assert rc == 0, err
    text = (a / "config.toml").read_text()
    assert "s0 = 0.02" in text and "retrain_epochs = 1" in text and "out =" not in text
    rc, _, err = run(["compress", "--quiet", "--config", str(a / "config.toml"),
                      "--out", str(b)], capsys)
    assert rc == 0, err
    ra, rb = report(a), report(b)
    assert without_timings(ra) == without_timings(rb)
    assert ra["files"] == rb["files"]  # the same bytes: reference, model, config.toml


@pytest.mark.parametrize(("text", "match"), [
    ("prune = 0.2\nstepz = 3\n", "unknown option 'stepz' (did you mean 'steps'?)"),
    ('steps = "3"\n', "key 'steps' must be an integer, got str '3'"),
    ("prune = 1.5\n", "--prune must be a finite number in (0, 1], got 1.5"),
    ('method = "lc"\nbudget_ratio = 10\n', "--method lc does not take --budget-ratio"),
    ("steps = [\n", "not valid TOML"),
])
def test_bad_config_files_one_line(tmp_path, capsys, text, match):
    toml = tmp_path / "run.toml"
    toml.write_text(text)
    rc, _, err = run(["compress", *TINY, "--config", str(toml), "--out", str(tmp_path / "o")],
                     capsys)
    assert rc == 2 and err.count("\n") == 1 and match in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_config_file(tmp_path, capsys):
    rc, _, err = run(["compress", "--config", str(tmp_path / "none.toml")], capsys)
    assert rc == 2 and "no such file" in err and err.count("\n") == 1


def test_recipe_then_config_then_command_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "tiny.toml").write_text("# a tiny digits run\nsteps = 3\nepochs = 1\n"
                                      "pretrain_epochs = 1\nprune = 0.5\nseed = 4\n")
    monkeypatch.setattr("compressopt.options.recipe_folder", lambda: folder)
    rc, out, _ = run(["recipes"], capsys)
    assert rc == 0 and out == "tiny  a tiny digits run\n"
    (tmp_path / "over.toml").write_text("steps = 2\nprune = 0.4\n")
    argv = ["compress", "--recipe", "tiny", "--config", str(tmp_path / "over.toml"),
            "--prune", "0.3"]
    cfg = JobConfig.from_settings(settings_from(build_parser().parse_args(argv)))
    assert (cfg.steps, cfg.prune, cfg.seed, cfg.epochs) == (2, 0.3, 4, 1)
    rc, _, err = run(["compress", "--recipe", "nope"], capsys)
    assert rc == 2 and "no recipe 'nope'; the recipes: tiny" in err


def _documented_commands() -> list[str]:
    """Every ``compressopt compress ...`` command in README.md and benchmarks/RESULTS.md
    (not the synopsis), and those the benchmark scripts run."""
    found = []
    for doc in ("README.md", "benchmarks/RESULTS.md"):
        for line in (ROOT / doc).read_text().splitlines():
            for m in re.finditer(r"compressopt compress(?: [^`#\n|]*)?", line):
                cmd = m.group(0).strip()
                if not any(t in cmd for t in ("[", "...", "--help", "--config")):
                    found.append(cmd)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import lenet5_issue4
        import main_job
    finally:
        sys.path.pop(0)
    found += [" ".join(lenet5_issue4.command(n, "DIR", Path("runs/x")))
              for n in lenet5_issue4.CASES]
    found += [" ".join(main_job.command("DIR", args)) for args, _ in main_job.CASES.values()]
    return found


COMMANDS = _documented_commands()


def test_documented_commands_are_found():
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_lines_still_parse(command, monkeypatch):
    monkeypatch.setenv("COMPRESSOPT_MNIST_DIR", "DIR")
    argv = shlex.split(command)[1:]
    cfg = JobConfig.from_settings(settings_from(build_parser().parse_args(argv))).resolved()
    assert cfg.steps >= 1
