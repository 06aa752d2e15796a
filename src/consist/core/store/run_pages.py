"""Paged, filtered run listings for the web page (server-side paging).

Mixed into :class:`~consist.core.store.metadata_store.MetadataStore`.
"""

from __future__ import annotations


class RunPageQueryMixin:
    """Paged run listings with totals, for the web page."""
