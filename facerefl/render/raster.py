"""Rasterization of a fixed mesh under a fixed pinhole camera into a G-buffer.

The mesh never moves during fitting, so visibility (which triangle covers which pixel,
with which barycentrics) is computed once per photo and carries no gradient. Attribute
interpolation after it is plain tensor arithmetic, differentiable with respect to the
per-vertex attributes.

Two backends produce the same (triangle id, barycentrics) pair:

* ``"torch"`` (default, any device): a vectorized scanline-free rasterizer that tests every
  pixel centre inside each triangle's bounding box with edge functions and resolves
  visibility with a depth buffer (``scatter_reduce`` on a packed depth key).
* ``"nvdiffrast"`` (CUDA with the ``gpu`` extra): ``nvdiffrast.torch.rasterize``; imported
  lazily, only when asked for.

Frames follow ``docs/conventions.md``: camera frame +x right, +y up, +z towards the viewer
(camera looks along −z); image rows run top to bottom with pixel centres at (j+0.5, i+0.5).

Example:
    >>> import torch
    >>> v = torch.tensor([[-1., -1., -3.], [1., -1., -3.], [0., 1., -3.]])
    >>> mesh = Mesh(v, torch.tensor([[0, 1, 2]]), torch.tensor([[0., 0.], [1., 0.], [.5, 1.]]))
    >>> cam = Camera(fx=32., fy=32., cx=16., cy=16., width=32, height=32)
    >>> g = rasterize(mesh, cam)
    >>> g.mask.shape, bool(g.mask[0, 16, 16, 0])
    (torch.Size([1, 32, 32, 1]), True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

__all__ = [
    "Camera",
    "Mesh",
    "GBuffer",
    "rasterize",
    "rasterize_visibility",
    "interpolate",
    "vertex_normals",
    "vertex_tangents",
    "project_points",
]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at the origin of the camera frame, looking along −z.

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels (x to the right, y downwards, origin top-left).
        width, height: image size in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    def scaled(self, s: float) -> "Camera":
        """The same camera for an image resized by factor ``s`` (pixel-centre consistent)."""
        return Camera(self.fx * s, self.fy * s, self.cx * s, self.cy * s,
                      max(1, round(self.width * s)), max(1, round(self.height * s)))

    def intrinsics(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """3×3 intrinsic matrix K for the OpenCV-style image (y down) and camera (−z) frame."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
                            device=device, dtype=dtype)


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in the camera frame.

    Attributes:
        vertices: ``[V, 3]`` positions, camera frame (visible points have z < 0).
        faces: ``[F, 3]`` int64 vertex indices, counter-clockwise seen from outside.
        uvs: ``[V, 2]`` texture coordinates in [0, 1], v = 0 at the bottom of the texture.
        normals: ``[V, 3]`` unit outward normals, or None to compute area-weighted ones.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor
    normals: torch.Tensor | None = None

    def __post_init__(self) -> None:
        v, f, uv = self.vertices, self.faces, self.uvs
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"vertices must be [V, 3], got {tuple(v.shape)}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must be [F, 3], got {tuple(f.shape)}")
        if f.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"faces must be an integer tensor, got {f.dtype}")
        if uv.shape != (v.shape[0], 2):
            raise ValueError(f"uvs must be [V, 2] = [{v.shape[0]}, 2], got {tuple(uv.shape)}")
        if self.normals is not None and self.normals.shape != v.shape:
            raise ValueError(f"normals must be [V, 3], got {tuple(self.normals.shape)}")

    def with_normals(self) -> "Mesh":
        """This mesh with ``normals`` filled in (area-weighted) when missing."""
        if self.normals is not None:
            return self
        return replace(self, normals=vertex_normals(self.vertices, self.faces))

    def to(self, device=None, dtype=None) -> "Mesh":
        return Mesh(
            self.vertices.to(device=device, dtype=dtype),
            self.faces.to(device=device),
            self.uvs.to(device=device, dtype=dtype),
            None if self.normals is None else self.normals.to(device=device, dtype=dtype),
        )


