"""Shared fixtures for the geometry tests: the template asset must have been fetched."""

from __future__ import annotations

import pytest

from facerefl import assets
from facerefl.geometry import template as tpl


@pytest.fixture(scope="session")
def template() -> tpl.Template:
    if not assets.is_ready(tpl.ASSET):
        pytest.fail("face_mesh asset missing: run `make setup` (python -m facerefl.assets fetch face_mesh)")
    return tpl.load_template()
