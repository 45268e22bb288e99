"""Contact sheet of optimize output folders."""

import numpy as np
import pytest
from PIL import Image

from facerefl.errors import InputError
from facerefl.eval.sheet import COLUMNS, main, make_sheet


def _folder(root, name, relit):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text("{}")
    for f in (*COLUMNS, *relit):
        rgba = np.zeros((40, 60, 4), np.uint8)
        rgba[10:30, 20:40] = (200, 100, 50, 255)  # an opaque face in a transparent frame
        Image.fromarray(rgba).save(d / f)
    return d


def test_sheet_has_one_row_per_folder_and_a_column_per_image(tmp_path):
    a = _folder(tmp_path, "a", ["relit_city.png", "relit_studio.png"])
    b = _folder(tmp_path, "b", ["relit_city.png"])  # a missing render leaves a blank tile
    out = make_sheet(tmp_path / "sheet.png", [a, b], size=32)
    with Image.open(out) as im:
        w, h = im.size
    assert h >= 2 * 32 and h < 3 * 32
    assert w >= 6 * 32 and w < 7 * 32


def test_relit_tiles_are_cut_to_the_face(tmp_path):
    a = _folder(tmp_path, "a", ["relit_city.png"])
    out = np.asarray(Image.open(make_sheet(tmp_path / "s.png", [a], size=32)).convert("RGB")).astype(int)
    relit = out[:, -32:]
    # cut to the opaque square, the face colour fills most of the tile
    assert (np.abs(relit - [200, 100, 50]).sum(-1) < 30).mean() > 0.5


def test_not_an_output_folder_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    with pytest.raises(InputError, match="metrics.json"):
        make_sheet(tmp_path / "s.png", [tmp_path / "x"])
    assert main([str(tmp_path / "s.png"), str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "s.png").exists()
