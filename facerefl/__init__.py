"""facerefl: single-view facial reflectance inference with a differentiable renderer."""

__version__ = "0.1.0"
