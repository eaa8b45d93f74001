"""The archiver: keeps every sample and event in DuckDB (default) or PostgreSQL."""
