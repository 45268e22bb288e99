"""Face landmarks with mediapipe 0.10.21's face mesh (478 points, iris included).

The face-mesh models ship inside the mediapipe 0.10.21 wheel, so nothing downloads at
run time. One ``FaceMesh`` object is created per process and reused (creation takes
about a second); it runs in static-image mode with ``refine_landmarks=True``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from facerefl.errors import InputError
from facerefl.geometry.photo import to_uint8_hwc
from facerefl.geometry.template import NUM_LANDMARKS

__all__ = ["Landmarks", "NoFaceError", "FaceTooSmallError", "detect_landmarks",
           "DEFAULT_MIN_FACE_PX"]

#: the smallest usable face, in pixels across (width of the landmark bounding box);
#: below it the unwrapped texture would be mostly interpolation.
DEFAULT_MIN_FACE_PX = 80
_MAX_FACES = 4


class NoFaceError(InputError):
    """The photo shows no face that the detector can find."""


class FaceTooSmallError(InputError):
    """The face is too small in the photo to unwrap a useful texture."""


@dataclass(frozen=True)
class Landmarks:
    """The 478 face-mesh landmarks of one face.

    Attributes:
        points: ``[478, 3]`` float32. Columns 0–1: image position in pixels (x to the
            right, y downwards, origin at the top-left corner of the image, so pixel
            (i, j) has its centre at (j + 0.5, i + 0.5)). Column 2: mediapipe's relative
            depth, scaled to pixels like x (mediapipe: "roughly the same scale as x");
            smaller is nearer the camera, 0 near the centre of the head. Rows 0–467 are
            the template vertices, 468–477 the iris points.
        image_size: ``(height, width)`` of the photo they were found in.
        num_faces: how many faces the detector found (the largest is kept).
    """

    points: torch.Tensor
    image_size: tuple[int, int]
    num_faces: int = 1

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` pixel bounding box of the 468 mesh landmarks."""
        p = self.points[:468, :2]
        x0, y0 = p.min(0).values.tolist()
        x1, y1 = p.max(0).values.tolist()
        return x0, y0, x1, y1

    def face_size(self) -> tuple[float, float]:
        """``(width, height)`` of :meth:`bbox` in pixels."""
        x0, y0, x1, y1 = self.bbox()
        return x1 - x0, y1 - y0


_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ log lines (TFLite/absl INFO and warnings) mediapipe writes to
    file descriptor 2, so that command-line errors stay one line."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@functools.lru_cache(maxsize=1)
def _face_mesh():
    """The per-process mediapipe FaceMesh (static images, iris refinement)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mediapipe as mp  # noqa: PLC0415 - heavy import, only when landmarks are needed

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True,
        max_num_faces=_MAX_FACES,
        refine_landmarks=True,
        min_detection_confidence=0.5,
    )


def _run_face_mesh(rgb: np.ndarray) -> list[np.ndarray]:
    """mediapipe on ``[H, W, 3]`` uint8 RGB → list of ``[478, 3]`` normalized landmarks."""
    with _LOCK, _quiet_native_stderr():
        result = _face_mesh().process(rgb)
    faces = result.multi_face_landmarks or []
    return [np.array([(p.x, p.y, p.z) for p in f.landmark], dtype=np.float64) for f in faces]


def detect_landmarks(photo: torch.Tensor, min_face_px: float = DEFAULT_MIN_FACE_PX) -> Landmarks:
    """Find the face landmarks in a photo.

    Args:
        photo: ``[3, H, W]`` float sRGB in [0, 1].
        min_face_px: smallest accepted face width (landmark bounding box), pixels.

    Returns:
        the landmarks of the largest face. With several faces a ``UserWarning`` says how
        many were found and which one is used.

    Raises:
        NoFaceError: no face found.
        FaceTooSmallError: the face is narrower than ``min_face_px`` (message gives its size).
    """
    if photo.ndim != 3 or photo.shape[0] != 3:
        raise ValueError(f"photo must be [3, H, W], got {tuple(photo.shape)}")
    h, w = int(photo.shape[1]), int(photo.shape[2])
    faces = _run_face_mesh(to_uint8_hwc(photo))
    if not faces:
        raise NoFaceError(
            f"no face found in the {w}×{h} photo; use a photo with a clearly visible face "
            "that is not too small, cut off or strongly turned away"
        )
    pts = [np.stack([f[:, 0] * w, f[:, 1] * h, f[:, 2] * w], axis=1) for f in faces]
    areas = [np.ptp(p[:468, 0]) * np.ptp(p[:468, 1]) for p in pts]
    best = int(np.argmax(areas))
    if len(pts) > 1:
        warnings.warn(
            f"{len(pts)} faces found in the photo; using the largest "
            f"({np.ptp(pts[best][:468, 0]):.0f}×{np.ptp(pts[best][:468, 1]):.0f} px)",
            UserWarning,
            stacklevel=2,
        )
    if pts[best].shape != (NUM_LANDMARKS, 3):
        raise RuntimeError(f"mediapipe returned {pts[best].shape[0]} landmarks, expected 478")
    lm = Landmarks(torch.from_numpy(pts[best].astype(np.float32)), (h, w), len(pts))
    fw, fh = lm.face_size()
    if fw < min_face_px:
        raise FaceTooSmallError(
            f"the face is only {fw:.0f}×{fh:.0f} px in the {w}×{h} photo; at least "
            f"{min_face_px:.0f} px across is needed: use a closer or higher-resolution photo"
        )
    return lm
