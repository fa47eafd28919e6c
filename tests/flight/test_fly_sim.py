"""Flying plans end to end: MAVSDK over UDP against SkyGrid's simulated vehicle at 20-30x."""

from __future__ import annotations

import asyncio

import pytest

from flight.executor import FlightConfig
from flight.fleet import Fleet
from flight.flightlog import read_flight_events, read_flight_log

from .planfactory import make_plan
from .simharness import LinkOutage, Recorder, TrackSampler, dist_m, start_sim, visits

pytestmark = pytest.mark.timeout(120)


def fly(plan, sims, rec, tmp_path, cfg=None, **kw):
    fleet = Fleet(plan, [s.connection_url for s in sims], listeners=[rec], log_dir=tmp_path / "logs",
                  config=cfg or FlightConfig(telemetry_hz=10), **kw)
    return fleet, asyncio.run(fleet.run())


def test_multi_grid_plan_every_waypoint_reached(tmp_path):
    plan = make_plan([[(40, 40), (200, 40), (40, 200)]], lines=2, alt=20, sorties_per_drone=[[2, 1]])
    rec = Recorder()
    sim = start_sim()
    try:
        with TrackSampler(sim) as track:
            _fleet, res = fly(plan, [sim], rec, tmp_path)
    finally:
        sim.stop()
    d0 = res["d0"]
    assert d0.status == "done" and d0.completed == ["d0-s0", "d0-s1"] and not d0.unflown
    for s in plan.sorties:
        assert sorted(i for sid, i in rec.reached() if sid == s.id) == list(range(len(s.waypoints)))
        for w in s.waypoints:  # the true track passed every waypoint exactly once
            assert visits(track.track, w.lat, w.lon, w.rel_alt_m) == 1, (s.id, w)
    kinds = rec.kinds()
    for k in ("connected", "preflight_ok", "geofence_uploaded", "mission_uploaded", "armed",
              "mission_started", "mission_complete", "landed", "turnaround", "battery_ready", "drone_done"):
        assert k in kinds, k
    # one log per sortie, read back as the pose stream vision uses
    assert len(d0.logs) == 2
    poses = read_flight_log(d0.logs[0])
    assert len(poses) > 20 and all(p.sortie_id == "d0-s0" for p in poses)
    assert any(p.in_air and abs(p.rel_alt_m - 20) < 2 for p in poses)
    times = [p.time_s for p in poses]
    assert times == sorted(times)
    # vehicle time follows the simulator's clock (about SPEED x wall; compared with the
    # simulator's own clock, which falls behind SPEED x wall on a loaded machine)
    true_span = track.vehicle_time_at(poses[-1].wall_time) - track.vehicle_time_at(poses[0].wall_time)
    wall = poses[-1].wall_time - poses[0].wall_time
    assert true_span > 3 * wall  # the simulator ran fast: a wall clock here would be caught
    assert times[-1] - times[0] == pytest.approx(true_span, rel=0.1)
    evs = read_flight_events(d0.logs[0])
    assert evs[0].kind == "sortie_start" and evs[-1].kind == "sortie_done"
    # back home at the end
    assert dist_m(sim.state.lat, sim.state.lon, plan.home.lat, plan.home.lon) < 5
    assert d0.telemetry_records > 0


