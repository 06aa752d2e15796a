"""Integrations with model systems: config adapters (ActivitySim, BEAM).

Each integration is one module here, built on the public API and the
:class:`~consist.core.run.config_plan.ConfigAdapter` protocol; nothing in
``consist.core`` imports from this package. Container executors come later.
"""
