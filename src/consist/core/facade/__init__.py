"""The public methods of :class:`~consist.core.tracker.Tracker`, by area.

Each module holds one mixin of the facade (steps, queries, facets, lineage,
scenarios, hot data, views); the methods validate their arguments and
delegate to the services of ``run/``, ``query/``, ``hot/``, ``workflow/`` and
``store/``. Only ``consist.core.tracker`` composes them.
"""
