"""Run folders, the event stream, checkpoints and the job runner."""
