"""Simulated vehicles (MAVLink over UDP), the synthetic aerial camera, the PX4 SITL
launcher, and patrol scenarios."""
