"""Sharing: export bundles, read and import them, predict with stored models."""
