"""Synthetic aerial camera: a procedural countryside with planted incidents and look-alikes.

``World(seed, origin_lat, origin_lon, ground_alt_m, objects).render(camera, pose)`` gives a
BGR frame and ground-truth boxes; see :mod:`simulators.camera.world`.
"""

from simulators.camera.world import Rendered, TruthBox, World

__all__ = ["Rendered", "TruthBox", "World"]
