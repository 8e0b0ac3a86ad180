"""Running and following jobs: child processes, their event streams, the run list."""
