"""The registry of backends and ``ballast check``, which runs every checker's suite and pools
the verdicts."""
