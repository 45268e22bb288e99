"""facerefl.render."""
