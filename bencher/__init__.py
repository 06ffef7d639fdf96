"""The benchmark daemon: compiles, sandboxes, verifies and times candidates (issue 3)."""
