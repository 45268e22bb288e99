"""A battery of hostile inputs and arguments for ``optimize.py`` and ``evaluate.py``.

Every case must end with exit status 2, exactly one ``error:`` line on stderr, no
traceback, and nothing left behind in the working folder (where the outputs would go).
The cases run the scripts' own ``run(argv)`` in-process (the same code path as
``python optimize.py ...``, minus the interpreter start); a representative subset runs
as real processes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fit.conftest import tiny_nets, tiny_weights  # noqa: F401  (fixtures)
from tests.tasks.cli_helpers import run_inprocess, run_process, tree

NO_GPU = not torch.cuda.is_available()


@dataclass(frozen=True)
class Inputs:
    dir: Path
    weights: Path

    def __getattr__(self, name: str) -> str:  # inp.face -> path of the named input as text
        raise AttributeError(name)

    def p(self, name: str) -> str:
        return str(self.dir / name)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels, with no image data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) \
        + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_weights) -> Inputs:  # noqa: F811
    import skimage.data

    d = tmp_path_factory.mktemp("hostile")
    face = skimage.data.astronaut()
    Image.fromarray(face).save(d / "face.png")
    Image.fromarray(skimage.data.chelsea()).save(d / "cat.jpg")
    (d / "notes.txt").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    full = (d / "face.png").read_bytes()
    (d / "truncated.png").write_bytes(full[: len(full) // 3])
    (d / "text.jpg").write_text("<html>this is not a JPEG</html>")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "one_pixel.png")
    (d / "bomb.png").write_bytes(_png_header_only(60000, 60000))
    Image.fromarray(np.ascontiguousarray(face[::-1, ::-1])).save(d / "upside_down.png")
    for sub in ("empty_dir", "hidden_only", "all_bad", "texts_only", "corrupt_weights"):
        (d / sub).mkdir()
    (d / "hidden_only" / ".face.png").write_bytes(full)
    (d / "all_bad" / "a.txt").write_text("x")
    (d / "all_bad" / "b.jpg").write_text("not a jpeg")
    (d / "all_bad" / "c.png").write_bytes(b"")
    (d / "texts_only" / "readme.md").write_text("# photos go here")
    for f in tiny_weights.iterdir():
        data = f.read_bytes()
        if f.suffix == ".safetensors":
            data = data[:40] + b"\x00garbage" * 20  # a damaged download
        (d / "corrupt_weights" / f.name).write_bytes(data)
    (d / "weights_file.bin").write_bytes(b"\x00" * 16)
    return Inputs(d, tiny_weights)


# (id, script, argv(inputs, cwd) -> list, what the error line must contain)
CASES = [
    # --- settings of the wrong type or out of range
    ("iterations-abc", "optimize", lambda i, c: [i.p("face.png"), "iterations=abc"], "iterations must be a whole number"),
    ("iterations-fraction", "optimize", lambda i, c: [i.p("face.png"), "iterations=1.5"], "got 1.5"),
    ("iterations-negative", "optimize", lambda i, c: [i.p("face.png"), "iterations=-1"], "iterations must be"),
    ("iterations-bool", "optimize", lambda i, c: [i.p("face.png"), "iterations=true"], "whole number"),
    ("iterations-list", "optimize", lambda i, c: [i.p("face.png"), "iterations=[1,2]"], "whole number"),
    ("iterations-empty", "optimize", lambda i, c: [i.p("face.png"), "iterations="], "whole number"),
    ("iterations-huge", "optimize", lambda i, c: [i.p("face.png"), "iterations=1e12"], "iterations must be"),
    ("iterations-nan", "optimize", lambda i, c: [i.p("face.png"), "iterations=nan"], "whole number"),
    ("iterations-interpolation", "optimize", lambda i, c: [i.p("face.png"), "iterations=${nope}"], "nope"),
    ("roughness-abc", "optimize", lambda i, c: [i.p("face.png"), "fit.roughness=abc"], "fit.roughness"),
    ("roughness-zero", "optimize", lambda i, c: [i.p("face.png"), "fit.roughness=0"], "fit.roughness"),
    ("roughness-above-1", "optimize", lambda i, c: [i.p("face.png"), "fit.roughness=1.5"], "fit.roughness"),
    ("roughness-inf", "optimize", lambda i, c: [i.p("face.png"), "fit.roughness=inf"], "finite number"),
    ("lr-negative", "optimize", lambda i, c: [i.p("face.png"), "fit.lr=-0.1"], "fit.lr"),
    ("lr-zero", "optimize", lambda i, c: [i.p("face.png"), "fit.lr=0"], "fit.lr"),
    ("betas-one", "optimize", lambda i, c: [i.p("face.png"), "fit.betas=[0.9]"], "fit.betas"),
    ("betas-text", "optimize", lambda i, c: [i.p("face.png"), "fit.betas=abc"], "fit.betas"),
    ("optimize-unknown-map", "optimize", lambda i, c: [i.p("face.png"), "fit.optimize=[albedo,bogus]"], "bogus"),
    ("optimize-empty", "optimize", lambda i, c: [i.p("face.png"), "fit.optimize=[]"], "fit.optimize"),
    ("spec-model", "optimize", lambda i, c: [i.p("face.png"), "fit.spec_model=phong"], "lobe, paper"),
    ("early-stop-maybe", "optimize", lambda i, c: [i.p("face.png"), "fit.early_stop=maybe"], "true or false"),
    ("patience-zero", "optimize", lambda i, c: [i.p("face.png"), "fit.patience=0"], "fit.patience"),
    ("refine-negative", "optimize", lambda i, c: [i.p("face.png"), "fit.refine_iterations=-5"], "refine_iterations"),
    ("refine-size-tiny", "optimize", lambda i, c: [i.p("face.png"), "fit.refine_size=3"], "refine_size"),
    ("tol-negative", "optimize", lambda i, c: [i.p("face.png"), "fit.tol=-1"], "fit.tol"),
    ("overwrite-no", "optimize", lambda i, c: [i.p("face.png"), "overwrite=no"], "overwrite must be true or false"),
    ("overwrite-yes", "optimize", lambda i, c: [i.p("face.png"), "overwrite=yes"], "true or false"),
    ("overwrite-1", "optimize", lambda i, c: [i.p("face.png"), "overwrite=1"], "true or false"),
    ("progress-off", "optimize", lambda i, c: [i.p("face.png"), "progress=off"], "progress"),
    ("threads-negative", "optimize", lambda i, c: [i.p("face.png"), "threads=-1"], "threads must be between 1"),
    ("threads-zero", "optimize", lambda i, c: [i.p("face.png"), "threads=0"], "threads"),
    ("threads-text", "optimize", lambda i, c: [i.p("face.png"), "threads=two"], "threads"),
    pytest.param("device-cuda", "optimize", lambda i, c: [i.p("face.png"), "device=cuda"], "no CUDA GPU",
                 marks=pytest.mark.skipif(not NO_GPU, reason="a GPU is present")),
    pytest.param("device-cuda-7", "optimize", lambda i, c: [i.p("face.png"), "device=cuda:7"], "cuda",
                 marks=pytest.mark.skipif(torch.cuda.device_count() > 7, reason="8 GPUs present")),
    ("device-tpu", "optimize", lambda i, c: [i.p("face.png"), "device=tpu"], "cpu, cuda or cuda:N"),
    ("seed-negative", "optimize", lambda i, c: [i.p("face.png"), "seed=-1"], "seed"),
    ("seed-text", "optimize", lambda i, c: [i.p("face.png"), "seed=abc"], "seed"),
    ("resolution-zero", "optimize", lambda i, c: [i.p("face.png"), "geometry.resolution=0"], "geometry.resolution"),
    ("resolution-text", "optimize", lambda i, c: [i.p("face.png"), "geometry.resolution=big"], "geometry.resolution"),
    ("fov-zero", "optimize", lambda i, c: [i.p("face.png"), "geometry.fov_deg=0"], "geometry.fov_deg"),
    ("fov-200", "optimize", lambda i, c: [i.p("face.png"), "geometry.fov_deg=200"], "geometry.fov_deg"),
    ("backend", "optimize", lambda i, c: [i.p("face.png"), "geometry.raster_backend=opengl"], "torch, nvdiffrast"),
    ("subdivisions", "optimize", lambda i, c: [i.p("face.png"), "geometry.subdivisions=9"], "subdivisions"),
    ("max-side", "optimize", lambda i, c: [i.p("face.png"), "geometry.max_side=10"], "max_side"),
    ("exr-maybe", "optimize", lambda i, c: [i.p("face.png"), "export.exr=maybe"], "export.exr"),
    ("environment-unknown", "optimize", lambda i, c: [i.p("face.png"), "export.environments=[nowhere]",
                                                        f"weights={i.weights}"], "nowhere"),
    ("environments-not-list", "optimize", lambda i, c: [i.p("face.png"), "export.environments=studio"], "list"),
    ("yaw-text", "optimize", lambda i, c: [i.p("face.png"), "export.novel_yaw_degrees=left"], "novel_yaw"),
    ("distributed-sometimes", "optimize", lambda i, c: [i.p("face.png"), "distributed.enabled=sometimes"],
     "distributed.enabled"),
    # --- keys, config groups and grammar
    ("unknown-key", "optimize", lambda i, c: [i.p("face.png"), "foo=1"], "unknown setting 'foo'"),
    ("misspelt-key", "optimize", lambda i, c: [i.p("face.png"), "iteration=5"], "did you mean iterations"),
    ("added-unknown-key", "optimize", lambda i, c: [i.p("face.png"), "+foo=1"], "unknown setting 'foo'"),
    ("misspelt-nested-key", "optimize", lambda i, c: [i.p("face.png"), "fit.roughnes=0.5"], "fit.roughness"),
    ("preset-bogus", "optimize", lambda i, c: [i.p("face.png"), "preset=bogus"], "choose one of: cpu, paper"),
    ("logger-bogus", "optimize", lambda i, c: [i.p("face.png"), "logger=nope"], "no logger 'nope'"),
    ("ambiguous-sweep", "optimize", lambda i, c: [i.p("face.png"), "iterations=1,2"], "to sweep add -m"),
    ("grammar", "optimize", lambda i, c: [i.p("face.png"), "iterations=[1,2"], "cannot read the argument"),
    # --- inputs
    ("no-input", "optimize", lambda i, c: [], "no input given"),
    ("missing-photo", "optimize", lambda i, c: ["image=/nonexistent/photo.jpg"], "does not exist"),
    ("missing-odd-positional", "optimize", lambda i, c: ["missing photo (2) [a];b&c.jpg"], "does not exist"),
    ("two-positionals", "optimize", lambda i, c: [i.p("face.png"), i.p("cat.jpg")], "one image per run"),
    ("positional-and-image", "optimize", lambda i, c: [i.p("face.png"), f"image={i.p('cat.jpg')}"], "one image"),
    ("empty-image", "optimize", lambda i, c: ["image="], "no input given"),
    ("empty-folder", "optimize", lambda i, c: [i.p("empty_dir")], "holds no files"),
    ("hidden-only-folder", "optimize", lambda i, c: [i.p("hidden_only")], "holds no files"),
    ("all-bad-folder", "optimize", lambda i, c: [i.p("all_bad"), f"weights={i.weights}"], "none of the 3 file(s)"),
    ("not-an-image", "optimize", lambda i, c: [i.p("notes.txt"), f"weights={i.weights}"], "cannot read"),
    ("empty-file", "optimize", lambda i, c: [i.p("empty.png"), f"weights={i.weights}"], "empty.png"),
    ("truncated-png", "optimize", lambda i, c: [i.p("truncated.png"), f"weights={i.weights}"], "truncated"),
    ("html-as-jpeg", "optimize", lambda i, c: [i.p("text.jpg"), f"weights={i.weights}"], "cannot read"),
    ("one-pixel", "optimize", lambda i, c: [i.p("one_pixel.png"), f"weights={i.weights}"], "face"),
    ("decompression-bomb", "optimize", lambda i, c: [i.p("bomb.png"), f"weights={i.weights}"], "megapixels"),
    ("device-file", "optimize", lambda i, c: ["/dev/null", f"weights={i.weights}"], "not a file"),
    ("no-face", "optimize", lambda i, c: [i.p("cat.jpg"), f"weights={i.weights}"], "no face found"),
    ("upside-down", "optimize", lambda i, c: [i.p("upside_down.png"), f"weights={i.weights}"], "upside down"),
    # --- weights
    ("weights-missing", "optimize", lambda i, c: [i.p("face.png"), "weights=/nonexistent/weights"], "config.json"),
    ("weights-corrupt", "optimize", lambda i, c: [i.p("face.png"), f"weights={i.p('corrupt_weights')}"],
     "cannot load the weights"),
    ("weights-a-file", "optimize", lambda i, c: [i.p("face.png"), f"weights={i.p('weights_file.bin')}"],
     "config.json"),
    # --- output folders
    ("output-is-a-file", "optimize", lambda i, c: [i.p("face.png"), f"output_dir={c / 'taken.txt'}",
                                                     f"weights={i.weights}"], "not a folder"),
    ("output-not-empty", "optimize", lambda i, c: [i.p("face.png"), f"output_dir={c / 'busy'}",
                                                     f"weights={i.weights}"], "overwrite=true"),
    ("overwrite-foreign-folder", "optimize", lambda i, c: [i.p("face.png"), f"output_dir={c / 'busy'}",
                                                             "overwrite=true", f"weights={i.weights}"],
     "not a facerefl result"),
    ("output-name-too-long", "optimize", lambda i, c: [i.p("face.png"), f"output_dir={c / ('n' * 300)}",
                                                         f"weights={i.weights}"], "too long"),
    ("output-under-a-file", "optimize", lambda i, c: [i.p("face.png"), f"output_dir={c / 'taken.txt' / 'x'}",
                                                        f"weights={i.weights}"], "taken.txt"),
    # --- evaluate.py
    ("evaluate-photos-missing", "evaluate", lambda i, c: ["photos=/nonexistent/photos", f"output_dir={c / 'ev'}"],
     "does not exist"),
    ("evaluate-photos-empty", "evaluate", lambda i, c: [f"photos={i.p('empty_dir')}", f"output_dir={c / 'ev'}"],
     "holds no files"),
    ("evaluate-photos-no-images", "evaluate", lambda i, c: [f"photos={i.p('texts_only')}",
                                                              f"output_dir={c / 'ev'}"], "no image files"),
    ("evaluate-unknown-key", "evaluate", lambda i, c: ["foo=1"], "unknown setting 'foo'"),
    ("evaluate-ablation-bogus", "evaluate", lambda i, c: ["ablation=bogus"], "no ablation 'bogus'"),
    ("evaluate-positional", "evaluate", lambda i, c: ["photos"], "key=value"),
]


def _ids(cases):
    return [c.values[0] if hasattr(c, "values") else c[0] for c in cases]


def test_the_battery_is_large():
    assert len(CASES) >= 60


def _prepare(cwd: Path) -> None:
    (cwd / "taken.txt").write_text("a file where a folder is expected")
    (cwd / "busy").mkdir()
    (cwd / "busy" / "mine.txt").write_text("someone's files")


@pytest.mark.parametrize("case_id, script, argv, needle", CASES, ids=_ids(CASES))
def test_hostile_input_is_one_clean_error(case_id, script, argv, needle, inputs, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEREFL_ROOT", str(tmp_path))
    _prepare(tmp_path)
    before = tree(tmp_path)
    args = argv(inputs, tmp_path)
    if script == "optimize" and not any(a.startswith("export.environments") for a in args):
        args.append("export.environments=[]")  # relit renders are not what these cases test
    r = run_inprocess(script, args, capfd)
    lines = r.error_lines()
    assert r.code == 2, (r.code, r.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-1500:]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert tree(tmp_path) == before, sorted(tree(tmp_path) - before)


# A representative subset through the real scripts (interpreter start, sys.argv, exit status).
PROCESS_CASES = [
    ("optimize", lambda i: ["missing photo (1) é ${x}.jpg"], "does not exist"),
    ("optimize", lambda i: [i.p("face.png"), "overwrite=no"], "overwrite must be true or false"),
    ("optimize", lambda i: [i.p("face.png"), "iteration=5"], "did you mean iterations"),
    ("evaluate", lambda i: ["photos=/nonexistent/photos"], "does not exist"),
]


@pytest.mark.parametrize("script, argv, needle", PROCESS_CASES, ids=[f"{s}-{n}" for s, _, n in PROCESS_CASES])
def test_hostile_input_through_the_script(script, argv, needle, inputs, tmp_path):
    _prepare(tmp_path)
    before = tree(tmp_path)
    r = run_process(script, argv(inputs), cwd=tmp_path, env={"FACEREFL_ROOT": str(tmp_path)})
    lines = r.error_lines()
    assert r.code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert tree(tmp_path) == before
