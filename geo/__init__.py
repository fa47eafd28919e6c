"""Grids, coordinate systems, camera footprint, coverage planning and georeferencing.

Pure functions and small typed records; no I/O at import time.
"""
