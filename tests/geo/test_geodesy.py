"""geo.geodesy: WGS-84 geodesic distances against published values."""

import pytest

from geo.geodesy import distance_m


def test_one_degree_of_latitude_on_the_equator_and_at_the_pole():
    # WGS-84 meridian arc: 110,574.4 m for 0..1 deg, 111,693.9 m for 89..90 deg
    assert distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(110_574.4, abs=0.5)
    assert distance_m(89.0, 0.0, 90.0, 0.0) == pytest.approx(111_693.9, abs=0.5)


def test_one_degree_of_longitude_on_the_equator():
    assert distance_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(111_319.5, abs=0.5)


def test_symmetric_and_zero_for_the_same_point():
    a, b = (30.0880, 120.3290), (30.0931, 120.3270)
    assert distance_m(*a, *b) == pytest.approx(distance_m(*b, *a))
    assert distance_m(*a, *a) == 0.0
    assert 590 < distance_m(*a, *b) < 610  # ~0.0051 deg north, ~0.002 deg west near Shaoxing
