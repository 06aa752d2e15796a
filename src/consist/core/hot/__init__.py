"""Hot data: ingesting tables into the store (DuckDB-native and dlt), schemas
and file profiling, and hybrid/grouped views over ingested and file data."""
