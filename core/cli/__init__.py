"""The `bpd` command line."""
