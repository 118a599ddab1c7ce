"""The typed options (compressopt.options): every option's validation, the TOML round trip,
the selection of the method's options class, and no torch needed."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import textwrap
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compressopt.errors import ConfigError
from compressopt.options import (
    METHOD_OPTIONS,
    ADMMOptions,
    APGDSSMOptions,
    JobConfig,
    JointADMMOptions,
    LCOptions,
    SLROptions,
    dump_toml,
    load_recipe,
    load_toml,
    method_options,
    option_fields,
    recipes,
)

CLASSES = [JobConfig, *{c for cs in METHOD_OPTIONS.values() for c in cs}]


def _method_of(cls):
    """A JobConfig keyword set that makes `cls` the options class."""
    if cls is JobConfig:
        return {}
    extra = {"budget_ratio": 10.0} if cls is JointADMMOptions else {}
    return {"method": cls.method, "options": extra}


def _build(cls, name, value):
    """Construct `cls` (through JobConfig for method options) with field `name` = `value`."""
    if cls is JobConfig:
        return JobConfig(**{name: value})
    kw = _method_of(cls)
    return JobConfig(method=kw["method"], options={**kw["options"], name: value})


def _bad_values(spec):
    """Values outside each option's type or range (one per bound, non-finite, wrong type)."""
    k, i = spec.kind, spec.info
    if k.base is bool:
        return [1, "yes"]
    if k.base is str:
        return [(3,), "abc"] if k.seq else [3] + (["nonsense"] if k.choices else [])
    out = ["1"] if not k.seq else []
    if k.base is float:
        out += [math.nan] + ([math.inf] if i.finite else [])
    if k.base is int:
        out += [1.5, True]
    if i.low is not None:
        out.append(i.low if i.low_open else (
            i.low - 1 if k.base is int else math.nextafter(i.low, -math.inf)))
    if i.high is not None:
        out.append(i.high if i.high_open else (
            i.high + 1 if k.base is int else math.nextafter(i.high, math.inf)))
    return [(v,) for v in out] + [3] if k.seq else out


CASES = [(cls, name, bad) for cls in CLASSES for name, spec in option_fields(cls).items()
         for bad in _bad_values(spec)]


@pytest.mark.parametrize(("cls", "name", "bad"), CASES,
                         ids=[f"{c.__name__}.{n}={b!r}" for c, n, b in CASES])
def test_every_option_refuses_values_outside_its_range(cls, name, bad):
    spec = option_fields(cls)[name]
    with pytest.raises(ConfigError, match=f"^{spec.flag} ") as e:
        _build(cls, name, bad)
    msg = str(e.value)
    shown = bad[0] if isinstance(bad, tuple) else bad
    assert "\n" not in msg and repr(shown) in msg


def test_the_catalogue_values_of_issue_14_are_refused_before_anything_runs():
    cases = {
        "--budget-ratio inf": dict(method="admm", options={"budget_ratio": math.inf}),
        "--slr-M inf": dict(method="slr", options={"slr_M": math.inf}),
        "--ctl1-a inf": dict(method="apgdssm", options={"ctl1_a": math.inf}),
        "--lambda1-factors 1 nan": dict(method="apgdssm", options={
            "milestones": (3,), "lambda1_factors": (1.0, math.nan)}),
        "--s0 inf": dict(method="slr", options={"s0": math.inf}),
        "--bits 32": dict(method="apgdssm", options={"bits": 32}),
    }
    for flag, kw in cases.items():
        with pytest.raises(ConfigError, match=flag.split()[0]):
            JobConfig(**kw)
    # budget 0 = prune everything: legal (the job completes and reports it)
    assert JobConfig(method="admm", options={"budget_bits": 0}).options.budget_bits == 0.0


def test_valid_values_are_normalized():
    c = JobConfig(prune=1, include=["fc*"])
    assert c.prune == 1.0 and isinstance(c.prune, float) and c.include == ("fc*",)
    j = JobConfig(method="admm", options={"budget_ratio": 10, "bit_candidates": [1, 2]})
    assert j.options.bit_candidates == (1, 2) and j.options.budget_ratio == 10.0


def test_method_options_class_is_selected_by_the_budget():
    assert type(JobConfig(method="admm").options) is ADMMOptions
    assert type(JobConfig(method="admm", options={"budget_bits": 100}).options) is \
        JointADMMOptions
    assert JobConfig(method="admm").options.penalty_step == "gradient"
    assert JobConfig(method="admm", options={"budget_ratio": 5}).options.penalty_step == "prox"
    assert type(JobConfig().options) is LCOptions
    assert type(JobConfig(method="slr", options=SLROptions(s0=0.1)).options) is SLROptions


