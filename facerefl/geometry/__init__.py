"""facerefl.geometry: from a photo to a UV-unwrapped face with baked self-occlusion.

Modules (imported explicitly; this package imports nothing so that, e.g., the template
can be used without loading mediapipe):

* ``template`` — mediapipe's canonical face mesh (468 vertices, 898 triangles, UVs),
  named regions, UV masks; ``convert_asset`` is the asset converter.
* ``photo`` — ``load_photo(path, max_side)`` → ``[3, H, W]`` sRGB.
* ``landmarks`` — ``detect_landmarks(photo)`` → 478 mediapipe landmarks.
* ``mesh`` — ``face_mesh_from_landmarks`` → camera-frame ``Mesh`` + ``Camera``; ``subdivide``.
* ``uvmap`` — UV-space rasterization and texel interpolation.
* ``unwrap`` — ``unwrap(photo, mesh, camera, resolution)`` → texture T (+ skin mask).
* ``poisson`` — ``poisson_fill`` (sparse Poisson blending).
* ``bake`` — ``bake_vertices`` / ``bake_maps``: visibility SH, bent normals, AO.
* ``result`` — ``FaceGeometry`` (save/load) and ``build_face_geometry(photo, cfg)``.
* ``preview`` — PNG previews; ``__main__`` — ``python -m facerefl.geometry IMAGE --out DIR``.
* ``bench`` — ``run(out_dir)`` for ``make bench``.
"""
