"""facerefl.fit."""
