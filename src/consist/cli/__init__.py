"""The ``consist`` command line (typer): one module per command group.

Reserved: the command line is built by the issue that adds it. Commands read
the store through the public API and :mod:`consist.core.store`, never through
private attributes of a tracker.
"""
