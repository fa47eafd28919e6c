"""Benchmark: MAVSDK mission upload time and telemetry throughput.

Measured against SkyGrid's simulated vehicle over loopback UDP with the real MAVSDK
(no mocks): mission upload (and upload + verifying download) for missions of 100-990
waypoints, each with a speed (2 MAVLink items per waypoint), and telemetry throughput:
the record pipeline's capacity (Telemetry built from link state and fanned out to a
flight log + a reporter queue) and the live stream from two vehicles at 20 Hz.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path


def _plan_with(n_waypoints: int):
    from geo.plan_schema import Home, Plan, Sortie, Waypoint
    from geo.projection import LocalFrame

    home = (30.0690, 120.5310)
    f = LocalFrame(*home)
    wps = []
    for i in range(n_waypoints):
        lon, lat = f.to_wgs84(20.0 + (i % 50) * 8.0, 20.0 + (i // 50) * 8.0)
        wps.append(Waypoint(lat=float(lat), lon=float(lon), rel_alt_m=40.0, speed_m_s=10.0,
                            gimbal_pitch_deg=-90.0))
    s = Sortie(id=f"bench-{n_waypoints}", drone=0, index=0, grid_ids=[], waypoints=wps)
    return Plan(home=Home(*home, 10.0), camera={}, altitude_m=40, gsd_cm=1, speed_m_s=10, side_overlap=0.7,
                front_overlap=0.8, line_spacing_m=8, trigger_distance_m=8, drones=1, grids=[], sorties=[s])


def _start_sim(instance: int = 0):
    import socket

    from simulators.vehicle import SimVehicle, VehicleConfig

    def free() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return SimVehicle(VehicleConfig(instance=instance, home_lat=30.0690, home_lon=120.5310, speed_factor=20,
                                    gcs_port=free(), listen_port=free())).start()


async def _upload_bench(sizes: list[int], repeats: int) -> list[dict]:
    from flight.link import VehicleLink, verify_download
    from flight.mission import build_mission

    sim = _start_sim()
    link = VehicleLink(sim.connection_url, "bench")
    out = []
    try:
        await link.connect(30)
        await link.wait_for(lambda s: s.connected, 10)
        for n in sizes:
            plan = _plan_with(n)
            spec = build_mission(plan.sorties[0], plan, fence=False)
            ups, rts = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                await link.upload_mission(spec.steps, rtl_after=True, timeout_s=120)
                t1 = time.perf_counter()
                items, _rtl = await link.download_mission(timeout_s=120)
                t2 = time.perf_counter()
                assert verify_download(spec.steps, items) is None
                ups.append(t1 - t0)
                rts.append(t2 - t0)
            up = statistics.median(ups)
            rt = statistics.median(rts)
            row = {"waypoints": n, "mavlink_items": spec.mavlink_items, "upload_s": up, "roundtrip_s": rt,
                   "per100_wp_s": up / n * 100, "per100_mavlink_s": up / spec.mavlink_items * 100}
            print(f"  upload {n} waypoints ({spec.mavlink_items} MAVLink items): {up:.3f} s, "
                  f"with verifying download {rt:.3f} s -> {row['per100_wp_s'] * 1000:.0f} ms per 100 waypoints")
            out.append(row)
    finally:
        await link.close()
        sim.stop()
    return out


def _pipeline_bench(n: int = 20000) -> float:
    """Records/s through Emitter -> FlightLog + a queueing listener (no network)."""
    from flight.executor import Emitter
    from flight.flightlog import FlightLog
    from flight.link import VehicleState
    from flight.reporting import DispatchReporter

    st = VehicleState(connected=True, lat=30.0, lon=120.5, abs_alt_m=50, rel_alt_m=40, battery_pct=80,
                      flight_mode="MISSION", armed=True, in_air=True)
    with tempfile.TemporaryDirectory() as d:
        log = FlightLog(Path(d) / "x.jsonl", "d0", "s")
        rep = DispatchReporter("http://127.0.0.1:9", "T", flush_s=3600)  # never reaches a server
        em = Emitter("d0", [log, rep])
        em.sortie_id = "s"
        t0 = time.perf_counter()
        for i in range(n):
            st.lat = 30.0 + i * 1e-6
            em.telemetry(st, i * 0.1)
        dt = time.perf_counter() - t0
        log.close()
        rep._stop.set()
    return n / dt


async def _live_bench(seconds: float, hz: float) -> dict:
    from flight.executor import Emitter, TelemetryPump
    from flight.link import VehicleLink

    sims = [_start_sim(0), _start_sim(1)]
    links = [VehicleLink(s.connection_url, f"d{i}") for i, s in enumerate(sims)]
    counts = {}
    try:
        for lk in links:
            await lk.connect(30)
        await asyncio.gather(*(lk.wait_for(lambda s: s.has_position, 10) for lk in links))
        pumps = []
        stamps: dict[str, list[float]] = {}

        class Count:
            def on_telemetry(self, r):
                stamps.setdefault(r.drone_id, []).append(r.wall_time)

            def on_event(self, e):
                pass

        for i, lk in enumerate(links):
            p = TelemetryPump(lk, Emitter(f"d{i}", [Count()]), hz)
            p.start()
            pumps.append(p)
        await asyncio.sleep(seconds)
        for p in pumps:
            await p.stop()
        for did, ts in stamps.items():
            gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
            counts[did] = {"records_s": len(ts) / seconds, "p95_gap_ms": sorted(gaps)[int(0.95 * len(gaps))] * 1000}
    finally:
        for lk in links:
            await lk.close()
        for s in sims:
            s.stop()
    return counts


def run() -> str:
    print("flight benchmark: mission upload (MAVSDK -> simulated vehicle, loopback UDP)")
    uploads = asyncio.run(_upload_bench([100, 500, 990], repeats=3))
    print("telemetry pipeline capacity")
    cap = _pipeline_bench()
    print(f"  {cap:,.0f} records/s (Emitter -> flight log + reporter queue)")
    hz = 20.0
    live = asyncio.run(_live_bench(8.0, hz))
    for did, c in live.items():
        print(f"  live {did}: {c['records_s']:.1f} records/s at {hz:.0f} Hz configured, p95 gap {c['p95_gap_ms']:.0f} ms")
    per100 = statistics.median(r["per100_wp_s"] for r in uploads)
    lines = [
        "## Flight: mission upload and telemetry throughput",
        "",
        "Real MAVSDK 4 (`mavsdk.asyncio`) over loopback UDP to SkyGrid's simulated vehicle "
        "(`simulators.vehicle`, 20x). Missions have a speed on every waypoint (2 MAVLink items each) "
        "plus gimbal and RTL items; median of 3 uploads. Verified = upload + download + comparison.",
        "",
        "| waypoints | MAVLink items (upper bound) | upload (s) | upload + verify (s) | per 100 waypoints (ms) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in uploads:
        lines.append(f"| {r['waypoints']} | {r['mavlink_items']} | {r['upload_s']:.3f} | {r['roundtrip_s']:.3f} | "
                     f"{r['per100_wp_s'] * 1000:.0f} |")
    lines += [
        "",
        "| telemetry | target | measured |",
        "|---|---:|---:|",
        f"| record pipeline capacity (records/s, Emitter -> flight log + reporter) | >= 1,000 | {cap:,.0f} |",
    ]
    for did, c in live.items():
        lines.append(f"| live stream {did}, {hz:.0f} Hz configured, 2 vehicles (records/s) | {hz * 0.9:.0f} | "
                     f"{c['records_s']:.1f} (p95 gap {c['p95_gap_ms']:.0f} ms) |")
    lines += ["", f"Target for upload: < 1 s per 100 waypoints; measured {per100 * 1000:.0f} ms.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
