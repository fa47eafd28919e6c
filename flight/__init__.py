"""Mission building and execution with MAVSDK, fleet control and telemetry records.

* :mod:`flight.mission` (pure): plan ``Sortie`` -> mission steps + geofence, capacity check,
  follow-up sorties for unfinished remainders.
* :mod:`flight.link`: the MAVSDK adapter (one vehicle, one connection).
* :mod:`flight.executor`: one sortie: health, pre-flight checks, upload + verify, arm, start,
  monitor; link loss, low battery, command-room orders.
* :mod:`flight.fleet`: ``await Fleet(plan, connections, listeners, log_dir).run()``.
* :mod:`flight.flightlog`: JSON-lines flight log per sortie, ``read_flight_log``.
* :mod:`flight.reporting`: ``DispatchReporter`` (telemetry to dispatch, commands back).

The MAVSDK adapter is imported lazily by the modules that fly; the records and mission
builder are pure (importable without the native library).
"""
