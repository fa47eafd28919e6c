"""SkyGrid's simulated PX4-like multicopter, flown over MAVLink/UDP by an unmodified MAVSDK.

Public API::

    from simulators.vehicle import VehicleConfig, SimVehicle, start_fleet
    v = SimVehicle(VehicleConfig(instance=0, home_lat=30.08, home_lon=120.49, speed_factor=10)).start()
    # MAVSDK: await mavsdk.add_any_connection(v.connection_url)  -> "udpin://0.0.0.0:14540"
    v.faults.link_loss(3.0); v.state.mode; v.stop()

Modules: ``physics`` (point mass), ``autopilot`` (PX4-like modes, mission, failsafes),
``mission_store`` (mission protocol), ``faults`` (fault API), ``mavlink_vehicle`` (UDP adapter).
"""

from simulators.vehicle.autopilot import VehicleState
from simulators.vehicle.faults import Faults
from simulators.vehicle.mavlink_vehicle import SimVehicle, VehicleConfig, start_fleet

__all__ = ["Faults", "SimVehicle", "VehicleConfig", "VehicleState", "start_fleet"]