# "Flown" means flown by the mission: with the data-link failsafe the vehicle can switch to
# RTL a few metres short of the next waypoint and brake/climb through it. The autopilot did
# not reach that waypoint (MISSION_CURRENT still points at it), so the resume re-flies it
# once, in MISSION mode; a resume point one item early would still be caught here.
# "Reached" is the autopilot's own test: within the item's acceptance radius, which MAVSDK
# sets to 3 m for a fly-through waypoint. Counting any pass within 6 m in MISSION mode was
# the flake of this test: sampled truth of failing runs showed the data-link RTL firing 4.2
# and 4.4 m short of waypoint 3 while still in MISSION mode (MAVLink seq 11 = waypoint 3 not
# reached at the restore), so the correct resume from waypoint 2 counted as a double visit;
# one more run came within 3 m in the very step the failsafe switched to RTL (see visits).
ACCEPT_M = 3.0
@pytest.mark.parametrize("vehicle_rtl", [True, False], ids=["failsafe-rtl", "kept-flying"])
def test_link_loss_mid_grid_resumes_from_last_reached(tmp_path, vehicle_rtl):
    # MAVSDK declares a link lost after ~3 s wall without heartbeat. The link stays down
    # until the executor saw the loss and the vehicle did its part (event-driven, not a
    # wall-clock outage): with the data-link failsafe it returns and lands; without, it
    # keeps flying the mission and has flown on past two more waypoints (a longer grid,
    # still going after it).
    plan = make_plan([[(40, 40)]], lines=4 if vehicle_rtl else 10, size=120 if vehicle_rtl else 160, alt=20)
    wps = plan.sorties[0].waypoints
    rec = Recorder()
    # the simulator counts the data-link timeout in vehicle seconds; MAVSDK heartbeats
    # come every wall second = 20 vehicle seconds at 20x, so the timeout must exceed that
    sim = start_sim(datalink_loss_rtl_s=30.0 if vehicle_rtl else None, speed_factor=20.0)
    seen_rtl = []

    def vehicle_done(st) -> bool:
        if not vehicle_rtl:
            return st.mission_seq >= drop_seq[0] + 2 and not st.mission_finished
        if st.mode == "RTL":
            seen_rtl.append(True)
        return bool(seen_rtl) and not st.in_air

    drop_seq = [0]
    outage = LinkOutage(sim, rec, vehicle_done)

    def on_event(e):
        if e.kind == "item_reached" and e.data["item"] == 2 and not outage.started.is_set():
            drop_seq[0] = sim.state.mission_seq
            outage.begin()

    rec.hooks.append(on_event)
    try:
        with TrackSampler(sim) as track:
            _fleet, res = fly(plan, [sim], rec, tmp_path)
    finally:
        sim.stop()
    assert outage.restored_by_condition, "the vehicle never landed / flew on while the link was down"
    assert res["d0"].status == "done", rec.kinds()
    kinds = rec.kinds()
    assert "link_lost" in kinds and "link_restored" in kinds and "resumed" in kinds
    reached = [i for _s, i in rec.reached()]
    assert set(reached) == set(range(len(wps)))  # whole grid covered
    if vehicle_rtl:
        assert "resume_planned" in kinds
        resume = next(e.data["from_index"] for e in rec.events if e.kind == "resume_planned")
        assert 2 <= resume < len(wps) - 1
        assert any(m == "RTL" for *_x, m in track.track)
    else:
        assert "resume_planned" not in kinds
        resume = 2
    for i, w in enumerate(wps):
        n = visits(track.track, w.lat, w.lon, w.rel_alt_m, modes=frozenset({"MISSION"}))
        assert n >= 1, f"waypoint {i} never flown"
        if i > resume:
            n = visits(track.track, w.lat, w.lon, w.rel_alt_m, near_m=ACCEPT_M, modes=frozenset({"MISSION"}))
            assert n == 1, f"waypoint {i} after the resume point {resume} reached {n} times"


def test_mission_finished_during_the_link_loss_is_not_flown_again(tmp_path):
    plan = make_plan([[(40, 40)]], lines=2, alt=20)
    wps = plan.sorties[0].waypoints
    rec = Recorder()
    sim = start_sim(speed_factor=20.0)

    # down until the vehicle has finished the mission, returned and landed (event-driven)
    outage = LinkOutage(sim, rec, lambda st: st.mission_finished and not st.in_air)

    def on_event(e):
        if e.kind == "item_reached" and e.data["item"] == 0:
            outage.begin()

    rec.hooks.append(on_event)
    try:
        with TrackSampler(sim) as track:
            _fleet, res = fly(plan, [sim], rec, tmp_path)
    finally:
        sim.stop()
    assert outage.restored_by_condition, "the vehicle did not finish and land while the link was down"
    assert res["d0"].status == "done" and res["d0"].completed == ["d0-s0"], rec.kinds()
    kinds = rec.kinds()
    assert "link_lost" in kinds and "resume_planned" not in kinds
    done = [e for e in rec.events if e.kind == "mission_complete"]
    assert len(done) == 1 and "during the link loss" in done[0].message
    assert sorted(i for _s, i in rec.reached()) == list(range(len(wps)))
    for i, w in enumerate(wps):
        assert visits(track.track, w.lat, w.lon, w.rel_alt_m) == 1, f"waypoint {i}"


