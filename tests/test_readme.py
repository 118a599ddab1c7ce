"""README's newcomer path runs as written: the code blocks marked ``<!-- test:readme NAME -->``
are taken from README.md and run in a fresh folder, in order: the ten-line ``compress()``
call, the factory file ``mynet.py``, the ``data.npz`` maker, and the command line on them."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("torch")

from compressopt.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(r"<!-- test:readme (?P<name>\S+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)```",
                    re.S)


def blocks() -> dict[str, tuple[str, str]]:
    """name -> (language, code) of README's marked blocks."""
    return {m["name"]: (m["lang"], m["code"]) for m in MARKED.finditer(README.read_text())}


def test_the_newcomer_blocks_are_marked():
    found = blocks()
    assert list(found) == ["python", "mynet.py", "data", "sh"]
    assert [lang for lang, _ in found.values()] == ["python", "python", "python", "sh"]
    assert len(found["python"][1].strip().splitlines()) <= 12  # "in ten lines"


def test_compress_your_own_model_from_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(blocks()["python"][1], "README.md", "exec"), scope)
    report = scope["result"].report
    assert report["nonzero_fraction"] == pytest.approx(0.1, abs=0.01)
    assert json.loads((tmp_path / "runs/mine/report.json").read_text())["accuracy"] == \
        report["accuracy"]


def test_compress_your_own_model_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    found = blocks()
    (tmp_path / "mynet.py").write_text(found["mynet.py"][1])
    exec(compile(found["data"][1], "README.md", "exec"), {})
    (command,) = [line for line in found["sh"][1].splitlines() if line.strip()]
    argv = shlex.split(command)
    assert argv[:2] == ["compressopt", "compress"]
    assert main([*argv[1:], "--quiet"]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "runs/mine-cli/report.json").read_text())
    assert report["model"] == "mynet.py:mynet" and report["dataset"] == "data.npz"
    assert report["nonzero_fraction"] == pytest.approx(0.1, abs=0.01)
    assert [x["name"] for x in report["layers"]] == ["1.weight", "3.weight"]
