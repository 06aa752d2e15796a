"""Standard provenance documents from the store: W3C PROV, RO-Crate, OpenLineage."""