@dataclass(frozen=True)
class GBuffer:
    """Per-pixel surface attributes of a rasterized mesh (NHWC, camera frame).

    Empty pixels hold zeros (and ``tri_id`` −1).

    Attributes:
        mask: ``[B, H, W, 1]`` coverage, 1.0 where a triangle is visible, else 0.0.
        tri_id: ``[B, H, W]`` int64 index of the visible triangle, −1 where empty.
        bary: ``[B, H, W, 3]`` perspective-correct barycentric weights of its 3 vertices.
        uv: ``[B, H, W, 2]`` interpolated texture coordinates (v = 0 at the texture bottom).
        position: ``[B, H, W, 3]`` surface point, camera frame.
        normal: ``[B, H, W, 3]`` unit interpolated vertex normal, camera frame.
        tangent: ``[B, H, W, 3]`` unit ∂P/∂u direction, orthogonalized against ``normal``.
        bitangent: ``[B, H, W, 3]`` unit ∂P/∂v direction (handedness applied), ⟂ both.
        view_dir: ``[B, H, W, 3]`` unit direction from the surface point to the camera.
        depth: ``[B, H, W]`` distance along the view axis (−z), 0 where empty.
    """

    mask: torch.Tensor
    tri_id: torch.Tensor
    bary: torch.Tensor
    uv: torch.Tensor
    position: torch.Tensor
    normal: torch.Tensor
    tangent: torch.Tensor
    bitangent: torch.Tensor
    view_dir: torch.Tensor
    depth: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, H, W)``."""
        return tuple(self.tri_id.shape)  # type: ignore[return-value]

    def to(self, device=None, dtype=None) -> "GBuffer":
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            out[f.name] = t.to(device=device) if f.name == "tri_id" else t.to(device=device, dtype=dtype)
        return GBuffer(**out)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def project_points(points: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Project camera-frame points to pixel coordinates.

    Args:
        points: ``[..., 3]`` camera frame, z < 0 in front of the camera.
        camera: the pinhole camera.

    Returns:
        ``[..., 3]``: pixel x (right), pixel y (down), and view depth w = −z.
    """
    if points.shape[-1] != 3:
        raise ValueError(f"points must be [..., 3], got {tuple(points.shape)}")
    w = -points[..., 2]
    safe = torch.where(w.abs() > 1e-12, w, torch.full_like(w, 1e-12))
    x = camera.cx + camera.fx * points[..., 0] / safe
    y = camera.cy - camera.fy * points[..., 1] / safe
    return torch.stack([x, y, w], dim=-1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[V, 3]`` of a CCW mesh (same frame as input)."""
    f = faces.long()
    v0, v1, v2 = vertices[f[:, 0]], vertices[f[:, 1]], vertices[f[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2 * area
    n = torch.zeros_like(vertices).index_add_(0, f.reshape(-1), fn.repeat_interleave(3, dim=0))
    return F.normalize(n, dim=-1, eps=1e-12)


def vertex_tangents(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
                    normals: torch.Tensor) -> torch.Tensor:
    """Per-vertex tangent frames from UVs (area-weighted accumulation).

    Returns:
        ``[V, 4]``: unit tangent (∂P/∂u, ⟂ normal) in xyz and handedness ±1 in w, such that
        ``bitangent = w · cross(normal, tangent)`` points along ∂P/∂v.
    """
    f = faces.long()
    p0, p1, p2 = vertices[f[:, 0]], vertices[f[:, 1]], vertices[f[:, 2]]
    t0, t1, t2 = uvs[f[:, 0]], uvs[f[:, 1]], uvs[f[:, 2]]
    e1, e2 = p1 - p0, p2 - p0
    d1, d2 = t1 - t0, t2 - t0
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    sign = torch.where(det >= 0, 1.0, -1.0).to(vertices.dtype)
    # Scaling by |det| (instead of dividing by det) weights faces by UV area and avoids
    # blow-ups on degenerate UV triangles.
    dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * sign[:, None]
    dpdv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * sign[:, None]
    idx = f.reshape(-1)
    tu = torch.zeros_like(vertices).index_add_(0, idx, dpdu.repeat_interleave(3, dim=0))
    tv = torch.zeros_like(vertices).index_add_(0, idx, dpdv.repeat_interleave(3, dim=0))
    n = normals
    t = F.normalize(tu - n * (n * tu).sum(-1, keepdim=True), dim=-1, eps=1e-12)
    hand = torch.where((torch.cross(n, t, dim=-1) * tv).sum(-1) < 0, -1.0, 1.0).to(vertices.dtype)
    return torch.cat([t, hand[:, None]], dim=-1)


@torch.no_grad()
def _rasterize_torch(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                     chunk: int = 4_000_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Visibility by bounding-box edge tests and a depth buffer.

    Args:
        screen: ``[V, 3]`` pixel x, pixel y, view depth w (> 0 in front).
        faces: ``[F, 3]`` int64.

    Returns:
        tri_id ``[H, W]`` int64 (−1 empty) and bary ``[H, W, 3]`` perspective-correct.
    """
    device = screen.device
    f = faces.long()
    tri = screen[f]  # [F, 3, 3]
    xs, ys, ws = tri[..., 0], tri[..., 1], tri[..., 2]
    front = (ws > 1e-6).all(dim=1)
    # Pixel (i, j) has centre (j + .5, i + .5): the bbox covers centres inside [min, max].
    x0 = torch.ceil(xs.min(1).values - 0.5).clamp(min=0)
    x1 = torch.floor(xs.max(1).values - 0.5).clamp(max=width - 1)
    y0 = torch.ceil(ys.min(1).values - 0.5).clamp(min=0)
    y1 = torch.floor(ys.max(1).values - 0.5).clamp(max=height - 1)
    bw = (x1 - x0 + 1).clamp(min=0)
    bh = (y1 - y0 + 1).clamp(min=0)
    area2 = (xs[:, 1] - xs[:, 0]) * (ys[:, 2] - ys[:, 0]) - (xs[:, 2] - xs[:, 0]) * (ys[:, 1] - ys[:, 0])
    valid = front & (bw > 0) & (bh > 0) & (area2.abs() > 1e-12)
    ids = torch.nonzero(valid).squeeze(1)
    counts = (bw * bh)[ids].long()

    best = torch.full((height * width,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=device)
    # Depth key: 1/w quantized into the high bits (smaller key = nearer), face id low bits.
    nf = max(1, int(f.shape[0]))
    id_bits = int(nf).bit_length()
    zmax = float(ws[valid].max()) if bool(valid.any()) else 1.0
    scale = float((1 << (62 - id_bits)) - 1) / zmax * 0.999

    # Process triangles in groups whose candidate-pixel count fits in `chunk`.
    csum = torch.cumsum(counts, 0)
    start = 0
    n = int(ids.numel())
    results: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    while start < n:
        base = int(csum[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(csum, torch.tensor(base + chunk, device=device), right=True))
        stop = max(stop, start + 1)
        sel = ids[start:stop]
        cnt = counts[start:stop]
        tri_of = torch.repeat_interleave(sel, cnt)
        offs = torch.arange(int(cnt.sum()), device=device) - torch.repeat_interleave(
            torch.cumsum(cnt, 0) - cnt, cnt)
        w_of = bw[tri_of].long()
        px = x0[tri_of].long() + offs % w_of
        py = y0[tri_of].long() + offs // w_of
        cxp = px.to(screen.dtype) + 0.5
        cyp = py.to(screen.dtype) + 0.5
        X, Y = xs[tri_of], ys[tri_of]
        # Edge functions: l_k is the weight of vertex k (opposite edge (k+1, k+2)).
        l0 = (X[:, 1] - cxp) * (Y[:, 2] - cyp) - (X[:, 2] - cxp) * (Y[:, 1] - cyp)
        l1 = (X[:, 2] - cxp) * (Y[:, 0] - cyp) - (X[:, 0] - cxp) * (Y[:, 2] - cyp)
        l2 = (X[:, 0] - cxp) * (Y[:, 1] - cyp) - (X[:, 1] - cxp) * (Y[:, 0] - cyp)
        a = area2[tri_of]
        b = torch.stack([l0, l1, l2], dim=-1) / a[:, None]
        inside = (b >= -1e-7).all(dim=-1)
        tri_of, px, py, b = tri_of[inside], px[inside], py[inside], b[inside]
        inv_w = (b / ws[tri_of]).sum(-1)  # 1 / depth, linear in screen space
        depth = 1.0 / inv_w
        key = (depth * scale).long().clamp(min=0) * (1 << id_bits) + tri_of
        pix = py * width + px
        best.scatter_reduce_(0, pix, key, reduce="amin")
        results.append((pix, key, b))
        start = stop

    tri_id = torch.full((height * width,), -1, dtype=torch.int64, device=device)
    bary = torch.zeros(height * width, 3, dtype=screen.dtype, device=device)
    for pix, key, b in results:
        win = best[pix] == key
        pw = pix[win]
        t = key[win] & ((1 << id_bits) - 1)
        bw_ = b[win] / ws[t]
        tri_id[pw] = t
        bary[pw] = bw_ / bw_.sum(-1, keepdim=True)  # perspective-correct
    return tri_id.view(height, width), bary.view(height, width, 3)


def _clip_from_camera(vertices: torch.Tensor, camera: Camera, near: float, far: float) -> torch.Tensor:
    """Camera-frame vertices ``[V, 3]`` → clip space ``[V, 4]`` (OpenGL NDC, y up)."""
    W, H = camera.width, camera.height
    X, Y, Z = vertices.unbind(-1)
    w = -Z
    xc = (2 * camera.fx / W) * X + (2 * camera.cx / W - 1) * w
    yc = (2 * camera.fy / H) * Y + (1 - 2 * camera.cy / H) * w
    a = (far + near) / (far - near)
    b = 2 * far * near / (far - near)
    zc = a * w - b
    return torch.stack([xc, yc, zc, w], dim=-1)


def _rasterize_nvdiffrast(mesh: Mesh, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        import nvdiffrast.torch as dr  # noqa: PLC0415 - optional GPU extra, lazy by design
    except ImportError as e:  # pragma: no cover - depends on the gpu extra
        raise RuntimeError("backend 'nvdiffrast' needs the gpu extra: pip install -e '.[gpu]'") from e
    if mesh.vertices.device.type != "cuda":
        raise RuntimeError("backend 'nvdiffrast' runs on CUDA only; move the mesh to a CUDA device")
    w = -mesh.vertices[:, 2]
    near = max(float(w.min()) * 0.5, 1e-4)
    far = float(w.max()) * 2.0 + near
    with torch.no_grad():
        clip = _clip_from_camera(mesh.vertices.float(), camera, near, far)[None].contiguous()
        ctx = _nvdr_context(dr, mesh.vertices.device)
        rast, _ = dr.rasterize(ctx, clip, mesh.faces.int().contiguous(), (camera.height, camera.width))
        rast = rast[0].flip(0)  # nvdiffrast's row 0 is the bottom (y = −1); ours is the top
        tri_id = rast[..., 3].long() - 1
        u, v = rast[..., 0], rast[..., 1]
        bary = torch.stack([1 - u - v, u, v], dim=-1) * (tri_id >= 0)[..., None]
    return tri_id, bary.to(mesh.vertices.dtype)


_NVDR_CTX: dict = {}


def _nvdr_context(dr, device):  # pragma: no cover - GPU only
    key = str(device)
    if key not in _NVDR_CTX:
        _NVDR_CTX[key] = dr.RasterizeCudaContext(device=device)
    return _NVDR_CTX[key]


def rasterize_visibility(mesh: Mesh, camera: Camera, backend: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    """Which triangle covers each pixel, and where.

    Returns:
        tri_id ``[H, W]`` int64 (−1 empty) and perspective-correct bary ``[H, W, 3]``;
        no gradient flows through either.
    """
    if backend == "torch":
        screen = project_points(mesh.vertices.detach(), camera)
        return _rasterize_torch(screen, mesh.faces, camera.height, camera.width)
    if backend == "nvdiffrast":
        return _rasterize_nvdiffrast(mesh, camera)
    raise ValueError(f"unknown raster backend {backend!r}; use 'torch' or 'nvdiffrast'")


def interpolate(attr: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor,
                bary: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes ``[V, C]`` to pixels ``[..., C]`` (0 where empty).

    Differentiable with respect to ``attr``.
    """
    t = tri_id.clamp(min=0)
    corner = faces.long()[t]  # [..., 3]
    vals = attr[corner]  # [..., 3, C]
    out = (vals * bary[..., None]).sum(-2)
    return out * (tri_id >= 0)[..., None].to(out.dtype)


def rasterize(mesh: Mesh, camera: Camera, backend: str = "torch") -> GBuffer:
    """Rasterize ``mesh`` (camera frame) into a :class:`GBuffer` of size ``[1, H, W]``.

    Visibility carries no gradient; the interpolated attributes are differentiable with
    respect to the mesh's per-vertex attributes (positions, normals, UVs).
    """
    mesh = mesh.with_normals()
    tri_id, bary = rasterize_visibility(mesh, camera, backend)
    bary = bary.to(mesh.vertices.dtype)
    h, w = tri_id.shape
    # Interpolate at covered pixels only (a portrait's face is a fraction of the image),
    # then scatter into zero-filled images.
    cov = torch.nonzero(tri_id.reshape(-1) >= 0).squeeze(1)
    t_c = tri_id.reshape(-1)[cov]
    b_c = bary.reshape(-1, 3)[cov]
    tangents = vertex_tangents(mesh.vertices, mesh.faces, mesh.uvs, mesh.normals)
    uv = interpolate(mesh.uvs, mesh.faces, t_c, b_c)
    pos = interpolate(mesh.vertices, mesh.faces, t_c, b_c)
    nrm = F.normalize(interpolate(mesh.normals, mesh.faces, t_c, b_c), dim=-1, eps=1e-12)
    tan4 = interpolate(tangents, mesh.faces, t_c, b_c)
    tan = tan4[..., :3] - nrm * (nrm * tan4[..., :3]).sum(-1, keepdim=True)
    tan = F.normalize(tan, dim=-1, eps=1e-12)
    hand = torch.where(tan4[..., 3:] < 0, -1.0, 1.0).to(nrm.dtype)
    bit = torch.cross(nrm, tan, dim=-1) * hand
    view = F.normalize(-pos, dim=-1, eps=1e-12)

    def img(x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(h * w, x.shape[-1]).index_copy(0, cov, x)
        return out.view(1, h, w, x.shape[-1])

    valid = (tri_id >= 0)[..., None]
    pos_img = img(pos)
    return GBuffer(
        mask=valid.to(mesh.vertices.dtype)[None],
        tri_id=tri_id[None],
        bary=bary[None],
        uv=img(uv),
        position=pos_img,
        normal=img(nrm),
        tangent=img(tan),
        bitangent=img(bit),
        view_dir=img(view),
        depth=-pos_img[..., 2],
    )
