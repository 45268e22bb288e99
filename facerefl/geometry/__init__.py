"""facerefl.geometry."""
