"""On-disk caches of synthetic examples: safetensors shards plus a JSON manifest.

Layout of a cache folder::

    manifest.json             format, count, settings, fields, shard list
    shard_00000.safetensors   every ReflectanceBatch field of up to ``shard_size``
    shard_00001.safetensors   examples, stacked along dim 0 (no pickle anywhere)

Shards and the manifest are written atomically (temp file + ``os.replace``); the manifest
is written last, so a folder with a manifest is complete.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, UnwrapFailed
from facerefl.data.types import ReflectanceBatch
from facerefl.errors import InputError, OutputExistsError
from facerefl.fsutil import atomic_write, atomic_write_text

FORMAT = "facerefl-synthetic-v1"
MANIFEST = "manifest.json"
#: Fields a training cache keeps by default (the evaluation-only ones are large).
TRAIN_FIELDS = ("texture", "albedo", "specular", "normal", "light", "uv_mask", "seed")


def _save_shard(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp),
                 make_parents=True)


# Worker-process state for parallel generation (one generator per process).
_WORKER_GEN: ExampleGenerator | None = None


def _init_worker(settings: GeneratorSettings) -> None:
    global _WORKER_GEN
    torch.set_num_threads(1)
    _WORKER_GEN = ExampleGenerator(settings)


def _work(seed: int) -> dict[str, np.ndarray] | str:
    """Example ``seed`` as numpy arrays: they are pickled by value, whereas a tensor sent to
    the parent holds an open file descriptor for as long as it lives, and the parent keeps
    a whole shard (a 6400-example shard ran out of descriptors). A seed whose photo the
    geometry stage rejects (``unwrap="photo"``) gives the reason instead."""
    assert _WORKER_GEN is not None
    try:
        return {k: v.numpy() for k, v in _WORKER_GEN(seed).tensors().items()}
    except UnwrapFailed as e:
        return str(e)


def generate(settings: GeneratorSettings, seeds: list[int],
             workers: int = 1) -> Iterator[ReflectanceBatch | str]:
    """Examples of ``seeds`` in order, made by ``workers`` processes (1: in this process);
    in place of an example whose photo the geometry stage rejects (only with
    ``settings.unwrap == "photo"``), the one-line reason."""
    if workers <= 1:
        gen = ExampleGenerator(settings)
        for s in seeds:
            try:
                yield gen(s)
            except UnwrapFailed as e:
                yield str(e)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        for arrays in pool.imap(_work, seeds, chunksize=4):
            yield arrays if isinstance(arrays, str) else ReflectanceBatch(
                **{k: torch.from_numpy(v) for k, v in arrays.items()})


def settings_to_json(settings: GeneratorSettings) -> dict:
    return dataclasses.asdict(settings)


def write_cache(
    out: Path,
    settings: GeneratorSettings,
    seeds: list[int],
    shard_size: int = 256,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    fields: tuple[str, ...] | None = TRAIN_FIELDS,
    half: bool = True,
) -> dict:
    """Generate the examples of ``seeds`` and store them as a cache folder ``out``.

    Args:
        fields: fields to keep (None: every field that is set).
        half: store floating-point fields as float16 (read back as float32).

    Seeds whose photo the geometry stage rejects (``settings.unwrap == "photo"``) are left
    out: the manifest's ``count`` is what was stored, ``skipped`` maps each such seed to
    the reason.

    Raises:
        OutputExistsError: ``out`` already holds a cache and ``overwrite`` is False.
        InputError: no seeds, a non-positive shard size, or every photo rejected.
    """
    out = Path(out)
    if not seeds:
        raise InputError("no examples requested; pass --n 1 or more")
    if shard_size < 1:
        raise InputError(f"shard size must be positive, got {shard_size}")
    if (out / MANIFEST).exists() and not overwrite:
        raise OutputExistsError(f"{out} already holds a cache; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()
    for old in out.glob("shard_*.safetensors"):
        old.unlink()
    t0 = time.perf_counter()
    shards, pending, pending_seeds, stored, skipped = [], [], [], None, {}  # skipped: seed -> reason
    for i, ex in enumerate(generate(settings, seeds, workers)):
        if isinstance(ex, str):
            skipped[str(seeds[i])] = ex
        else:
            # kept fields only, stored precision: a shard waits in memory until it is complete
            pending.append({k: (v.half() if half and v.is_floating_point() else v)
                            for k, v in ex.tensors().items() if fields is None or k in fields})
            pending_seeds.append(int(seeds[i]))
        if pending and (len(pending) == shard_size or i == len(seeds) - 1):
            tensors = {k: torch.cat([p[k] for p in pending]) for k in pending[0]}
            name = f"shard_{len(shards):05d}.safetensors"
            _save_shard(out / name, tensors)
            shards.append({"file": name, "count": len(pending), "seeds": pending_seeds})
            stored = stored or {k: {"shape": list(v.shape[1:]),
                                    "dtype": str(v.dtype).replace("torch.", "")}
                                for k, v in tensors.items()}
            pending, pending_seeds = [], []
        if progress is not None:
            progress(i + 1, len(seeds))
    if not shards:
        raise InputError(f"the geometry stage rejected all {len(seeds)} photos; no cache written")
    manifest = {
        "format": FORMAT,
        "count": sum(sh["count"] for sh in shards),
        "seconds": round(time.perf_counter() - t0, 2),
        "settings": settings_to_json(settings),
        "fields": stored,
        "shards": shards,
    }
    if skipped:
        manifest["skipped"] = skipped
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1), make_parents=True)
    return manifest


def read_manifest(folder: Path) -> dict:
    """The manifest of a cache folder; raises InputError when it is missing or foreign."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise InputError(f"{folder} holds no synthetic cache ({MANIFEST} missing); "
                         "build one with `python -m facerefl.data.make_cache --out FOLDER`")
    m = json.loads(path.read_text(encoding="utf-8"))
    if m.get("format") != FORMAT:
        raise InputError(f"{path} has format {m.get('format')!r}, expected {FORMAT!r}")
    return m


