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
    file descriptor 2, so that command-line errors stay one line. (Descriptor 2 itself:
    ``sys.stderr`` may be a Python object over another descriptor, as under pytest.)"""
    fd = 2
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):
        yield
        return
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


def _faces_in(photo: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    """mediapipe on ``photo`` (``[3, H, W]``) or on its window ``box = (x0, y0, x1, y1)``:
    ``[478, 3]`` landmarks in pixels of the whole photo (depth scaled like x)."""
    x0, y0, x1, y1 = box or (0, 0, int(photo.shape[2]), int(photo.shape[1]))
    w, h = x1 - x0, y1 - y0
    faces = _run_face_mesh(to_uint8_hwc(photo[:, y0:y1, x0:x1]))
    return [np.stack([f[:, 0] * w + x0, f[:, 1] * h + y0, f[:, 2] * w], axis=1) for f in faces]


def _box(points: np.ndarray) -> tuple[float, float, float, float]:
    p = points[:468, :2]
    return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())


def _area(points: np.ndarray) -> float:
    x0, y0, x1, y1 = _box(points)
    return (x1 - x0) * (y1 - y0)


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    ax0, ay0, ax1, ay1 = _box(a)
    bx0, by0, bx1, by1 = _box(b)
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    return iw * ih > 0.3 * min(_area(a), _area(b))


def _windows(h: int, w: int, side: int) -> list[tuple[int, int, int, int]]:
    """Square windows of ``side`` pixels overlapping by half, covering the photo."""
    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        step = side // 2
        out = list(range(0, n - side, step))
        return out + [n - side]

    return [(x, y, min(w, x + side), min(h, y + side)) for y in starts(h) for x in starts(w)]


def _inside(points: np.ndarray, box: tuple[int, int, int, int], h: int, w: int) -> bool:
    """The face lies inside the window, not cut by one of its inner edges."""
    x0, y0, x1, y1 = _box(points)
    bx0, by0, bx1, by1 = box
    m = 0.02 * max(bx1 - bx0, by1 - by0)
    return ((bx0 == 0 or x0 > bx0 + m) and (by0 == 0 or y0 > by0 + m)
            and (bx1 == w or x1 < bx1 - m) and (by1 == h or y1 < by1 - m))


def _find_faces(photo: torch.Tensor) -> list[np.ndarray]:
    """Every face mediapipe finds in ``photo``, in photo pixels.

    The face detector sees the whole photo shrunk to 128², so a face that is small in a
    large photo, or one of two faces side by side, can go unseen. Then the photo is
    searched in overlapping windows (half, then a quarter of its longer side); each face
    found is measured again on a window around it, at the photo's resolution.
    """
    h, w = int(photo.shape[1]), int(photo.shape[2])
    faces = _faces_in(photo)
    side = max(h, w) // 2
    while not faces and side >= 128:
        for box in _windows(h, w, side):
            if box == (0, 0, w, h):
                continue
            for f in _faces_in(photo, box):
                if _inside(f, box, h, w) and not any(_same_face(f, g) for g in faces):
                    faces.append(f)
        side //= 2
        if faces:
            faces = [_remeasure(photo, f) for f in faces]
    return faces


def _remeasure(photo: torch.Tensor, face: np.ndarray) -> np.ndarray:
    """``face`` found again on a square window of twice its size around it (falls back
    to ``face`` if that window loses it)."""
    h, w = int(photo.shape[1]), int(photo.shape[2])
    x0, y0, x1, y1 = _box(face)
    half = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half) + 1), min(h, int(cy + half) + 1))
    again = [f for f in _faces_in(photo, box) if _same_face(f, face)]
    return max(again, key=_area) if again else face


def _upside_down(photo: torch.Tensor, min_face_px: float) -> bool:
    """Whether the photo turned by 180° shows a usable face. (mediapipe finds faces
    turned sideways by itself, with landmarks that follow the roll; upside down it
    finds none, or a spurious small one.)"""
    faces = _faces_in(torch.rot90(photo, 2, dims=(1, 2)))
    return any(np.ptp(f[:468, 0]) >= min_face_px for f in faces)


_UPSIDE_DOWN = ("the face in the photo is upside down; rotate the photo upright and try again "
                "(faces are found upright or turned sideways, not upside down)")


def detect_landmarks(photo: torch.Tensor, min_face_px: float = DEFAULT_MIN_FACE_PX) -> Landmarks:
    """Find the face landmarks in a photo.

    Faces too small for the detector at the photo's scale, and faces side by side, are
    searched for in windows (:func:`_find_faces`). A photo whose face is only found
    upside down is refused with a message saying so.

    Args:
        photo: ``[3, H, W]`` float sRGB in [0, 1].
        min_face_px: smallest accepted face width (landmark bounding box), pixels.

    Returns:
        the landmarks of the largest face. With several faces a ``UserWarning`` says how
        many were found and which one is used.

    Raises:
        NoFaceError: no face found, or only in the photo turned upside down.
        FaceTooSmallError: the face is narrower than ``min_face_px`` (message gives its size).
    """
    if photo.ndim != 3 or photo.shape[0] != 3:
        raise ValueError(f"photo must be [3, H, W], got {tuple(photo.shape)}")
    h, w = int(photo.shape[1]), int(photo.shape[2])
    pts = _find_faces(photo)
    if not pts:
        if _upside_down(photo, min_face_px):
            raise NoFaceError(_UPSIDE_DOWN)
        raise NoFaceError(
            f"no face found in the {w}×{h} photo; use a photo with a clearly visible face "
            "that is not too small, cut off or strongly turned away"
        )
    areas = [_area(p) for p in pts]
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
        if _upside_down(photo, min_face_px):
            raise NoFaceError(_UPSIDE_DOWN)
        raise FaceTooSmallError(
            f"the face is only {fw:.0f}×{fh:.0f} px in the {w}×{h} photo; at least "
            f"{min_face_px:.0f} px across is needed: use a closer or higher-resolution photo"
        )
    return lm