@pytest.mark.parametrize(("kw", "match"), [
    (dict(method="lc", options={"budget_ratio": 10}),
     r"--method lc does not take --budget-ratio \(--method admm\)"),
    (dict(method="admm", options={"rho": 0.1}), "--rho: options of the joint ADMM"),
    (dict(method="admm", options={"finetune_epochs": 1, "init_bits": 2}),
     "--finetune-epochs, --init-bits: options of the joint ADMM"),
    (dict(method="slr", options={"bits": 4}), r"does not take --bits \(--method apgdssm\)"),
    (dict(method="lc", options={"rhoo": 1}), "unknown option 'rhoo' .did you mean 'rho'"),
    (dict(method="slr", options=APGDSSMOptions()), "options of --method apgdssm, not of"),
    (dict(method="admm", options={"budget_ratio": 2, "budget_bits": 3}),
     "give one of --budget-bits and --budget-ratio"),
    (dict(method="admm", prune=0.5, options={"budget_ratio": 2}), "drop --prune and --quantize"),
    (dict(method="slr", quantize=4), "--method slr prunes: drop --quantize"),
    (dict(method="apgdssm", prune=0.5), "drop --prune and --quantize"),
    (dict(method="apgdssm", options={"lambda1_factors": [1.0]}), "needs --milestones"),
    (dict(method="apgdssm", options={"milestones": [4, 2]}), "increasing"),
    (dict(method="apgdssm", options={"milestones": [2, 4], "beta_factors": [1.0, 2.0, 3.0]}),
     r"--beta-factors needs 1 or 2 factors \(one per milestone"),
    (dict(method="apgdssm", options={"milestones": [2, 4], "beta_factors": [1.0, 2.0],
                                     "cumulative_factors": False}),
     r"--beta-factors needs 1 or 3 factors \(one per interval"),
    (dict(method="admm", options={"budget_ratio": 2, "bit_candidates": []}),
     "at least one bit width"),
    (dict(distill=1.0, distill_phase="finish"), "has no final retraining"),
    (dict(warmup=2, steps=2), r"--warmup must be in \[0, --steps\)"),
    (dict(out=""), "--out must name a directory"),
    (dict(method="nope"), "--method must be one of"),
    (dict(options=3), "options must be a MethodOptions or a mapping"),
])
def test_contradictions_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        JobConfig(**kw)


def test_resolved_fills_the_data_set_defaults_and_keeps_the_given():
    c = JobConfig(epochs=3, lr_schedule="cos").resolved()
    assert (c.epochs, c.first_epochs, c.lr_decay, c.steps, c.prune) == (3, 6, 1.0, 30, 0.1)
    assert JobConfig(method="apgdssm").resolved().prune is None  # apgdssm does not prune
    assert JobConfig(method="admm", options={"budget_ratio": 9}).resolved().prune is None
    m = JobConfig(dataset="mnist", model="lenet5").resolved()
    assert (m.pretrain_epochs, m.mu_growth) == (15, 1.45)


SETTINGS = st.fixed_dictionaries({}, optional={
    "prune": st.floats(1e-6, 1.0), "lstep_lr": st.floats(1e-8, 10.0),
    "momentum": st.floats(0.0, 0.999), "seed": st.integers(0, 2**32 - 1),
    "include": st.lists(st.text(min_size=1, max_size=8), max_size=3).map(tuple),
    "device": st.text(min_size=1, max_size=12), "keep_momentum": st.booleans(),
    "out": st.text(min_size=1, max_size=20), "lr_schedule": st.sampled_from(["exp", "cos"]),
})


@settings(max_examples=60, deadline=None)
@given(SETTINGS, st.sampled_from(["lc", "admm", "joint", "slr", "apgdssm"]))
def test_toml_round_trip(values, method):
    opts = {"budget_ratio": 123.456, "bit_candidates": (1, 3)} if method == "joint" else {}
    if method in ("joint", "apgdssm"):
        values.pop("prune", None)
    if method == "apgdssm":
        values.pop("lr_schedule", None)  # it sets its own learning rates
    c = JobConfig(**values, method="admm" if method == "joint" else method, options=opts)
    text = dump_toml(c.to_settings(), "a header\nof two lines")
    back = JobConfig.from_settings(tomllib.loads(text))
    assert back == c


