"""The local, read-only web page for runs and lineage, and its JSON API (``ui`` extra)."""
