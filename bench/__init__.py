"""Benchmarks (``make bench``): one module per stage of the pipeline, outside the library.

Each module has ``run(out_dir) -> dict``, which writes ``out_dir/<stage>.json`` and prints a
table; ``python -m bench`` runs them in pipeline order and writes ``bench/summary.json``.
They import :mod:`facerefl`; nothing in :mod:`facerefl` imports them.
"""

from pathlib import Path

#: Where the numbers go (ignored by git): this folder.
OUT_DIR = Path(__file__).resolve().parent
