"""facerefl.export: files people can use from a fit — maps, light, renders, meshes, report.

Entry point: :func:`facerefl.export.outputs.write_all` writes everything for one
:class:`~facerefl.export.outputs.FitOutputs` (see that module for the file list and an
example of building it from the fitting stage).

Modules (each a small set of pure encoders plus atomic writers):

* :mod:`~facerefl.export.atomic` — atomic writes, output-folder preparation;
* :mod:`~facerefl.export.images` — CHW tensors to 8/16-bit PNG and EXR;
* :mod:`~facerefl.export.maps` — albedo/specular/normal map files (of a
  :class:`~facerefl.render.maps.ReflectanceMaps`);
* :mod:`~facerefl.export.light` — ``light.json`` and light-probe previews;
* :mod:`~facerefl.export.compose` — reconstruction composites;
* :mod:`~facerefl.export.relight` — renders under other SH lights and from an orbiting
  camera, through ``facerefl.render``;
* :mod:`~facerefl.export.surface`, :mod:`~facerefl.export.gltf`, :mod:`~facerefl.export.obj`
  — the textured mesh as ``.glb`` and ``.obj``/``.mtl``;
* :mod:`~facerefl.export.plots` — ``loss.png`` and ``metrics.json``;
* :mod:`~facerefl.export.report` — the self-contained ``report.html``;
* :mod:`~facerefl.export.bench` — ``make bench`` timings.

Imports flow one way: export uses ``facerefl.render`` and nothing of models, data or fit.
Nothing is imported here, so ``import facerefl.export.atomic`` stays cheap.
"""
