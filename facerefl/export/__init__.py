"""facerefl.export: files people can use from a fit — maps, light, renders, meshes, report.

Modules (each a small set of pure encoders plus atomic writers):

* :mod:`~facerefl.export.atomic` — atomic writes, output-folder preparation;
* :mod:`~facerefl.export.images` — CHW tensors to 8/16-bit PNG and EXR;
* :mod:`~facerefl.export.maps` — albedo/specular/normal map files;
* :mod:`~facerefl.export.light` — ``light.json`` and light-probe previews;
* :mod:`~facerefl.export.compose` — reconstruction composites;
* :mod:`~facerefl.export.surface`, :mod:`~facerefl.export.gltf`, :mod:`~facerefl.export.obj`
  — the textured mesh as ``.glb`` and ``.obj``/``.mtl``;
* :mod:`~facerefl.export.plots` — ``loss.png`` and ``metrics.json``;
* :mod:`~facerefl.export.report` — the self-contained ``report.html``.

Imports flow one way: export uses ``facerefl.render`` and nothing of models, data or fit.
"""
