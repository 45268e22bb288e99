"""Command-line plumbing shared by ``optimize.py`` and ``evaluate.py``.

The scripts stay thin Hydra entry points; this module does what Hydra cannot:

* **Paths taken verbatim.** Hydra's override grammar rejects spaces, brackets, commas,
  quotes, non-ASCII letters and ``${...}`` in values, all of which occur in real file
  names (``IMG (1).jpg``). Path settings (``image=``, ``output_dir=``, ...) and a plain
  positional path are therefore taken out of the argument list before Hydra parses it and
  put into the composed config afterwards, literally (no interpolation).
* **Bad arguments are one line.** The overrides are composed once before Hydra runs, and
  Hydra's multi-line messages (unknown key, missing config group option, grammar) become
  one ``error:`` line and exit status 2.
* **Strict values.** :func:`read_bool`, :func:`read_int`, ... accept exactly the type a
  setting needs (``overwrite=no`` is refused, not read as true; ``iterations=1.5`` is
  refused, not truncated).
* **Interrupts.** SIGTERM is turned into an exception like SIGINT's, so ``finally``
  blocks (removal of half-written staging folders) run; both end with one line and the
  conventional status 128 + signal number (130, 143).

Exit status: 0 done; 1 some photos of a folder failed, or an internal error; 2 bad input
(one ``error:`` line on stderr); 130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import math
import os
import re
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError

__all__ = ["EntrySpec", "Interrupted", "entry", "run_job", "one_line", "os_error_message",
           "read_bool", "read_int", "read_float", "read_choice", "read_device"]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1

# Hydra's own flags that take a value as the next argument.
_FLAGS_WITH_VALUE = frozenset({"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                               "-c", "--cfg", "-p", "--package", "--experimental-rerun"})
# Flags after which the command does not run a job: no pre-check.
_NO_JOB_FLAGS = frozenset({"-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-i", "--info",
                           "-sc", "--shell-completion", "--experimental-rerun"})
_MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})


@dataclass(frozen=True)
class EntrySpec:
    """How a script's command line is read.

    Attributes:
        config_dir: the Hydra config folder (the script's ``config_path``).
        config_name: the primary config in it (``"optimize"``).
        path_keys: settings whose values are file-system paths, taken verbatim.
        positional: the setting a plain argument (no ``key=``) fills, or None.
    """

    config_dir: Path
    config_name: str
    path_keys: tuple[str, ...]
    positional: str | None = None


class Interrupted(BaseException):
    """SIGTERM arrived (SIGINT raises :class:`KeyboardInterrupt`); unwinds like it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The path settings of the running command (set by entry(), applied by run_job()).
_PATHS: dict[str, str] = {}
# The running command's arguments as given, path settings included (set by entry()).
_ARGV: list[str] = []


@contextlib.contextmanager
def command_as_given() -> Iterator[None]:
    """Hold ``sys.argv`` as the user gave it while the block runs.

    Inside :func:`entry` it holds only Hydra's share (the path settings are kept apart,
    verbatim); Lightning's ``ddp`` launcher starts the other processes of a distributed run
    with ``sys.argv``, and they need the whole command. Outside :func:`entry` (a test, a
    library call) nothing changes.
    """
    saved = sys.argv
    if _ARGV:
        sys.argv = [saved[0] if saved else "", *_ARGV]
    try:
        yield
    finally:
        sys.argv = saved


def _say_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def one_line(e: BaseException | str) -> str:
    """The first non-empty line of an error message."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


_OS_REASONS = {
    errno.ENOSPC: "the disk is full; free some space or choose another output_dir",
    errno.EDQUOT: "the disk quota is exhausted; free some space or choose another output_dir",
    errno.EFBIG: "the file size limit is exceeded (see `ulimit -f`)",
    errno.ENAMETOOLONG: "a file name is too long (over 255 bytes); use a shorter name or output_dir",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another output_dir",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EIO: "input/output error from the storage device",
}


def os_error_message(e: OSError) -> str:
    """One line for a file-system failure: which path, what went wrong, what to do."""
    reason = _OS_REASONS.get(e.errno or 0) or (e.strerror or one_line(e))
    where = e.filename if e.filename is not None else "a file"
    return f"cannot write {os.fsdecode(where)}: {reason}"


# ----------------------------------------------------------------------- strict values

def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def read_bool(value: Any, name: str) -> bool:
    """A setting that must be ``true`` or ``false`` (Hydra parses those to bool)."""
    if isinstance(value, bool):
        return value
    raise InputError(f"{name} must be true or false, got {_shown(value)}")


def read_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole-number setting within ``[minimum, maximum]`` (``1.5``, ``abc``, ``true`` refused)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise InputError(f"{name} must be a whole number, got {_shown(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InputError(f"{name} must be {_range(minimum, maximum)}, got {value}")
    return int(value)


def read_float(value: Any, name: str, minimum: float | None = None, maximum: float | None = None,
               exclusive_minimum: bool = False) -> float:
    """A finite number within the bounds (``abc``, ``nan``, ``inf``, ``true`` refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {_shown(value)}")
    low_bad = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if low_bad or (maximum is not None and value > maximum):
        raise InputError(f"{name} must be {_range(minimum, maximum, exclusive_minimum)}, got {value:g}")
    return float(value)


def _range(lo: float | None, hi: float | None, exclusive: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{'above' if exclusive else 'between'} {lo:g}{' and at most' if exclusive else ' and'} {hi:g}"
    if lo is not None:
        return f"{'above' if exclusive else 'at least'} {lo:g}"
    return f"at most {hi:g}"


def read_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}; got {_shown(value)}")
    return value


def read_device(value: Any, name: str = "device") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; CUDA only where a GPU is visible."""
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise InputError(f"{name} must be cpu, cuda or cuda:N, got {_shown(value)}")
    if value.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"{name}={value} but no CUDA GPU is available here; use device=cpu")
        index = int(value.partition(":")[2] or 0)
        if index >= count:
            raise InputError(f"{name}={value} but only {count} CUDA GPU(s) are visible (0..{count - 1})")
    return value


# ------------------------------------------------------------------- argument handling

def escape_interpolation(path: str) -> str:
    """``path`` as an OmegaConf string that reads back literally (``${`` not interpolated)."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", path)


def _primary_keys(spec: EntrySpec) -> set[str]:
    """Top-level keys and config groups of the primary config (for telling ``key=value``
    from a file name that contains ``=``)."""
    from omegaconf import OmegaConf

    keys: set[str] = set()
    doc = OmegaConf.load(spec.config_dir / f"{spec.config_name}.yaml")
    keys.update(str(k) for k in doc.keys())
    keys.update(p.name for p in spec.config_dir.iterdir() if p.is_dir())
    return keys


def split_args(argv: Sequence[str], spec: EntrySpec) -> tuple[list[str], dict[str, str], bool, bool]:
    """Separate path settings from what Hydra should parse.

    Returns:
        ``(hydra_args, paths, multirun, runs_job)``: the arguments for Hydra, the
        verbatim path settings ``{key: value}``, whether ``-m`` was given, and whether the
        command runs a job at all (not ``--help``, ``--cfg``, ...).

    Raises:
        InputError: more than one positional path.
    """
    hydra_args: list[str] = []
    paths: dict[str, str] = {}
    positional: list[str] = []
    multirun = any(a in _MULTIRUN_FLAGS for a in argv)
    runs_job = not any(a in _NO_JOB_FLAGS or a.split("=", 1)[0] in _NO_JOB_FLAGS for a in argv)
    keys = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-") and not os.path.lexists(arg):
            hydra_args.append(arg)
            if arg in _FLAGS_WITH_VALUE and i < len(argv):
                hydra_args.append(argv[i])
                i += 1
            continue
        key, eq, value = arg.partition("=")
        if eq and key in spec.path_keys:
            # in a sweep, leave `image=a.jpg,b.jpg` to Hydra unless it is one real path
            if multirun and not os.path.lexists(value) and _hydra_parses(arg):
                hydra_args.append(arg)
            else:
                paths[key] = value
            continue
        if not eq:
            positional.append(arg)
            continue
        if keys is None:
            keys = _primary_keys(spec)
        bare = key.lstrip("+~").split(".")[0].split("/")[0].split("@")[0]
        if bare not in keys and os.path.lexists(arg):
            positional.append(arg)  # a file name with '=' in it
        else:
            hydra_args.append(arg)
    if positional:
        if spec.positional is None:
            raise InputError(f"unexpected argument {positional[0]!r}; settings are given as key=value")
        if len(positional) > 1 or spec.positional in paths:
            raise InputError(f"give one {spec.positional} per run (got {len(positional) + (spec.positional in paths)}:"
                             f" {', '.join(repr(p) for p in positional)}); put the photos in a folder and pass the folder")
        paths[spec.positional] = positional[0]
    return hydra_args, paths, multirun, runs_job


def _hydra_parses(arg: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([arg])
    except Exception:  # noqa: BLE001 - any grammar error means "not Hydra's"
        return False
    return True


def _config_keys(spec: EntrySpec) -> list[str]:
    """Every dotted key of the composed default config (for "did you mean")."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(spec.config_dir), version_base="1.3"):
        cfg = compose(spec.config_name)
    out: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        for k in node.keys():
            full = f"{prefix}{k}"
            out.append(full)
            child = node._get_node(k)
            if isinstance(child, DictConfig):
                walk(child, f"{full}.")

    walk(cfg, "")
    return out


def _unknown_key_message(spec: EntrySpec, key: str) -> str:
    keys = _config_keys(spec)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; see conf/{spec.config_name}.yaml for the settings"
    return f"unknown setting {key!r}{hint}"


def _hydra_error_message(spec: EntrySpec, e: Exception, overrides: Sequence[str]) -> str:
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(e)
    if isinstance(e, MissingConfigException):
        m = re.search(r"Could not find '([^']+)/([^']+)'", text)
        opts = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)*)", text)
        if m:
            choices = ", ".join(o.strip() for o in opts.group(1).splitlines() if o.strip()) if opts else ""
            return f"no {m.group(1)} {m.group(2)!r}" + (f"; choose one of: {choices}" if choices else "")
    if isinstance(e, OverrideParseException):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        for o in overrides:
            try:
                OverridesParser.create().parse_overrides([o])
            except Exception:  # noqa: BLE001
                return (f"cannot read the argument {o!r} ({one_line(e)}); "
                        "quote values holding special characters, e.g. key='a b'")
    m = re.match(r"Could not override '([^']+)'", text)
    if m and "not in struct" in str(e.__cause__ or ""):
        return _unknown_key_message(spec, m.group(1))
    if text.startswith("Ambiguous value"):
        return one_line(e) + "; for a list use key=[a,b], to sweep add -m"
    return one_line(e)


def precheck(spec: EntrySpec, overrides: Sequence[str]) -> None:
    """Compose the config with ``overrides`` as Hydra will, turning what Hydra would print
    as a multi-line error into :class:`InputError`; also refuse ``+key=value`` for keys the
    config does not have (Hydra would add them, and they would do nothing)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(spec.config_dir), version_base="1.3"):
            compose(spec.config_name, overrides=list(overrides))
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise InputError(_hydra_error_message(spec, e, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    keys = None
    for o in parsed:
        if o.is_add() and "/" not in o.key_or_group and not o.key_or_group.startswith("hydra"):
            keys = keys if keys is not None else set(_config_keys(spec))
            if o.key_or_group not in keys:
                raise InputError(_unknown_key_message(spec, o.key_or_group))


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _interrupted(e: BaseException) -> int:
    signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
    _say_error(f"interrupted by {signal.Signals(signum).name}; nothing half-written was kept")
    return 128 + int(signum)


def entry(main: Callable[[], Any], spec: EntrySpec, argv: Sequence[str] | None = None) -> int:
    """Run the ``@hydra.main`` function ``main`` on ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status (see the module docstring); never raises for user errors.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    old_term = signal.getsignal(signal.SIGTERM)
    in_main = _in_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_sigterm)
    saved_argv = sys.argv
    try:
        hydra_args, paths, multirun, runs_job = split_args(argv, spec)
        overrides = [a for a in hydra_args if not a.startswith("-")]
        if runs_job and not multirun:
            precheck(spec, overrides)
        _PATHS.clear()
        _PATHS.update(paths)
        _ARGV[:] = argv
        sys.argv = [saved_argv[0] if saved_argv else spec.config_name, *hydra_args]
        try:
            main()
        except SystemExit as e:
            return _exit_code(e.code)
        return 0
    except InputError as e:
        _say_error(one_line(e))
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted) as e:
        return _interrupted(e)
    finally:
        sys.argv = saved_argv
        _PATHS.clear()
        _ARGV.clear()
        if in_main:
            signal.signal(signal.SIGTERM, old_term)


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def apply_paths(cfg: Any) -> None:
    """Put the verbatim path settings of the command line into ``cfg`` (literal strings)."""
    from omegaconf import OmegaConf, open_dict

    with open_dict(cfg):
        for key, value in _PATHS.items():
            OmegaConf.update(cfg, key, escape_interpolation(value), merge=False)


def in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def run_job(cfg: Any, task: Callable[[Any], int]) -> None:
    """The body of a ``@hydra.main`` function: run ``task(cfg)`` (which returns an exit
    status) with every failure turned into one ``error:`` line and an exit status.

    In a multirun a job's bad input is reported and the sweep goes on.
    """
    from omegaconf.errors import OmegaConfBaseException

    code = 0
    started = time.time()
    try:
        apply_paths(cfg)
        code = task(cfg)
    except (InputError, AssetMissingError) as e:
        _say_error(one_line(e))
        code = EXIT_BAD_INPUT
    except OmegaConfBaseException as e:
        _say_error(f"bad setting: {one_line(e)}")
        code = EXIT_BAD_INPUT
    except OSError as e:
        _say_error(os_error_message(e))
        code = EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted) as e:
        sys.exit(_interrupted(e))
    except Exception as e:  # noqa: BLE001 - last resort: a bug, reported on one line
        if os.environ.get("FACEREFL_DEBUG"):
            traceback.print_exc()
        _say_error(f"internal error ({type(e).__name__}: {one_line(e)}); "
                   "rerun with FACEREFL_DEBUG=1 for the traceback and report it")
        code = EXIT_INTERNAL
    if code == EXIT_BAD_INPUT and not in_multirun():  # a sweep keeps its job folders for gather
        _remove_unused_run_dir(started)
    if code and not (code == EXIT_BAD_INPUT and in_multirun()):
        sys.exit(code)


def _remove_unused_run_dir(started: float) -> None:
    """After bad input, remove the run folder Hydra made for this job if it holds only
    Hydra's own records (``.hydra/``, empty logs), and the parents made with it, so a
    refused command leaves nothing behind."""
    try:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    except (ImportError, ValueError):
        return
    cwd = Path.cwd().resolve()
    if run_dir == cwd or cwd not in run_dir.parents or not run_dir.is_dir():
        return
    for p in run_dir.iterdir():
        if not (p.name == ".hydra" or (p.suffix == ".log" and p.is_file() and p.stat().st_size == 0)):
            return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:
        if parent == cwd or not parent.is_dir() or parent.stat().st_ctime < started - 1 or any(parent.iterdir()):
            break
        parent.rmdir()
