"""Camera model: sensor + lens + image size -> ground sample distance and footprint.

Conventions (same as QGroundControl's survey math):
GSD [cm/px] = altitude [m] * sensor width [mm] * 100 / (image width [px] * focal length [mm]).
Footprint width [m] = altitude * sensor width / focal length (height likewise).
Line spacing [m] = footprint width * (1 - side overlap); trigger distance [m] = footprint
height * (1 - front overlap). The image's long side is across track.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class CameraModel:
    """A pinhole survey camera. Lengths in millimetres, image size in pixels."""

    name: str
    sensor_width_mm: float
    sensor_height_mm: float
    focal_length_mm: float
    image_width_px: int
    image_height_px: int

    def __post_init__(self) -> None:
        for f in ("sensor_width_mm", "sensor_height_mm", "focal_length_mm"):
            if not getattr(self, f) > 0:
                raise ValueError(f"camera {self.name!r}: {f} must be > 0, got {getattr(self, f)!r}")
        for f in ("image_width_px", "image_height_px"):
            if not int(getattr(self, f)) > 0:
                raise ValueError(f"camera {self.name!r}: {f} must be > 0, got {getattr(self, f)!r}")

    # --- ground geometry -------------------------------------------------------------
    def gsd_cm(self, altitude_m: float) -> float:
        """Ground sample distance in cm/px at ``altitude_m`` metres above flat ground (nadir)."""
        return altitude_m * self.sensor_width_mm * 100.0 / (self.image_width_px * self.focal_length_mm)

    def altitude_for_gsd(self, gsd_cm: float) -> float:
        """Altitude above ground in metres that gives ``gsd_cm`` cm/px (nadir)."""
        return gsd_cm * self.image_width_px * self.focal_length_mm / (self.sensor_width_mm * 100.0)

    def footprint_m(self, altitude_m: float) -> tuple[float, float]:
        """(across-track width, along-track height) in metres of the nadir image at ``altitude_m``."""
        return (
            altitude_m * self.sensor_width_mm / self.focal_length_mm,
            altitude_m * self.sensor_height_mm / self.focal_length_mm,
        )

    def line_spacing_m(self, altitude_m: float, side_overlap: float) -> float:
        """Distance in metres between adjacent survey lines for a side overlap in [0, 1)."""
        if not 0.0 <= side_overlap < 1.0:
            raise ValueError(f"side overlap must be in [0, 1), got {side_overlap!r}")
        return self.footprint_m(altitude_m)[0] * (1.0 - side_overlap)

    def trigger_distance_m(self, altitude_m: float, front_overlap: float) -> float:
        """Distance in metres between photos along a line for a front overlap in [0, 1)."""
        if not 0.0 <= front_overlap < 1.0:
            raise ValueError(f"front overlap must be in [0, 1), got {front_overlap!r}")
        return self.footprint_m(altitude_m)[1] * (1.0 - front_overlap)

    # --- image geometry --------------------------------------------------------------
    def intrinsics(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels for this image size (square pixels assumed per axis)."""
        fx = self.focal_length_mm * self.image_width_px / self.sensor_width_mm
        fy = self.focal_length_mm * self.image_height_px / self.sensor_height_mm
        return fx, fy, self.image_width_px / 2.0, self.image_height_px / 2.0

    def scaled(self, width_px: int) -> CameraModel:
        """The same optics streamed at ``width_px`` wide (height keeps the aspect ratio).

        Drones downlink a reduced video stream; detection runs on it while the footprint
        (and so the coverage plan) is the full camera's.
        """
        height = max(1, round(self.image_height_px * width_px / self.image_width_px))
        return replace(self, name=f"{self.name}@{width_px}", image_width_px=width_px, image_height_px=height)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CameraModel:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


#: Common survey cameras (sensor mm, focal mm, image px). Override any field with ``dataclasses.replace``.
PRESETS: dict[str, CameraModel] = {
    c.name: c
    for c in (
        # DJI Mavic 3 Enterprise wide camera (4/3 CMOS): the county workhorse.
        CameraModel("m3e", 17.3, 13.0, 12.29, 5280, 3956),
        # DJI Phantom 4 RTK (1" CMOS, 8.8 mm).
        CameraModel("p4rtk", 13.2, 8.8, 8.8, 5472, 3648),
        # DJI Zenmuse P1 with 35 mm lens (full frame).
        CameraModel("p1-35mm", 35.9, 24.0, 35.0, 8192, 5460),
        # DJI Matrice 30 wide camera (1/2" CMOS).
        CameraModel("m30-wide", 6.4, 4.8, 4.5, 4000, 3000),
    )
}

DEFAULT_CAMERA = "m3e"


def get_camera(name: str) -> CameraModel:
    """Look up a preset by name; the error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown camera {name!r}; known: {', '.join(sorted(PRESETS))}") from None
