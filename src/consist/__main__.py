"""``python -m consist``: the ``consist`` command line."""

from consist.cli import main

main()
