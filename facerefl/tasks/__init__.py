"""facerefl.tasks."""
