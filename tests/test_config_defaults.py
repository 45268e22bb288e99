"""Every default is stated once: the config sets it, the settings dataclasses agree.

The job config (``conf/optimize.yaml``, composed by Hydra as the script composes it) is
where the numbers are set; the dataclasses the library builds from it keep the same
defaults so that code calling them directly gets the same pipeline. A field that the
config does not name is a code-only default (stated once, in the dataclass).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from facerefl.export.outputs import ExportOptions
from facerefl.fit.delight import DelightSettings
from facerefl.fit.loop import FitSettings
from facerefl.geometry.result import GeometryConfig
from facerefl.resources import CONF_DIR
import facerefl.tasks.optimize as optimize_task
from facerefl.tasks.optimize import export_options, fit_settings, geometry_config


@pytest.fixture(scope="module")
def cfg():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("optimize")


def defaults(cls) -> dict:
    """``{field: default}`` of a dataclass (default factories called)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def same(a, b) -> bool:
    """Config value ``a`` equals dataclass default ``b`` (lists as tuples, ints as floats)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def mismatches(group: dict, cls, where: str, code_only: set[str] = frozenset()) -> list[str]:
    """The keys of ``group`` whose value differs from ``cls``'s default, or that ``cls`` lacks."""
    want = defaults(cls)
    wrong = [f"{where}.{k}: {cls.__name__} has no field {k}" for k in group if k not in want and k not in code_only]
    wrong += [f"{where}.{k} = {v!r} but {cls.__name__}.{k} = {want[k]!r}"
              for k, v in group.items() if k in want and not same(v, want[k])]
    return wrong


def test_fit_defaults_are_the_configs(cfg):
    fit = OmegaConf.to_container(cfg.fit, resolve=True)
    delight = fit.pop("delight")
    group = {"iterations": cfg.iterations, **fit}
    wrong = mismatches(group, FitSettings, "fit")
    # the nested group: DelightSettings' defaults are the config's, and enabled means present
    enabled = delight.pop("enabled")
    wrong += mismatches(delight, DelightSettings, "fit.delight")
    assert enabled is (defaults(FitSettings)["delight"] is not None)
    assert not wrong, "conf/optimize.yaml and the code disagree:\n" + "\n".join(wrong)


def test_geometry_defaults_are_the_configs(cfg):
    wrong = mismatches(OmegaConf.to_container(cfg.geometry, resolve=True), GeometryConfig, "geometry")
    assert not wrong, "conf/optimize.yaml and the code disagree:\n" + "\n".join(wrong)


def test_export_defaults_are_the_configs(cfg):
    # environments is the task's business (which lights to load), not an ExportOptions field
    wrong = mismatches(OmegaConf.to_container(cfg.export, resolve=True), ExportOptions, "export",
                       code_only={"environments"})
    assert not wrong, "conf/optimize.yaml and the code disagree:\n" + "\n".join(wrong)


def test_the_task_builds_the_dataclass_defaults_from_the_default_config(cfg):
    """Reading the config adds no numbers of its own: the default config gives the defaults."""
    assert fit_settings(cfg) == FitSettings()
    assert geometry_config(cfg) == GeometryConfig()
    assert export_options(cfg) == ExportOptions()


def _names(node) -> set[str]:
    """Every key of a nested config mapping, at any depth."""
    if not isinstance(node, dict):
        return set()
    return set(node) | {k for v in node.values() for k in _names(v)}


def fallback_copies(source: str, keys: set[str]) -> list[str]:
    """``x.get("key", fallback)`` calls in ``source`` on a key the config sets: a second
    copy of that default."""
    return [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get"
            and len(n.args) + len(n.keywords) >= 2 and n.args
            and isinstance(n.args[0], ast.Constant) and n.args[0].value in keys]


def test_the_optimize_task_restates_no_default_of_its_config(cfg):
    keys = _names(OmegaConf.to_container(cfg, resolve=False))
    copies = fallback_copies(inspect.getsource(optimize_task), keys)
    assert not copies, "tasks/optimize.py restates defaults that conf/optimize.yaml sets:\n" + "\n".join(copies)
    assert fallback_copies('cfg.get("seed", 0)\ncfg.get("seed")\nt.get("total", 0)', keys) == [
        'line 1: cfg.get(\'seed\', 0)']


def test_a_disagreement_is_caught():
    assert mismatches({"lr": 0.2, "bogus": 1}, FitSettings, "fit") == [
        "fit.bogus: FitSettings has no field bogus", "fit.lr = 0.2 but FitSettings.lr = 0.1"]
    assert not same(True, 1) and same([0.9, 0.999], (0.9, 0.999))
