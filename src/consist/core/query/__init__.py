"""Reading runs back: facet and key/value queries (``facets``), run indexing
(``run_index``), ``RunSet`` (``runset``) and lineage with its renderings."""
