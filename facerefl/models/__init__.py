"""facerefl.models."""