def test_load_toml_checks_keys_and_types(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('prune = 0.2\nmethod = "admm"\nbudget_ratio = 40\nbit_candidates = [1, 2]\n')
    s = load_toml(f)
    assert s == {"prune": 0.2, "method": "admm", "budget_ratio": 40, "bit_candidates": (1, 2)}
    for text, match in [
        ("prunee = 0.2", "unknown option 'prunee' .did you mean 'prune'"),
        ('prune = "0.2"', "key 'prune' must be a number, got str '0.2'"),
        ("steps = 2.5", "key 'steps' must be an integer, got float 2.5"),
        ("steps = true", "key 'steps' must be an integer, got bool True"),
        ("keep_momentum = 1", "key 'keep_momentum' must be a boolean"),
        ("include = 'fc*'", "key 'include' must be a list of strings"),
        ("bit_candidates = [1, 2.5]", "key 'bit_candidates' must be a list of integers"),
        ("[training]\nsteps = 2", "key 'training' is a table"),
        ("steps = ", "not valid TOML"),
    ]:
        f.write_text(text + "\n")
        with pytest.raises(ConfigError, match=match):
            load_toml(f)
    with pytest.raises(ConfigError, match="no such file"):
        load_toml(tmp_path / "none.toml")


def test_dump_toml_escapes_strings():
    s = {"out": 'a "b"\\c\n\u00e9', "prune": 1e-300, "include": ["x", "y"], "seed": 7}
    assert tomllib.loads(dump_toml(s)) == s


def test_shipped_recipes_are_valid():
    for name, line in recipes().items():
        assert line, name  # a one-line description
        JobConfig.from_settings(load_recipe(name))


def test_recipes_are_listed_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr("compressopt.options.recipe_folder", lambda: tmp_path)
    (tmp_path / "small.toml").write_text("# a small run\nsteps = 2\nprune = 0.5\n")
    (tmp_path / "bad.toml").write_text("# broken\nsteps = [\n")
    (tmp_path / "notes.txt").write_text("not a recipe")
    assert recipes() == {"bad": "broken", "small": "a small run"}
    assert load_recipe("small") == {"steps": 2, "prune": 0.5}
    with pytest.raises(ConfigError, match="no recipe 'nope'; the recipes: bad, small"):
        load_recipe("nope")
    with pytest.raises(ConfigError, match="recipe bad: not valid TOML"):
        load_recipe("bad")


def test_memory_estimates_are_the_projections_own():
    from compressopt.projections import kmeans1d_memory, uniform_memory

    shapes = {"a": (100, 300), "b": (10, 100)}
    c = JobConfig(quantize=8192).resolved()
    m = c.options.cstep_memory(c, shapes)
    assert m.bytes == c.options.cstep_bytes(c, shapes) == kmeans1d_memory(30_000, 8192)
    assert m.what == "exact k-means with K = 8192 on the 30,000 weights of a"
    c = JobConfig(quantize=8, prune=0.01).resolved()  # the nonzeros: at most KEEP of all
    assert c.options.cstep_memory(c, shapes) == (kmeans1d_memory(310, 8),
                                                 "exact k-means with K = 8 on at most 310 "
                                                 "nonzeros of a")
    c = JobConfig(method="apgdssm", options={"bits": 31}).resolved()
    assert c.options.cstep_bytes(c, shapes) == uniform_memory(30_000, bits=31) < 10**7
    c = JobConfig(method="admm", options={"budget_ratio": 10, "bit_candidates": [2, 9]})
    assert c.options.cstep_memory(c.resolved(), shapes).bytes == max(
        kmeans1d_memory(n, 2**b, method="fast") for n in (30_000, 1000) for b in (2, 9))
    c = JobConfig(prune=0.5).resolved()
    assert c.options.cstep_bytes(c, {**shapes, "empty": (0, 3)}) == 24 * 31_000


def test_fields_are_frozen_and_documented():
    for cls in CLASSES:
        for name, spec in option_fields(cls).items():
            assert spec.info.help, name
            assert spec.flag.startswith("--")
    with pytest.raises(dataclasses.FrozenInstanceError):
        JobConfig().seed = 3  # type: ignore[misc]


def test_method_options_from_a_mapping():
    assert method_options("admm", {"budget_bits": 0, "rho": None}).budget_bits == 0.0


def test_options_and_the_parser_need_no_torch():
    code = """
        import sys
        sys.modules["torch"] = None
        from compressopt.options import JobConfig
        from compressopt.cli import build_parser
        build_parser()
        print(JobConfig(method="admm", options={"budget_ratio": 10}).options.rho)
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.05"
