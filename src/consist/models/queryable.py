"""Records that stand for their table in SQLModel/SQLAlchemy statements.

``Run`` and ``Artifact`` are plain pydantic models (cheap to import and to
build on every run). Their metaclass lets the *class* act as its table model
(:mod:`consist.models.tables`) inside statements, so that

    select(Run).where(Run.model_name == "x").order_by(Run.created_at)
    select(Artifact).join(RunArtifactLink).where(RunArtifactLink.run_id == rid)

work as with any SQLModel table. Two hooks do it, both on the metaclass so
that instances are untouched (attribute access on a record never goes
through them):

* ``Run.<field>`` for a field name returns the table model's column
  attribute (pydantic removes field names from the class, so this lookup
  only reaches the metaclass's ``__getattr__``);
* ``Run.__clause_element__()`` returns the table model's mapped selectable,
  which SQLAlchemy accepts wherever an entity is expected (``select``,
  ``join``, ``select_from``), with the ORM entity attached.

The table models (and SQLAlchemy) are imported on the first such lookup
only. Pydantic itself probes class attributes (e.g. when memoizing
``__setattr__`` handlers); those probes are answered as before (no
attribute), so setting a field never imports SQLAlchemy.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from pydantic import BaseModel

_TABLES_MODULE = "consist.models.tables"
_ModelMetaclass: type = type(BaseModel)


def _called_from_pydantic() -> bool:
    # Frame 0 is _called_from_pydantic, 1 is __getattr__, 2 the code that looked
    # the attribute up (getattr/hasattr are builtins and add no frame).
    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller == "pydantic" or caller.startswith("pydantic.")


class QueryableModelMeta(_ModelMetaclass):  # type: ignore[misc, valid-type]
    """Metaclass of records mapped onto a table model (see the module docstring).

    A class using it names its table model in ``__table_model__`` (a class
    name in :mod:`consist.models.tables`).
    """

    def __getattr__(cls, name: str) -> Any:
        fields = cls.__dict__.get("__pydantic_fields__")
        if (
            fields is not None
            and name in fields
            and cls.__dict__.get("__table_model__")
            and not _called_from_pydantic()
        ):
            return getattr(cls.table_model(), name)
        return super().__getattr__(name)

    def table_model(cls) -> type:
        """The SQLModel table class this record stands for in statements."""
        name = cls.__dict__.get("__table_model__")
        if not name:
            raise TypeError(f"{cls.__name__} is not mapped onto a table; query its base class")
        return getattr(importlib.import_module(_TABLES_MODULE), name)

    def __clause_element__(cls) -> Any:
        from sqlalchemy import inspect

        return inspect(cls.table_model()).__clause_element__()
