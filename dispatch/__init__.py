"""Tickets (综合查一次), routing to departments, SLA timers and escalation, storage,
the FastAPI API, live alerts and the command-room / grid-worker / operator pages."""
