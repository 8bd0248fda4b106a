"""Surfaces that serve the tree: fsspec (`n4a://`) and FUSE (mount)."""
