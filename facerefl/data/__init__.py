"""facerefl.data."""
