"""Reusable widgets (plots, small helpers)."""
