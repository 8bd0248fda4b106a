"""The browsable tree: index rows in, folders and rendered files out (no writes)."""