@pytest.mark.parametrize("who", ["executor", "autopilot"])
def test_low_battery_returns_and_follow_up_finishes_the_grid(tmp_path, who):
    plan = make_plan([[(40, 40)]], lines=4, alt=20)
    wps = plan.sorties[0].waypoints
    rec = Recorder()
    sim = start_sim()

    def on_event(e):
        if e.kind == "item_reached" and e.data["item"] == 3 and e.sortie_id == "d0-s0":
            # executor threshold is 20 %; the autopilot's own critical level is 7 %
            sim.faults.low_battery(15.0 if who == "executor" else 6.0)

    rec.hooks.append(on_event)
    swaps = []

    def swap(did):
        swaps.append(did)
        sim.faults.low_battery(100.0)

    try:
        with TrackSampler(sim) as track:
            # the autopilot case: the executor's own threshold below the vehicle's 7 %
            cfg = FlightConfig(telemetry_hz=10, low_battery_pct=20.0 if who == "executor" else 3.0)
            _fleet, res = fly(plan, [sim], rec, tmp_path, cfg=cfg, battery_swap=swap)
    finally:
        sim.stop()
    d0 = res["d0"]
    assert d0.status == "done", rec.kinds()
    assert [r.status for r in d0.sorties] == ["interrupted", "completed"]
    assert d0.completed == ["d0-s0-r1"] and swaps == ["d0"]
    first = d0.sorties[0]
    assert first.follow_up is not None and first.reason == "low battery"
    kinds = rec.kinds()
    assert ("low_battery" if who == "executor" else "failsafe") in kinds
    assert "replanned" in kinds
    resume = first.reached_index
    fu_wps = first.follow_up.waypoints
    assert [(w.lat, w.lon) for w in fu_wps] == [(w.lat, w.lon) for w in wps[resume:]]
    assert set(i for _s, i in rec.reached("d0", "d0-s0-r1")) == set(range(len(fu_wps)))
    for i, w in enumerate(wps):
        assert visits(track.track, w.lat, w.lon, w.rel_alt_m) >= 1, f"waypoint {i} never flown"
    assert len(d0.logs) == 2 and d0.logs[1].endswith("d0_d0-s0-r1.jsonl")
    journal = [e.kind for e in read_flight_events(tmp_path / "logs" / "d0_events.jsonl")]
    assert journal[0] == "connected" and journal[-1] == "drone_done"
    assert "replanned" in journal and "turnaround" in journal  # decisions between sorties


def test_geofence_hold_in_the_air_is_a_failsafe_and_the_drone_comes_home(tmp_path):
    """PX4's geofence action is Hold (GF_ACTION 2, the built-in vehicle's default too): the
    executor must not wait in the air for a mission that will never go on (issue 12 item 3)."""
    plan = make_plan([[(40, 40)]], lines=4, alt=20)
    rec = Recorder()
    sim = start_sim()

    def on_event(e):
        if e.kind == "item_reached" and e.data["item"] == 2 and e.sortie_id == "d0-s0":
            sim.faults.geofence_breach()

    rec.hooks.append(on_event)
    try:
        with TrackSampler(sim) as track:
            _fleet, res = fly(plan, [sim], rec, tmp_path)
    finally:
        sim.stop()
    failsafes = [e for e in rec.events if e.kind == "failsafe" and e.drone_id == "d0"]
    assert failsafes and failsafes[0].data["mode"] == "HOLD", rec.kinds()
    first = res["d0"].sorties[0]
    assert first.status == "interrupted", res["d0"].sorties
    # the vehicle held, then flew home because the executor told it to, and landed
    modes = [m for *_x, m in track.track]
    held = modes.index("HOLD")
    assert "RTL" in modes[held:] or "RETURN_TO_LAUNCH" in modes[held:], sorted(set(modes[held:]))
    assert track.track[-1][4] is False  # on the ground at the end

def test_abort_returns_the_drone_hold_resume_and_resume_after_abort(tmp_path):
    plan = make_plan([[(40, 40)], [(40, 40)], [(40, 40)]], lines=4, alt=20)
    rec = Recorder()
    sims = [start_sim(0), start_sim(1), start_sim(2)]
    fleet_box = {}
    modes = {}

    def on_event(e):
        f = fleet_box["f"]
        if e.kind == "item_reached" and e.data["item"] == 1:
            if e.drone_id == "d0":
                f.command("d0", "rtl")
            elif e.drone_id == "d1" and "hold" not in rec.kinds("d1"):
                f.command("d1", "hold")
            elif e.drone_id == "d2" and "rtl" not in rec.kinds("d2"):
                f.command("d2", "rtl")
        if e.kind == "rtl" and e.drone_id == "d2":  # changed its mind while it returns

            async def resume_d2():
                await asyncio.sleep(0.3)
                f.command("d2", "resume")

            asyncio.get_running_loop().create_task(resume_d2())
        if e.kind == "hold" and e.drone_id == "d1":
            modes["held_at"] = (sims[1].state.lat, sims[1].state.lon)

            async def later():
                await asyncio.sleep(0.5)
                modes["hold_mode"] = sims[1].state.mode
                f.command("d1", "resume")

            asyncio.get_running_loop().create_task(later())

    rec.hooks.append(on_event)
    fleet = Fleet(plan, [s.connection_url for s in sims], listeners=[rec], log_dir=tmp_path,
                  config=FlightConfig(telemetry_hz=10))
    fleet_box["f"] = fleet
    try:
        res = asyncio.run(fleet.run())
        end0 = sims[0].state
    finally:
        for s in sims:
            s.stop()
    assert res["d0"].status == "aborted" and res["d0"].unflown == ["d0-s0-r1"]
    assert res["d0"].sorties[0].reached_index < len(plan.sorties[0].waypoints) - 1
    assert "rtl" in rec.kinds("d0") and "landed" in rec.kinds("d0")
    assert dist_m(end0.lat, end0.lon, plan.home.lat, plan.home.lon) < 5 and not end0.armed
    assert res["d1"].status == "done" and res["d1"].completed == ["d1-s0"]
    assert modes["hold_mode"] == "HOLD"
    assert "resumed" in rec.kinds("d1")
    assert res["d2"].status == "done" and res["d2"].completed == ["d2-s0"]
    assert "resume_planned" in rec.kinds("d2") and "failsafe" not in rec.kinds("d2")
    reached_d2 = [i for _s, i in rec.reached("d2")]
    assert set(reached_d2) == set(range(len(plan.sorties[2].waypoints)))
    with pytest.raises(ValueError, match="unknown command"):
        fleet.command("d0", "explode")


