"""facerefl.data: synthetic training and test data (issue 4).

Modules, in pipeline order:

- :mod:`~facerefl.data.types`: ``ReflectanceBatch`` (the contract with the networks) and
  ``collate_reflectance``.
- :mod:`~facerefl.data.skin`: melanin/haemoglobin skin colour model, CIELAB, ITA.
- :mod:`~facerefl.data.layout`, :mod:`~facerefl.data.procedural`: feature masks in the
  template's UV layout and procedural albedo / specular / normal maps.
- :mod:`~facerefl.data.hdri`, :mod:`~facerefl.data.lighting`: real HDR maps (asset
  converter, equirect helpers) and the augmented SH lighting prior.
- :mod:`~facerefl.data.scene`, :mod:`~facerefl.data.sensor`: pose / camera / shape
  variation; sensor noise and JPEG.
- :mod:`~facerefl.data.render_fast`, :mod:`~facerefl.data.render_mc`: the training (SH)
  and Monte Carlo reference renderers.
- :mod:`~facerefl.data.assemble`: one example end to end (``ExampleGenerator``).
- :mod:`~facerefl.data.cache`, :mod:`~facerefl.data.datamodule`: safetensors caches,
  datasets and ``SyntheticDataModule``.
- CLIs: ``python -m facerefl.data.make_cache | make_testset | preview | lighting``.
"""
