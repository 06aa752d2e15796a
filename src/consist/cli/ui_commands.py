"""``consist ui``: open the local web page on a free port and print its URL."""

from __future__ import annotations
