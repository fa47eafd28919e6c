"""Configuration, database engine/migrations, clock and token security for dispatch."""
