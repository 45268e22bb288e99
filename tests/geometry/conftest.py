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


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut portrait as ``[3, 512, 512]`` sRGB."""
    import skimage.data

    from facerefl.geometry.photo import photo_from_array

    return photo_from_array(skimage.data.astronaut())


@pytest.fixture(scope="session")
def grace():
    """matplotlib's grace_hopper.jpg, loaded from its file."""
    import matplotlib.cbook as cbook

    from facerefl.geometry.photo import load_photo

    return load_photo(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astro_mesh(astronaut, template):
    """(landmarks, mesh, camera) of the astronaut, no subdivision."""
    from facerefl.geometry.landmarks import detect_landmarks
    from facerefl.geometry.mesh import face_mesh_from_landmarks

    lm = detect_landmarks(astronaut)
    mesh, cam = face_mesh_from_landmarks(lm, template)
    return lm, mesh, cam
