"""Benchmark of SkyGrid's simulated vehicle: achieved time speed-up, message rates, CPU cost,
an unmodified MAVSDK flying a 40-waypoint survey at 10x and 20x, and the synthetic camera's
render time per 640 x 480 frame (the figure tests/simulators/test_camera.py no longer times).

Run: ``.venv/bin/python -m bench.bench_sim`` (about a minute on 2 cores).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time


def _free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _speedup(speed: float, n: int, seconds: float) -> dict:
    """Start ``n`` hovering vehicles at ``speed``; measure sim/wall ratio, messages/s and CPU."""
    from simulators.vehicle import SimVehicle, VehicleConfig

    fleet = [SimVehicle(VehicleConfig(instance=i, gcs_port=_free_udp(), listen_port=_free_udp(), speed_factor=speed)).start()
             for i in range(n)]
    try:
        for v in fleet:
            v.call(lambda ap: (ap.arm(True), ap.takeoff(20.0)))
        time.sleep(0.3)
        t0, c0 = time.monotonic(), time.process_time()
        s0 = [v.state.time_s for v in fleet]
        m0 = [sum(v.stats.sent.values()) for v in fleet]
        time.sleep(seconds)
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        ratios = [(v.state.time_s - a) / wall for v, a in zip(fleet, s0, strict=True)]
        msgs = [(sum(v.stats.sent.values()) - b) / wall for v, b in zip(fleet, m0, strict=True)]
    finally:
        for v in fleet:
            v.stop()
    return {"speed": speed, "n": n, "achieved": min(ratios), "msgs_s": sum(msgs) / n, "cpu_pct": 100 * cpu / wall / n}


async def _survey(speed: float) -> dict:
    from mavsdk import LogLevel, log_subscribe
    from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
    from mavsdk.asyncio.plugins.mission import MissionAsync, MissionItem, MissionPlan

    from simulators.vehicle import SimVehicle, VehicleConfig

    warnings: list[str] = []
    log_subscribe(lambda level, msg, f, line: (level >= LogLevel.WARN and warnings.append(msg)) or level < LogLevel.WARN)
    home = (30.0870, 120.4950)
    v = SimVehicle(VehicleConfig(gcs_port=_free_udp(), listen_port=_free_udp(), speed_factor=speed, rtl_alt_m=40)).start()
    items = []
    for i in range(40):
        north, east = (i // 2) * 20.0 + 20.0, (0.0 if i % 4 in (0, 3) else 60.0) + 20.0
        lat = home[0] + north / 111_195.0
        lon = home[1] + east / (111_195.0 * math.cos(math.radians(home[0])))
        items.append(MissionItem(lat, lon, 30.0, 12.0, True, *([float("nan")] * 2), MissionItem.CameraAction.NONE,
                                 *([float("nan")] * 5), MissionItem.VehicleAction.NONE))
    progress: list[int] = []
    try:
        async with Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION)) as m:
            t0 = time.monotonic()
            await m.add_any_connection(v.connection_url)
            system = await m.first_autopilot(timeout_s=10)
            t_conn = time.monotonic() - t0
            mission = MissionAsync(system)
            from mavsdk.asyncio.plugins.action import ActionAsync

            action = ActionAsync(system)
            await mission.set_return_to_launch_after_mission(True)
            t1 = time.monotonic()
            await mission.upload_mission(MissionPlan(items))
            t_upload = time.monotonic() - t1

            async def watch() -> None:
                async for p in mission.subscribe_mission_progress():
                    progress.append(p.current)

            task = asyncio.ensure_future(watch())
            await action.arm()
            t2, sim0 = time.monotonic(), v.state.time_s
            await mission.start_mission()
            while v.state.armed or not v.state.mission_finished:
                await asyncio.sleep(0.1)
                if time.monotonic() - t2 > 100:
                    break
            wall, sim = time.monotonic() - t2, v.state.time_s - sim0
            await asyncio.sleep(0.3)
            task.cancel()
            for p in (mission, action):
                p.destroy()
    finally:
        v.stop()
    return {"speed": speed, "connect_s": t_conn, "upload_s": t_upload, "wall_s": wall, "sim_s": sim,
            "in_order": progress == list(range(41)), "events": len(progress), "warnings": len(warnings),
            "distance_m": v.state.odometer_m, "battery": v.state.battery_pct}


RENDER_TARGET_MS = 250.0  # a frame per wall second per drone at 10x leaves room for detection


def _render_ms(repeats: int = 10) -> dict:
    """Render time of one 640 x 480 m3e frame at 80 m AGL from a built world (the camera test's
    world: seed 7, a shed and a haystack), best and median of ``repeats``, milliseconds."""
    import statistics

    from geo.camera import get_camera
    from geo.georef import CameraPose
    from geo.projection import LocalFrame
    from simulators.camera import World
    from simulators.scenario import PlantedObject

    lat0, lon0, ground = 30.0879584, 120.3289584, 8.0
    frame = LocalFrame(lat0, lon0)
    (lon1, lat1), (lon2, lat2) = frame.to_wgs84(-20.0, 30.0), frame.to_wgs84(35.0, -40.0)
    world = World(7, lat0, lon0, ground, [
        PlantedObject("shed", "illegal_structure", float(lat1), float(lon1), heading_deg=30.0, size_m=14.0),
        PlantedObject("hay", "haystack", float(lat2), float(lon2), size_m=4.0)])
    cam = get_camera("m3e").scaled(640)
    pose = CameraPose(lat0, lon0, ground + 80.0, ground, yaw_deg=33.0)
    world.render(cam, pose)  # warm caches, as the test did
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        world.render(cam, pose)
        times.append((time.perf_counter() - t) * 1000.0)
    return {"best_ms": min(times), "median_ms": statistics.median(times), "repeats": repeats}


def run() -> str:
    render = _render_ms()
    print(f"camera render: best {render['best_ms']:.0f} ms, median {render['median_ms']:.0f} ms", flush=True)
    rows = []
    for speed, n in ((1.0, 1), (10.0, 1), (20.0, 1), (50.0, 1), (20.0, 4)):
        r = _speedup(speed, n, 2.0)
        print(f"speed {speed:>4}x x{n}: achieved {r['achieved']:.2f}x, {r['msgs_s']:.0f} msg/s per vehicle, "
              f"CPU {r['cpu_pct']:.1f} % per vehicle", flush=True)
        rows.append(r)
    surveys = []
    for speed in (10.0, 20.0):
        s = asyncio.run(_survey(speed))
        print(f"survey {speed}x: connect {s['connect_s']:.2f} s, upload {s['upload_s']:.2f} s, flight {s['wall_s']:.1f} s wall "
              f"/ {s['sim_s']:.0f} s sim, progress in order {s['in_order']} ({s['events']} events), MAVSDK warnings "
              f"{s['warnings']}", flush=True)
        surveys.append(s)
    out = ["## Simulated vehicle (simulators.vehicle)", "",
           "Hovering vehicles for 2 s wall: achieved speed-up (sim s per wall s, slowest vehicle), MAVLink messages "
           "sent per wall second and process CPU per vehicle (2 shared cores). Target: achieved = requested, "
           "position stream capped at 25 Hz wall, status streams at 5 Hz wall.", "",
           "| requested | vehicles | achieved | msg/s per vehicle | CPU % per vehicle |", "|---|---|---|---|---|"]
    out += [f"| {r['speed']:.0f}x | {r['n']} | {r['achieved']:.2f}x | {r['msgs_s']:.0f} | {r['cpu_pct']:.1f} |" for r in rows]
    out += ["", "Unmodified MAVSDK 4.1 flies a 40-waypoint survey (20 m spacing, 60 m legs, 30 m, 12 m/s, RTL after "
            "mission at 40 m): arm to disarmed. Target: progress 0..40 in order, no MAVSDK warnings "
            "(PX4 SITL reference: 90 s wall at 10x for its survey).", "",
            "| speed | connect s | upload 81 items s | flight wall s | flight sim s | distance m | progress in order | MAVSDK warnings |",
            "|---|---|---|---|---|---|---|---|"]
    out += [f"| {s['speed']:.0f}x | {s['connect_s']:.2f} | {s['upload_s']:.2f} | {s['wall_s']:.1f} | {s['sim_s']:.0f} | "
            f"{s['distance_m']:.0f} | {'yes' if s['in_order'] else 'NO'} ({s['events']}) | {s['warnings']} |" for s in surveys]
    ok = "✅" if render["best_ms"] <= RENDER_TARGET_MS else "❌"
    out += ["", "Synthetic camera (simulators.camera.World.render): one 640×480 m3e frame at 80 m AGL from a built "
            f"world, {render['repeats']} renders after a warm-up. Target ≤ {RENDER_TARGET_MS:.0f} ms (best).", "",
            "| best ms | median ms | target |", "|---|---|---|",
            f"| {render['best_ms']:.0f} | {render['median_ms']:.0f} | {ok} |"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run())
