"""``report.html``: one self-contained page tying the outputs together.

Images are inlined as ``data:image/png;base64`` URIs and the style sheet is inline; the
page references nothing on a network (no scripts, fonts or external CSS), so it reads the
same offline. Links to the other output files are relative.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facerefl.fsutil import atomic_write_text

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.note { color: #555; font-size: 0.9em; }
div.figs { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 0.5em; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; margin-top: 0.3em; max-width: 36em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; background: #fff; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; font-size: 0.9em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.files { columns: 3; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Picture:
    """One inlined image.

    Attributes:
        title: short heading shown under the image.
        png: the PNG file's bytes.
        caption: what the image shows (encoding, scale), optional.
        width: display width in CSS pixels, or 0 for the natural size.
    """

    title: str
    png: bytes
    caption: str = ""
    width: int = 0

    def __post_init__(self) -> None:
        if not self.png.startswith(_PNG_SIGNATURE):
            raise ValueError(f"picture {self.title!r} is not PNG data")


@dataclass(frozen=True)
class Table:
    """A two-or-more-column table; numbers are right-aligned and formatted with 6 digits."""

    header: tuple[str, ...]
    rows: tuple[tuple[str | float | int | None, ...], ...]


@dataclass(frozen=True)
class Section:
    """A titled part of the report: optional text, images and tables, in that order."""

    title: str
    text: str = ""
    pictures: tuple[Picture, ...] = ()
    tables: tuple[Table, ...] = field(default_factory=tuple)


def _cell(v: str | float | int | None) -> str:
    if v is None:
        return '<td class="num">n/a</td>'
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"<td>{html.escape(str(v))}</td>"
    if isinstance(v, float) and not math.isfinite(v):
        return f'<td class="num">{v}</td>'
    return f'<td class="num">{v:.6g}</td>'


def _picture_html(p: Picture) -> str:
    data = base64.b64encode(p.png).decode("ascii")
    width = f' width="{p.width}"' if p.width else ""
    caption = f"<b>{html.escape(p.title)}</b>" + (f"<br>{html.escape(p.caption)}" if p.caption else "")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(p.title)}"{width}>'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(title: str, sections: Sequence[Section], files: Sequence[str] = ()) -> str:
    """The complete HTML document (UTF-8 text) with every image inlined.

    Args:
        title: page heading.
        sections: the report body, in order.
        files: names of files in the output folder, listed as relative links.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f'<p class="note">{html.escape(s.text)}</p>')
        if s.pictures:
            parts.append('<div class="figs">' + "".join(_picture_html(p) for p in s.pictures) + "</div>")
        parts.extend(_table_html(t) for t in s.tables)
    if files:
        items = "".join(f'<li><a href="{html.escape(f)}">{html.escape(f)}</a></li>' for f in files)
        parts.append(f'<h2>Files</h2><ul class="files">{items}</ul>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def save_report(
    path: str | os.PathLike, title: str, sections: Sequence[Section], files: Sequence[str] = ()
) -> Path:
    """Write :func:`report_html` to ``path`` atomically."""
    return atomic_write_text(path, report_html(title, sections, files))
