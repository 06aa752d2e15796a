"""``consist export prov|rocrate|openlineage``: standard provenance documents."""

from __future__ import annotations
