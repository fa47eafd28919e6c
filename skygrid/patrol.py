"""The wiring of one simulated patrol: every stage, end to end, in one process.

grid polygons -> plan (geo) -> simulated vehicles (simulators.vehicle) flown by MAVSDK
(flight.fleet) -> camera frames rendered at the reported poses (simulators.camera) ->
detection, geolocation, tracking (vision) -> incidents POSTed to the dispatch HTTP API ->
tickets -> live alerts received over the WebSocket like a command-room browser would.

Nothing here holds stage logic; it starts the pieces, connects them and scores the run
against the scenario's planted ground truth (the JSON summary of ``skygrid demo``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flight.records import FlightEvent, Telemetry
from flight.zh import event_zh
from geo.geodesy import distance_m
from simulators.scenario import Scenario, reseed

log = logging.getLogger("skygrid.patrol")

ROOT = Path(__file__).resolve().parents[1]
# skygrid/examples links to the repository's examples/ and is copied into an installed copy
DEFAULT_SCENARIO = Path(__file__).resolve().parent / "examples" / "keqiao" / "scenario.yaml"
DEFAULT_MODEL = ROOT / "vision" / "models" / "skygrid-yolo.onnx"


@dataclass
class PatrolConfig:
    """What to fly and how. Ports 0 mean "pick free ones" (tests); the demo uses 8000/14540."""

    scenario: Path = DEFAULT_SCENARIO
    speed: float = 10.0  # simulator time-scale factor (sim seconds per wall second)
    host: str = "127.0.0.1"
    port: int = 8000
    base_udp_port: int = 14540
    work_dir: Path = ROOT / "work" / "demo"
    model: Path = DEFAULT_MODEL
    frame_spacing_m: float = 15.0  # along-track distance between analysed video frames
    stream_width_px: int = 640
    vision_threads: int = 2
    max_queued_frames: int = 12  # per run; older frames are dropped when vision lags (counted)
    drones: int | None = None  # override the scenario's drone count
    grid_ids: list[str] | None = None  # override the scenario's grid subset
    seed: int | None = None  # replant the scenario's objects and reseed its world (simulators.scenario.reseed)
    timeout_s: float = 1800.0  # wall-clock cap on the flight phase
    settle_s: float = 60.0  # at most this many wall s for the last alerts after landing (returns once all arrived)


@dataclass
class PatrolState:
    """Live counters for the progress display (read from the UI thread)."""

    phase: str = "starting"
    drones: dict[str, Telemetry] = field(default_factory=dict)
    sim_speed: float | None = None  # current simulated-time factor (CameraFeed's pacer)
    frames_requested: int = 0  # frames taken from the stream (ordinary + key)
    key_frames: int = 0  # of which at waypoints and turns (see CameraFeed)
    frames_rendered: int = 0
    frames_dropped: int = 0
    detections: int = 0
    incidents: int = 0
    alerts: int = 0
    events: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------------------
# dispatch server in a background thread
# --------------------------------------------------------------------------------------
class DispatchServer:
    """The real dispatch app under uvicorn on loopback, in its own thread and event loop."""

    def __init__(self, settings: Any, host: str, port: int) -> None:
        import uvicorn

        from dispatch.app import SERVER_OPTIONS, create_app

        self.app = create_app(settings)
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="on",
                                                    **SERVER_OPTIONS))
        self.thread = threading.Thread(target=self.server.run, name="dispatch-server", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"dispatch server did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------------------
# camera feed: telemetry -> rendered frames -> vision stage -> dispatch
# --------------------------------------------------------------------------------------
class CameraFeed:
    """A :class:`flight.records.FlightListener` that turns poses into analysed video frames.

    Every ``frame_spacing_m`` metres flown at survey height it renders the stream camera's
    view at the reported pose and queues it; worker threads run the vision stage.

    *Key frames* are the ones the plan's coverage depends on (issue 16): the planner trims
    every survey line to end half a footprint inside the grid, so the strip corners beyond a
    line end are imaged only from the line end itself. The vehicle reaches a line start on
    the transit heading and yaws onto the line over ~2 s while creeping on, so a single
    frame at the item change showed a footprint rotated by up to 90 degrees; which telemetry
    record landed in the turn varied with CPU load (grid 004 of the CI scenario: 0.9930 to
    0.9979 imaged). So a key frame is taken at the last pose before each waypoint is
    reached (still on the old line's heading), at the first pose after it, and at every
    ``turn_step_deg`` of heading change since the last frame (the footprint swept through
    the turn). When vision falls behind, the oldest queued *ordinary* frame is dropped (a
    live stream does the same; its neighbours overlap it by ~80 %) and counted; key frames
    are dropped only when the queue holds nothing else.
    """

    def __init__(self, *, world: Any, stage: Any, camera: Any, ground_alt_m: float, survey_alt_m: float,
                 frame_spacing_m: float, state: PatrolState, on_incident: Callable[[Any, float], None],
                 threads: int = 1, max_queued: int = 12, turn_step_deg: float = 15.0) -> None:
        self.world, self.stage, self.camera = world, stage, camera
        self.ground_alt_m, self.survey_alt_m = ground_alt_m, survey_alt_m
        self.frame_spacing_m, self.turn_step_deg = frame_spacing_m, turn_step_deg
        self.state, self.on_incident = state, on_incident
        self.max_queued = max_queued
        self.pending: list[tuple[int, Telemetry, float, bool]] = []  # (frame id, pose, wall time, key)
        self.cond = threading.Condition()
        self.unfinished = 0
        self.last_pos: dict[str, tuple[float, float]] = {}
        self.last_yaw: dict[str, float] = {}
        self.last_item: dict[str, int | None] = {}
        self.prev_rec: dict[str, Telemetry | None] = {}  # last survey-height pose, if not already a frame
        self.footprints: list[Any] = []  # shapely polygons (WGS-84) of analysed frames
        self.lock = threading.Lock()
        self.frame_id = 0
        self.stop_flag = threading.Event()
        self.workers = [threading.Thread(target=self._work, name=f"vision-{i}", daemon=True) for i in range(threads)]
        for w in self.workers:
            w.start()

    # FlightListener -------------------------------------------------------------------
    def on_telemetry(self, record: Telemetry) -> None:
        self.state.drones[record.drone_id] = record
        d = record.drone_id
        if not record.in_air or record.rel_alt_m < 0.85 * self.survey_alt_m:
            self.prev_rec[d] = None
            return
        prev = self.last_pos.get(d)
        item_changed = self.last_item.get(d) != record.mission_item
        self.last_item[d] = record.mission_item
        if item_changed and prev is not None and self.prev_rec.get(d) is not None:
            self._enqueue(self.prev_rec[d], key=True)  # the waypoint approached on the old heading
        turned = d in self.last_yaw and abs((record.yaw_deg - self.last_yaw[d] + 180.0) % 360.0 - 180.0) >= self.turn_step_deg
        far = prev is None or _dist_m(prev, (record.lat, record.lon)) >= self.frame_spacing_m
        if not (far or item_changed or turned):
            self.prev_rec[d] = record
            return
        self.prev_rec[d] = None
        self.last_pos[d] = (record.lat, record.lon)
        self.last_yaw[d] = record.yaw_deg
        self._enqueue(record, key=item_changed or turned)

    def _enqueue(self, record: Telemetry, *, key: bool) -> None:
        """Queue a frame at ``record``'s pose; when full, drop the oldest ordinary frame."""
        with self.lock:
            self.frame_id += 1
            fid = self.frame_id
        self.state.frames_requested += 1
        self.state.key_frames += key
        with self.cond:
            if len(self.pending) >= self.max_queued:
                victim = next((i for i, it in enumerate(self.pending) if not it[3]), 0)
                del self.pending[victim]
                self.unfinished -= 1
                self.state.frames_dropped += 1
            self.pending.append((fid, record, time.time(), key))
            self.unfinished += 1
            self.cond.notify()

    def on_event(self, event: FlightEvent) -> None:
        self.state.events.append(f"{event.drone_id} {event_zh(event.kind, event.data)}")
        del self.state.events[:-8]

    # worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        from geo.georef import CameraPose
        from vision.contracts import Frame

        while not self.stop_flag.is_set():
            with self.cond:
                if not self.pending:
                    self.cond.wait(timeout=0.2)
                    continue
                fid, rec, t_wall, _key = self.pending.pop(0)
            try:
                pose = CameraPose(lat=rec.lat, lon=rec.lon, alt_amsl_m=self.ground_alt_m + rec.rel_alt_m,
                                  ground_alt_m=self.ground_alt_m, yaw_deg=rec.yaw_deg,
                                  pitch_deg=rec.pitch_deg, roll_deg=rec.roll_deg)
                rendered = self.world.render(self.camera, pose)
                frame = Frame(image=rendered.image, camera=self.camera, pose=pose, drone_id=rec.drone_id,
                              frame_id=fid, time_s=rec.time_s, wall_time=t_wall, sortie_id=rec.sortie_id)
                self._remember_footprint(pose)
                self.state.frames_rendered += 1
                for incident in self.stage.process(frame) or []:
                    self.on_incident(incident, t_wall)
            except Exception:  # one bad frame must not stop the stream
                log.exception("frame %s from %s failed", fid, rec.drone_id)
            finally:
                with self.cond:
                    self.unfinished -= 1
                    self.cond.notify_all()

    def _remember_footprint(self, pose: Any) -> None:
        """Keep the frame's ground footprint (WGS-84 polygon) to score coverage afterwards."""
        from shapely.geometry import Polygon

        from geo.georef import pixels_to_ground
        from geo.projection import LocalFrame

        w, h = self.camera.image_width_px, self.camera.image_height_px
        n, e = pixels_to_ground([0, w, w, 0], [0, 0, h, h], self.camera, pose)
        lon, lat = LocalFrame(pose.lat, pose.lon).to_wgs84(e, n)
        with self.lock:
            self.footprints.append(Polygon(zip(lon, lat, strict=True)))

    def backlog(self) -> int:
        """Frames queued or being analysed."""
        with self.cond:
            return self.unfinished

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait (at most ``timeout_s`` wall seconds) until every queued frame is analysed."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.unfinished > 0 and (left := deadline - time.monotonic()) > 0:
                self.cond.wait(timeout=left)

    def close(self) -> None:
        self.stop_flag.set()
        for w in self.workers:
            w.join(timeout=5)


def _dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Ground distance in metres between (lat, lon) pairs."""
    return distance_m(a[0], a[1], b[0], b[1])


# --------------------------------------------------------------------------------------
# live alerts, received like a command-room browser
# --------------------------------------------------------------------------------------
class AlertWatcher:
    """Subscribes to the live WebSocket and timestamps every ticket event on arrival."""

    def __init__(self, ws_url: str, token: str, on_count: Callable[[int], None] | None = None) -> None:
        self.ws_url = ws_url
        self.token = token
        self.created: dict[Any, tuple[float, dict]] = {}
        self.on_count = on_count  # told the number of tickets alerted so far (progress display)
        self.task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def _run(self) -> None:
        import websockets

        while True:
            try:
                async with websockets.connect(self.ws_url, open_timeout=10,
                                              additional_headers={"Authorization": f"Bearer {self.token}"}) as ws:
                    self.connected.set()
                    async for raw in ws:
                        now = time.time()
                        try:
                            msg = json.loads(raw)
                        except ValueError:
                            continue
                        topic = msg.get("topic", "")
                        data = msg.get("data") or msg.get("payload") or {}
                        if topic.startswith("ticket.") and "id" in data and data["id"] not in self.created:
                            self.created[data["id"]] = (now, data)
                            if self.on_count:
                                self.on_count(len(self.created))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # reconnect: the server may still be starting
                log.debug("alert socket: %s", e)
                await asyncio.sleep(0.5)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------
class PatrolRun:
    """Starts every part, flies the patrol, scores it, stops every part (also on Ctrl-C)."""

    def __init__(self, config: PatrolConfig, state: PatrolState | None = None) -> None:
        self.cfg = config
        self.state = state or PatrolState()
        self.scenario = Scenario.load(config.scenario)
        if config.seed is not None:
            self.scenario = reseed(self.scenario, config.seed)
        self.tokens = {role: secrets.token_urlsafe(18) for role in ("dispatcher", "operator", "viewer")}
        self.incident_frames: dict[str, tuple[float, Any]] = {}  # external id -> (frame wall time, incident)
        self.server: DispatchServer | None = None
        self.vehicles: list[Any] = []
        self.feed: CameraFeed | None = None
        self.reporter: Any = None
        self.stage: Any = None
        self.plan: Any = None
        self.grids: list[Any] = []
        self.worker_url_token: tuple[str, str] | None = None

    # -- planning ----------------------------------------------------------------------
    def make_plan(self) -> Any:
        from geo.camera import get_camera
        from geo.grids import load_grids, load_no_fly
        from geo.planner import PlanningWarning, plan_patrol

        sc = self.scenario
        grids = load_grids(sc.path(sc.grids_file), crs=sc.grids_crs)
        wanted = self.cfg.grid_ids or sc.grid_ids
        if wanted:
            known = {g.id for g in grids}
            missing = [g for g in wanted if g not in known]
            if missing:
                raise ValueError(f"{self.cfg.scenario}: grid_ids {missing} not in {sc.grids_file}")
            grids = [g for g in grids if g.id in set(wanted)]
        no_fly = load_no_fly(sc.path(sc.no_fly_file), crs=sc.grids_crs) if sc.no_fly_file else []
        self.grids = grids
        with warnings.catch_warnings():  # kept in plan.warnings and shown in the live display instead
            warnings.simplefilter("ignore", PlanningWarning)
            self.plan = plan_patrol(
                grids, home=(sc.home_lat, sc.home_lon, sc.ground_alt_m), camera=get_camera(sc.camera),
                altitude_m=sc.altitude_m, speed_m_s=sc.speed_m_s, drones=self.cfg.drones or sc.drones, no_fly=no_fly,
                **({"endurance_s": sc.endurance_min * 60.0} if sc.endurance_min else {}),
            )
        for w in getattr(self.plan, "warnings", None) or []:
            self.state.events.append(f"规划提示：{w}")
        self.cfg.work_dir.mkdir(parents=True, exist_ok=True)
        self.plan.save(self.cfg.work_dir / "plan.json")
        return self.plan

    # -- parts -------------------------------------------------------------------------
    def start_server(self) -> None:
        from dispatch.core.config import Settings

        sc = self.scenario
        port = self.cfg.port or free_port()
        if not _port_free(port):
            raise RuntimeError(f"port {port} on {self.cfg.host} is in use: stop the other server or pass --port")
        db = self.cfg.work_dir / "skygrid.db"
        routing = sc.path("routing.yaml")
        settings = Settings(
            database_url=f"sqlite:///{db}",
            evidence_dir=str(self.cfg.work_dir / "evidence"),
            grids_file=str(sc.path(sc.grids_file)),
            grids_crs=sc.grids_crs,
            **({"routing_file": str(routing)} if routing.exists() else {}),
            bootstrap_tokens={**{tok: {"role": role, "name": f"demo-{role}"} for role, tok in self.tokens.items()},
                              **self._worker_tokens()},
        )
        self.server = DispatchServer(settings, self.cfg.host, port)
        self.server.start()
        self.state.urls = {
            "command_room": self.login_link(self.tokens["dispatcher"], "/"),
            "operator": self.login_link(self.tokens["operator"], "/operator"),
            "api_docs": f"{self.server.url}/docs",
        }
        if self.worker_url_token:
            name, tok = self.worker_url_token
            self.state.urls[f"grid_worker ({name})"] = self.login_link(tok, "/worker")

    def login_link(self, token: str, page: str) -> str:
        """A one-time login link for ``page`` (the printed URLs carry no token: opening one
        sets an HttpOnly session cookie and lands on the clean page URL)."""
        from urllib.parse import urlencode

        from dispatch.core.db import write_transaction
        from dispatch.core.security import login_code_for

        with write_transaction(self.server.app.state.sessionmaker) as s:
            code = login_code_for(s, token)
        return f"{self.server.url}/login?{urlencode({'code': code, 'next': page})}"

    def _worker_tokens(self) -> dict[str, dict]:
        """One token per patrolled grid's worker (scoped to that grid), for the worker page."""
        tokens = {}
        first_incident = self.scenario.incidents[0] if self.scenario.incidents else None
        for g in self.grids:
            name = g.properties.get("grid_worker")
            if not name:
                continue
            tok = secrets.token_urlsafe(18)
            tokens[tok] = {"role": "grid_worker", "name": name, "grid_ids": [g.id]}
            if first_incident and g.polygon.contains(_pt(first_incident.lon, first_incident.lat)):
                self.worker_url_token = (f"{name}, {g.id}", tok)
        return tokens

    def upload_plan(self) -> None:
        import httpx

        r = httpx.put(f"{self.server.url}/api/v1/plan", json=self.plan.to_dict(),
                      headers={"Authorization": f"Bearer {self.tokens['operator']}"}, timeout=30)
        if r.status_code >= 400:
            log.warning("plan upload refused: %s %s", r.status_code, r.text[:200])

    def start_vehicles(self) -> list[str]:
        from simulators.vehicle import SimVehicle, VehicleConfig

        sc = self.scenario
        urls = []
        for i in range(self.plan.drones):
            gcs = self.cfg.base_udp_port + i if self.cfg.base_udp_port else free_port(socket.SOCK_DGRAM)
            if not _port_free(gcs, socket.SOCK_DGRAM):
                gcs = free_port(socket.SOCK_DGRAM)
            listen = free_port(socket.SOCK_DGRAM)
            v = SimVehicle(VehicleConfig(instance=i, home_lat=sc.home_lat, home_lon=sc.home_lon,
                                         home_alt_amsl=sc.ground_alt_m, speed_factor=self.cfg.speed,
                                         gcs_port=gcs, listen_port=listen))
            v.start()
            self.vehicles.append(v)
            urls.append(f"udpin://0.0.0.0:{gcs}")
        return urls

    def start_vision(self) -> None:
        from geo.camera import get_camera
        from simulators.camera import World
        from vision.detector import OnnxDetector, operating_point
        from vision.pipeline import VisionStage
        from vision.reporter import DispatchClient
        from vision.tracker import IncidentTracker

        sc = self.scenario
        camera = get_camera(sc.camera).scaled(self.cfg.stream_width_px)
        world = World.from_scenario(sc)
        detector = OnnxDetector(self.cfg.model, threads=1, **operating_point(self.cfg.model))
        stage = VisionStage(detector, IncidentTracker(patrol_id=f"{sc.name}-{uuid.uuid4().hex}"), camera)
        self.reporter = DispatchClient(self.server.url, self.tokens["operator"])

        self.stage = stage
        self.feed = CameraFeed(world=world, stage=stage, camera=camera, ground_alt_m=sc.ground_alt_m,
                               survey_alt_m=self.plan.altitude_m, frame_spacing_m=self.cfg.frame_spacing_m,
                               state=self.state, on_incident=self._on_incident, threads=self.cfg.vision_threads,
                               max_queued=self.cfg.max_queued_frames)

    def _on_incident(self, incident: Any, frame_wall: float) -> None:
        """A new or updated incident: remember when its first confirming frame was taken, report it."""
        self.incident_frames.setdefault(incident.id, (frame_wall, incident))
        self.state.incidents = len(self.incident_frames)
        self.reporter.submit(incident)

    # -- run ---------------------------------------------------------------------------
    async def run(self, keep_server: bool = False) -> dict[str, Any]:
        """Fly the patrol and return the summary; ``keep_server`` leaves the command room up."""
        from flight.executor import FlightConfig
        from flight.fleet import Fleet
        from flight.reporting import DispatchReporter

        watcher = None
        try:
            self.state.phase = "planning"
            self.make_plan()
            self.state.phase = "starting dispatch"
            self.start_server()
            self.upload_plan()
            watcher = AlertWatcher(self.server.url.replace("http", "ws", 1) + "/api/v1/live/ws", self.tokens["viewer"],
                                   on_count=lambda n: setattr(self.state, "alerts", n))
            watcher.start()
            self.state.phase = "starting vision"
            self.start_vision()
            self.state.phase = "starting drones"
            connections = self.start_vehicles()
            reporter = DispatchReporter(self.server.url, self.tokens["operator"])
            # poses often enough that frames can be spaced by distance: >= 2 records per simulated second
            flight_cfg = FlightConfig(telemetry_hz=min(25.0, max(5.0, 2.0 * self.cfg.speed)))
            fleet = Fleet(self.plan, connections, listeners=[self.feed, reporter], log_dir=self.cfg.work_dir / "flightlogs",
                          config=flight_cfg, battery_swap=self._swap_battery)
            self.state.phase = "flying"
            t0 = time.monotonic()
            sim0 = self._sim_time()
            pacer = asyncio.get_running_loop().create_task(self._pace())
            try:
                fleet_result = await asyncio.wait_for(fleet.run(), timeout=self.cfg.timeout_s)
            finally:
                pacer.cancel()
            wall = time.monotonic() - t0
            sim = self._sim_time() - sim0
            self.state.phase = "finishing"
            await asyncio.to_thread(self.feed.drain)
            for incident in self.stage.finish():  # last sightings: final position, frames seen, evidence
                self._on_incident(incident, time.time())
            if hasattr(self.reporter, "flush"):
                await asyncio.to_thread(self.reporter.flush)
            await self._await_alerts(watcher)
            if hasattr(reporter, "aclose"):
                await reporter.aclose()
            summary = self.summarise(watcher, sim_s=sim, wall_s=wall, fleet_result=fleet_result)
            (self.cfg.work_dir / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
            self.state.phase = "done"
            return summary
        finally:
            if watcher:
                await watcher.stop()
            self.stop_parts(keep_server=keep_server and self.state.phase == "done")

    async def _await_alerts(self, watcher: AlertWatcher, poll_s: float = 0.1) -> None:
        """Wait until every reported incident's ticket alert has arrived on the live socket, or
        ``settle_s`` wall seconds passed (a guard for an alert that never comes: the summary's
        ``incidents_alerted`` then falls short of ``incidents_reported``). Event-driven, so a
        slow machine waits longer instead of scoring alerts as missing."""
        deadline = time.monotonic() + self.cfg.settle_s
        while time.monotonic() < deadline:
            if all(alert_arrivals(incident, watcher.created) for _, incident in list(self.incident_frames.values())):
                return
            await asyncio.sleep(poll_s)

    async def _pace(self, every_s: float = 0.2) -> None:
        """Slow the simulated clock while vision lags, so a busy CPU costs wall time, not frames.

        At ``speed`` x the stream asks vision for ~``speed * speed_m_s / frame_spacing_m``
        frames per wall second (about 7 at 10x); a loaded 2-core CI machine cannot always
        give that, and a real drone at 1x never asks it. So while more than a quarter of the
        frame queue is waiting, every vehicle's time factor is cut by 30 % (down to 1x,
        real time); when the queue is nearly empty it climbs back by 15 % per step to
        ``speed``. The summary's ``speedup`` reports what was achieved.
        """
        target = self.cfg.speed
        factor = target
        while True:
            await asyncio.sleep(every_s)
            backlog = self.feed.backlog() if self.feed else 0
            if backlog > self.cfg.max_queued_frames // 4:
                new = max(1.0, factor * 0.7)
            elif backlog <= 1:
                new = min(target, factor * 1.15)
            else:
                continue
            if new != factor:
                factor = new
                self.state.sim_speed = factor
                for v in self.vehicles:
                    v.config.speed_factor = factor

    def _swap_battery(self, drone_id: str) -> None:
        """Between sorties the ground crew swaps the pack: the simulated battery is refilled."""
        self.vehicles[int(drone_id[1:])].faults.low_battery(100.0)

    def _sim_time(self) -> float:
        """Simulated seconds elapsed on the slowest-moving clock of the running vehicles."""
        return max((v.sim_time_s for v in self.vehicles), default=0.0)

    def stop_parts(self, keep_server: bool = False) -> None:
        if self.feed:
            self.feed.close()
        if self.reporter and hasattr(self.reporter, "close"):
            self.reporter.close()
        for v in self.vehicles:
            try:
                v.stop()
            except Exception:
                log.exception("stopping vehicle")
        self.vehicles = []
        if self.server and not keep_server:
            self.server.stop()

    # -- scoring -----------------------------------------------------------------------
    def fetch_tickets(self) -> list[dict]:
        import httpx

        r = httpx.get(f"{self.server.url}/api/v1/tickets", params={"limit": 1000},
                      headers={"Authorization": f"Bearer {self.tokens['dispatcher']}"}, timeout=30)
        r.raise_for_status()
        body = r.json()
        return body["items"] if isinstance(body, dict) and "items" in body else body

    def summarise(self, watcher: AlertWatcher | None, *, sim_s: float, wall_s: float, fleet_result: Any) -> dict[str, Any]:
        return score_patrol(
            scenario=self.scenario, plan=self.plan, grids=self.grids, tickets=self.fetch_tickets(),
            footprints=self.feed.footprints if self.feed else [],
            incident_frames=self.incident_frames, alerts=watcher.created if watcher else {},
            sim_s=sim_s, wall_s=wall_s, state=self.state,
        )


def score_patrol(*, scenario: Scenario, plan: Any, grids: list[Any], tickets: list[dict], footprints: list[Any],
                 incident_frames: dict[str, tuple[float, Any]], alerts: dict[Any, tuple[float, dict]],
                 sim_s: float, wall_s: float, state: PatrolState, match_radius_m: float = 25.0) -> dict[str, Any]:
    """Score a patrol against ground truth. Distances in metres, times in seconds.

    A planted incident is *found* when a ticket of its class lies within ``match_radius_m``;
    a ticket that matches no planted incident is a *false ticket*. A grid is *covered* when
    the union of analysed frame footprints images >= 99.5 % of it.
    """
    planted = [o for o in scenario.incidents if any(g.polygon.contains(_pt(o.lon, o.lat)) for g in grids)]
    matched: dict[str, dict] = {}
    errors = []
    false_tickets = 0
    per_ticket = []
    for t in tickets:
        best, best_d = None, math.inf
        for o in planted:
            if o.kind != t.get("class_name"):
                continue
            d = _dist_m((o.lat, o.lon), (t["lat"], t["lon"]))
            if d < best_d:
                best, best_d = o, d
        ok = best is not None and best_d <= match_radius_m
        per_ticket.append({"ticket": t.get("id"), "class_name": t.get("class_name"), "matched": best.id if ok else None,
                           "error_m": round(best_d, 2) if ok else None})
        if ok:
            matched.setdefault(best.id, t)
            errors.append(best_d)
        else:
            false_tickets += 1
    covered, ratios, areas = _coverage(grids, footprints, plan)
    total_area = sum(areas)
    coverage = sum(r * a for r, a in zip(ratios, areas, strict=True)) / total_area if total_area else 0.0
    latencies = []
    for _ext_id, (frame_wall, incident) in incident_frames.items():
        arrivals = alert_arrivals(incident, alerts)
        if arrivals:
            latencies.append(max(0.0, min(arrivals) - frame_wall))
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None
    return {
        "scenario": scenario.name,
        "grids_planned": len(plan.grids),
        "grids_covered": covered,
        "coverage_ratio": round(coverage, 4),
        "coverage_per_grid": {g.id: round(r, 5) for g, r in zip(grids, ratios, strict=True)},
        "incidents_planted": len(planted),
        "incidents_found": len(matched),
        "tickets": len(tickets),
        "false_tickets": false_tickets,
        "max_position_error_m": round(max(errors), 2) if errors else None,
        "frame_to_alert_p95_s": round(p95, 3) if p95 is not None else None,
        "incidents_reported": len(incident_frames),  # incidents vision posted to dispatch
        "incidents_alerted": len(latencies),  # of which a ticket alert arrived on the live socket
        "speedup": round(sim_s / wall_s, 2) if wall_s > 0 else None,
        "sim_time_s": round(sim_s, 1),
        "wall_time_s": round(wall_s, 1),
        "frames_requested": state.frames_requested,
        "key_frames": state.key_frames,
        "frames_analysed": state.frames_rendered,
        "frames_dropped": state.frames_dropped,
        "sorties": len(plan.sorties),
        "plan_warnings": list(getattr(plan, "warnings", None) or []),
        "drones": plan.drones,
        "tickets_detail": per_ticket,
    }


def alert_arrivals(incident: Any, alerts: dict[Any, tuple[float, dict]], radius_m: float = 50.0) -> list[float]:
    """Arrival wall times (UNIX s) of the live ticket alerts for ``incident``: same class,
    within ``radius_m`` metres of its first reported position."""
    return [tw for tw, data in list(alerts.values())
            if data.get("class_name") == incident.class_name
            and _dist_m((data.get("lat", 0), data.get("lon", 0)), (incident.lat, incident.lon)) < radius_m]


def _coverage(grids: list[Any], footprints: list[Any], plan: Any) -> tuple[int, list[float], list[float]]:
    """Per grid: imaged fraction of its flyable area (grid minus buffered no-fly zones).

    Computed in a local metric frame; returns (grids >= 99.5 % imaged, ratios, areas m²).
    """
    import numpy as np
    import shapely
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    from geo.projection import LocalFrame

    frame = LocalFrame(plan.home.lat, plan.home.lon)

    def local(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(frame.to_local(xy[:, 0], xy[:, 1])))

    zones = [local(Polygon(z.rings[0], z.rings[1:])).buffer(z.buffer_m) for z in plan.no_fly]
    forbidden = unary_union(zones) if zones else None
    imaged = unary_union([local(f) for f in footprints]) if footprints else None
    ratios, areas = [], []
    for g in grids:
        flyable = local(g.polygon)
        if forbidden is not None:
            flyable = flyable.difference(forbidden)
        areas.append(flyable.area)
        ratios.append(imaged.intersection(flyable).area / flyable.area if imaged is not None and flyable.area else 0.0)
    return sum(r >= 0.995 for r in ratios), ratios, areas


def _pt(lon: float, lat: float) -> Any:
    from shapely.geometry import Point

    return Point(lon, lat)
