"""The DuckDB index: schema, the one writer, the read queries, locks and liveness."""
