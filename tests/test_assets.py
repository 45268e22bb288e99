"""facerefl.assets: cache location, verification and errors, with a local fake archive."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile

import pytest

from facerefl import assets


def _make_archive(path):
    """A tiny npm-style tarball (package/ root) holding one data file."""
    with tarfile.open(path, "w:gz") as tar:
        data = b"hello asset\n"
        info = tarfile.TarInfo("package/data.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_upper(src, out):
    """Converter used by the fake package: upper-cases data.txt."""
    (out / "DATA.TXT").write_text((src / "data.txt").read_text().upper())


@pytest.fixture
def fake(monkeypatch, tmp_path):
    archive = tmp_path / "fake-1.0.tgz"
    digest = _make_archive(archive)
    pkg = assets.Package(name="fake", kind="npm", spec="fake@1.0", sha256=digest,
                         converter=f"{__name__}:convert_upper", outputs=("DATA.TXT",),
                         license="MIT")
    monkeypatch.setitem(assets.PACKAGES, "fake", pkg)
    calls = []

    def download(p, dest):
        calls.append(p.spec)
        out = dest / archive.name
        out.write_bytes(archive.read_bytes())
        return out

    monkeypatch.setattr(assets, "_download", download)
    monkeypatch.setenv("FACEREFL_CACHE", str(tmp_path / "cache"))
    return pkg, calls, tmp_path / "cache"


def test_cache_override_and_fetch(fake):
    pkg, calls, cache = fake
    assert assets.cache_dir() == cache
    assert not assets.is_ready("fake")
    folder = assets.fetch("fake")
    assert folder == cache / "fake"
    assert (folder / "DATA.TXT").read_text() == "HELLO ASSET\n"
    assert "sha256 " + pkg.sha256 in (folder / "SOURCE.txt").read_text()
    assert assets.asset_path("fake", "DATA.TXT") == folder / "DATA.TXT"
    assets.fetch("fake")  # idempotent: cached, so no second download
    assert calls == ["fake@1.0"]
    assets.fetch("fake", force=True)
    assert calls == ["fake@1.0", "fake@1.0"]
    assert sorted(p.name for p in cache.iterdir()) == ["fake"]  # no temp folders left


def test_xdg_default(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEREFL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert assets.cache_dir() == tmp_path / "facerefl"


def test_sha_mismatch_is_clear_and_leaves_no_cache(fake, monkeypatch):
    pkg, _, cache = fake
    monkeypatch.setitem(assets.PACKAGES, "fake", dataclasses.replace(pkg, sha256="0" * 64))
    with pytest.raises(assets.AssetMissingError, match="sha256 mismatch for fake@1.0"):
        assets.fetch("fake")
    assert not (cache / "fake").exists()


def test_missing_asset_names_the_fix(fake):
    with pytest.raises(assets.AssetMissingError, match="make setup") as e:
        assets.asset_path("fake", "DATA.TXT")
    assert "python -m facerefl.assets fetch fake" in str(e.value)


def test_missing_npm_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on the PATH
    pkg = assets.Package("x", "npm", "x@1", "0" * 64, "m:f", ("a",), "MIT")
    with pytest.raises(assets.AssetMissingError, match="install Node.js/npm"):
        assets._download(pkg, tmp_path)


def test_cli_reports_errors_in_one_line(fake, monkeypatch, capsys):
    pkg, _, _ = fake
    monkeypatch.setitem(assets.PACKAGES, "fake", dataclasses.replace(pkg, sha256="1" * 64))
    assert assets.main(["fetch", "fake"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: sha256 mismatch") and "\n" not in err
    assert assets.main(["fetch", "nope"]) == 2
    assert "unknown asset package" in capsys.readouterr().err


def test_unknown_package_and_unsafe_archive(tmp_path):
    with pytest.raises(KeyError, match="unknown asset package"):
        assets.asset_dir("nope")
    bad = tmp_path / "bad.tgz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "out").mkdir()
    with pytest.raises(assets.AssetMissingError, match="unsafe archive member"):
        assets._safe_extract(bad, tmp_path / "out")
