"""Running ``optimize.py`` / ``evaluate.py`` in-process (as the scripts do) or as a process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def load_script(name: str):
    """``optimize.py`` / ``evaluate.py`` imported as a module (its ``run(argv)`` is the command)."""
    mod_name = f"_facerefl_script_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, ROOT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_inprocess(script: str, argv: list[str], capfd) -> Result:
    """The command exactly as ``python SCRIPT ARGV...`` runs it, in this process."""
    capfd.readouterr()
    code = load_script(script).run(list(argv))
    out, err = capfd.readouterr()
    return Result(code, out, err)


def run_process(script: str, argv: list[str], cwd: Path, timeout: float = 600, **kw) -> Result:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **kw.pop("env", {})}
    r = subprocess.run([sys.executable, str(ROOT / f"{script}.py"), *argv], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, env=env, **kw)
    return Result(r.returncode, r.stdout, r.stderr)


def tree(folder: Path) -> set[str]:
    """Every path under ``folder`` (hidden ones included), relative."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def small_fit_args(weights: Path) -> list[str]:
    """Settings for a fit that takes seconds (tiny networks, 2 iterations, small maps)."""
    return [f"weights={weights}", "iterations=2", "fit.refine_iterations=0", "progress=false",
            "geometry.resolution=64", "geometry.subdivisions=0", "geometry.n_dirs=32",
            "export.exr=false", "export.environments=[]", "export.novel_yaw_degrees=0"]
