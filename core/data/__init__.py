"""Datasets: files and arrays in, one validated Spectra record out, stored by content."""
