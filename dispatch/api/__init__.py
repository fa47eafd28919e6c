"""Thin HTTP routers; the work happens in :mod:`dispatch.service` and :mod:`dispatch.queries`."""
