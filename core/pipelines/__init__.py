"""Pipelines: templates expanded into configs, fitted under cross-validation, persisted."""
