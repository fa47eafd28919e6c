"""Mission building and execution with MAVSDK, fleet control and telemetry records.

The MAVSDK adapter is imported lazily by the modules that fly; the records and mission
builder are pure.
"""
