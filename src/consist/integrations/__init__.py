"""Integrations with model systems and runtimes: config adapters (ActivitySim,
BEAM) and container executors.

Reserved: each integration is one module or subpackage here, built on the
public API; nothing in ``consist.core`` imports from this package.
"""