def _widen(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class CachedDataset(torch.utils.data.Dataset):
    """Map-style dataset over a cache folder; item ``i`` is a ReflectanceBatch of one.

    Shards are opened lazily with ``safetensors.safe_open`` (memory-mapped, no pickle) and
    kept open; an item reads its own rows with ``get_slice``, at the stored precision
    (float16 in a training cache), and widens them. Random access over many shards thus
    costs one row each, not a shard reload, and the page cache shares the data between
    DataLoader workers. Open handles are not pickled: a spawned worker reopens its own.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self._starts = []
        n = 0
        for s in self.manifest["shards"]:
            self._starts.append(n)
            n += s["count"]
        self._len = n
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return self._len

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}

    def _handle(self, k: int):
        if k not in self._handles:
            path = self.folder / self.manifest["shards"][k]["file"]
            self._handles[k] = safe_open(str(path), framework="pt")
        return self._handles[k]

    def __getitem__(self, i: int) -> ReflectanceBatch:
        if not -self._len <= i < self._len:
            raise IndexError(f"index {i} out of range for a cache of {self._len} examples")
        i %= self._len
        k = bisect.bisect_right(self._starts, i) - 1
        j = i - self._starts[k]
        f = self._handle(k)
        return ReflectanceBatch(**{name: _widen(f.get_slice(name)[j:j + 1]) for name in f.keys()})


def cache_folders(folders: "Path | str | Sequence[Path | str]") -> list[Path]:
    """One cache folder or several as a list of paths (``~`` expanded)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    return [Path(f).expanduser() for f in folders]


def open_caches(folders: "Path | str | Sequence[Path | str]") -> torch.utils.data.Dataset:
    """One cache folder as a :class:`CachedDataset`, or several (made with disjoint seeds,
    e.g. a larger training set grown in steps) as their concatenation, in the given order.

    Raises:
        InputError: a folder holds no cache, or the folders store different fields.
    """
    sets = [CachedDataset(f) for f in cache_folders(folders)]
    if not sets:
        raise InputError("an empty list of cache folders")
    for ds in sets[1:]:
        if ds.manifest["fields"] != sets[0].manifest["fields"]:
            raise InputError(f"{ds.folder} stores other fields than {sets[0].folder}; "
                             "caches trained on together must be made with the same settings")
    return sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets)


def cache_count(folders: "Path | str | Sequence[Path | str]") -> int:
    """Examples in one cache folder or in several together."""
    return sum(int(read_manifest(f)["count"]) for f in cache_folders(folders))


class SyntheticDataset(torch.utils.data.Dataset):
    """Map-style dataset generating example ``first_seed + i`` on the fly.

    Example ``i`` depends only on its seed, so every DataLoader worker (each builds its
    own generator on first use) produces the same data in any order. ``len`` is
    ``length``; with ``unbounded`` any index >= 0 is accepted (see :class:`EpochSampler`).
    """

    def __init__(self, settings: GeneratorSettings, length: int, first_seed: int = 0,
                 unbounded: bool = False) -> None:
        if length < 1:
            raise InputError(f"dataset length must be positive, got {length}")
        self.settings, self.length, self.first_seed = settings, int(length), int(first_seed)
        self.unbounded = unbounded
        self._gen: ExampleGenerator | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> ReflectanceBatch:
        if i < 0 or (i >= self.length and not self.unbounded):
            raise IndexError(f"index {i} out of range for {self.length} examples")
        if self._gen is None:
            self._gen = ExampleGenerator(self.settings)
        return self._gen(self.first_seed + i)


class EpochSampler(torch.utils.data.Sampler[int]):
    """Indices ``e * n .. (e + 1) * n - 1`` in a shuffled order for the e-th pass.

    With an unbounded :class:`SyntheticDataset` every epoch sees ``n`` new examples; the
    order and the examples depend only on ``seed`` and the epoch number, so a run is
    reproducible whatever the worker count.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch = int(n), int(seed), shuffle, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        base = self.epoch * self.n
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        self.epoch += 1
        return iter((base + order).tolist())


def print_progress(done: int, total: int) -> None:
    """Progress line on stderr (every 5 %)."""
    step = max(1, total // 20)
    if done % step == 0 or done == total:
        print(f"  {done}/{total}", file=sys.stderr, flush=True)
