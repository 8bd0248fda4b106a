"""Metrics and their direction, and the one ranking rule built on them."""
