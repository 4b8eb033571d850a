"""Warm Python starts: the script side of chiark's prefork-interp (see server.py)."""

from pyprocd.prefork.server import initialisation_complete

__all__ = ["initialisation_complete"]
