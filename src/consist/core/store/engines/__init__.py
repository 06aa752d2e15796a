"""Store engines: one module per database engine, behind the store's domain verbs.

Reserved for the second engine (PostgreSQL for team mode). Today the store
speaks DuckDB only, in the modules of :mod:`consist.core.store`
(``connection`` holds the engine-specific connection handling); when a
second engine lands, the engine-specific parts move here and callers keep
asking the store in domain terms.
"""