def test_two_drones_fly_concurrently_and_one_failure_does_not_stop_the_other(tmp_path):
    plan = make_plan([[(40, 40)], [(200, 40)], [(40, 200)]], lines=2, alt=20)
    rec = Recorder()
    far = (plan.home.lat + 0.05, plan.home.lon)  # 5.5 km north: outside the patrol area
    sims = [start_sim(0), start_sim(1), start_sim(2, home=far)]
    sims[1].faults.reject_next_upload()  # MISSION_ACK error once: retried
    try:
        _fleet, res = fly(plan, sims, rec, tmp_path)
    finally:
        for s in sims:
            s.stop()
    assert res["d0"].status == "done" and res["d1"].status == "done"
    assert res["d2"].status == "failed" and "outside the patrol area" in res["d2"].error
    assert res["d2"].unflown == ["d2-s0"] and "preflight_failed" in rec.kinds("d2")
    # the rejected upload is the geofence (sent first): retried, then everything flies
    assert rec.kinds("d1").count("geofence_failed") == 1 and "geofence_uploaded" in rec.kinds("d1")
    assert "geofence_failed" not in rec.kinds("d0")
    # both in the air at the same time
    air = {d: [t.wall_time for t in rec.telemetry if t.drone_id == d and t.in_air] for d in ("d0", "d1")}
    assert max(min(air["d0"]), min(air["d1"])) < min(max(air["d0"]), max(air["d1"]))


def test_cli_reports_to_dispatch_and_obeys_its_abort(tmp_path):
    """`skygrid fly` with --report-to: telemetry reaches the HTTP API, and an RTL issued
    there (the command room's abort) brings the drone home."""
    import json

    from skygrid.cli import main
    from tests.conftest import free_tcp_port

    from .fakedispatch import FakeDispatch

    plan = make_plan([[(40, 40)]], lines=6, alt=20)
    plan_path = tmp_path / "plan.json"
    plan.save(plan_path)

    def on_batch(srv, body):
        if not srv.commands and any(e["kind"] == "item_reached" and e["drone_id"] == "d0" for e in body["events"]):
            srv.add_command("d0", "rtl")

    port = free_tcp_port()
    sim = start_sim()
    try:
        with FakeDispatch(port, token="T", on_batch=on_batch) as srv:
            rc = main(["fly", str(plan_path), "--connect", sim.connection_url, "--report-to",
                       f"http://127.0.0.1:{port}", "--token", "T", "--log-dir", str(tmp_path / "logs"),
                       "--summary", str(tmp_path / "summary.json"), "--quiet", "--telemetry-hz", "10"])
        end = sim.state
    finally:
        sim.stop()
    assert rc == 1  # aborted: not everything flown
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["d0"]["status"] == "aborted" and summary["d0"]["unflown"] == ["d0-s0-r1"]
    assert dist_m(end.lat, end.lon, plan.home.lat, plan.home.lon) < 5 and not end.armed
    # the plan it flies was uploaded first, so the command room shows the routes
    assert [p["sorties"][0]["id"] for p in srv.plans] == [plan.sorties[0].id]
    recs = srv.records()
    assert len(recs) > 10 and {r["drone_id"] for r in recs} == {"d0"}
    kinds = [e["kind"] for e in srv.events()]
    assert "command" in kinds and "rtl" in kinds and kinds[-1] == "drone_done"
    assert list((tmp_path / "logs").glob("d0_d0-s0.jsonl"))


def test_cli_refuses_an_over_capacity_plan_before_flying(tmp_path, capsys):
    from skygrid.cli import main

    plan = make_plan([[(40, 40), (200, 40)]], lines=10)
    p = tmp_path / "plan.json"
    plan.save(p)
    rc = main(["fly", str(p), "--connect", "udpin://127.0.0.1:9", "--mission-capacity", "40", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "d0-s0" in err and "holds 40" in err
