"""SkyGrid: the CLI and the wiring of a patrol run. Stage logic lives in geo/, flight/,
vision/, dispatch/ and simulators/."""

__version__ = "0.1.0"
