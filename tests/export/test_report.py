from __future__ import annotations

import base64
import re

import pytest
import torch

from facerefl.export.images import image_png_bytes
from facerefl.export.report import Picture, Section, Table, report_html, save_report


def test_report_is_self_contained(tmp_path):
    png = image_png_bytes(torch.rand(3, 8, 8))
    sections = [
        Section("Maps", text="a <b>bold</b> claim", pictures=(Picture("albedo", png, "sRGB"),)),
        Section("Metrics", tables=(
            Table(("name", "value"), (("psnr", 31.25), ("nan", float("nan")), ("none", None))),
        )),
    ]
    path = save_report(tmp_path / "report.html", "facerefl <run>", sections, files=["albedo.png"])
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?:", text, re.IGNORECASE)
    assert "<script" not in text and "@import" not in text
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == png
    assert "&lt;b&gt;bold" in text and "facerefl &lt;run&gt;" in text  # text is escaped
    assert ">31.25<" in text and ">n/a<" in text
    assert 'href="albedo.png"' in text


def test_picture_must_be_png():
    with pytest.raises(ValueError, match="not PNG"):
        Picture("x", b"GIF89a")
    assert "<h2>Only</h2>" in report_html("t", [Section("Only")])
