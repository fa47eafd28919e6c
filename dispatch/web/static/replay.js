/* Patrol replay: upload a past sortie's flight log, the server reads it (POST /api/v1/replay,
 * flight/flightlog.py) and the page replays the track over the grids: whole route faint, the
 * flown part bold, the drone labelled, a time slider, play at 1/10/60x, and the flight events
 * in Chinese (click one to jump to it). */
"use strict";
(function () {
  const Z = window.SGZ, el = Z.el;
  const $ = (id) => document.getElementById(id);
  const R = { data: null, i: 0, playing: false };
  window.SGREPLAY = R;
  let map, full, flown, drone, label;

  function initMap(cfg) {
    SG.displayCrs = cfg.display_crs || "wgs84";
    map = L.map("map", { attributionControl: !!cfg.tile_url });
    if (cfg.tile_url) L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.tile_attribution || "" }).addTo(map);
    else $("map").classList.add("no-tiles");
    map.setView([30.1, 120.3], 12);
  }
  function drawGrids(features) {
    for (const f of features) {
      const g = f.geometry; if (!g) continue;
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const rings of polys) {
        L.polygon(rings.map((r) => r.map((p) => SG.ll(p[1], p[0]))), { color: "#2b4a6b", weight: 1, fillOpacity: 0.06 })
          .bindTooltip(el("span", { text: (f.properties || {}).name || f.id }), { sticky: true }).addTo(map);
      }
    }
  }

  function show(i) {
    const d = R.data; if (!d) return;
    R.i = Math.max(0, Math.min(d.points.length - 1, i));
    const p = d.points[R.i];
    const ll = SG.ll(p[1], p[2]);
    flown.setLatLngs(d.points.slice(0, R.i + 1).map((q) => SG.ll(q[1], q[2])));
    drone.setLatLng(ll);
    label.textContent = `${d.drone_id} · ${Z.flightMode(p[6])}`;
    $("replay-slider").value = String(R.i);
    const kv = Z.clear($("replay-now"));
    const row = (k, v) => kv.append(el("span", { text: k }), el("b", { text: v }));
    row("时刻", `${Z.duration(p[0])} / ${Z.duration(d.duration_s)}`);
    row("绝对时间", Z.datetime(new Date((d.started_wall + p[0]) * 1000).toISOString()));
    row("相对高度", `${p[3]} 米`); row("地速", `${p[4]} 米/秒`); row("电量", `${Math.round(p[5])}%`);
    row("飞行模式", Z.flightMode(p[6]));
    if (p[7] !== null && p[7] !== undefined) row("航点", String(p[7]));
    for (const li of document.querySelectorAll("#replay-events li")) li.classList.toggle("past", Number(li.dataset.t) <= p[0]);
  }

  function load(d) {
    R.data = d; R.i = 0;
    if (full) { full.remove(); flown.remove(); drone.remove(); }
    const pts = d.points.map((q) => SG.ll(q[1], q[2]));
    full = L.polyline(pts, { color: "#1f6feb", weight: 2, opacity: 0.35, dashArray: "4 4" }).addTo(map);
    flown = L.polyline([], { color: "#0077ff", weight: 3.5 }).addTo(map);
    label = el("span", { text: d.drone_id });
    drone = L.circleMarker(pts[0], { radius: 8, color: "#fff", weight: 2, fillColor: "#0077ff", fillOpacity: 1 })
      .bindTooltip(label, { permanent: true, direction: "right", offset: [8, 0], className: "drone-label" }).addTo(map);
    map.fitBounds(full.getBounds(), { padding: [30, 30], animate: false });
    const s = $("replay-slider"); s.max = String(d.points.length - 1); s.disabled = false; $("replay-play").disabled = false;
    Z.clear($("replay-info")).append(el("p", { text: `无人机 ${d.drone_id} · 架次 ${d.sortie_id || "—"} · 时长 ${Z.duration(d.duration_s)} · 记录 ${d.poses_in_log} 条位置、${d.events.length} 个事件` }));
    const ul = Z.clear($("replay-events"));
    for (const e of d.events) {
      ul.appendChild(el("li", { dataset: { t: e.t_s }, text: `${Z.duration(e.t_s)} ${Z.flightEvent(e)}`, onclick: () => {
        let k = d.points.findIndex((q) => q[0] >= e.t_s); if (k < 0) k = d.points.length - 1; show(k);
      } }));
      if (e.lat !== null && e.lon !== null && ["rtl", "link_lost", "failsafe", "sortie_failed"].includes(e.kind)) {
        L.circleMarker(SG.ll(e.lat, e.lon), { radius: 5, color: "#d62828", fillOpacity: 0.8 }).bindTooltip(el("span", { text: Z.flightEvent(e) })).addTo(map);
      }
    }
    show(0);
  }

  function play() {
    const d = R.data; if (!d) return;
    R.playing = !R.playing;
    $("replay-play").textContent = R.playing ? "暂停" : "播放";
    let last = performance.now();
    let t = d.points[R.i][0];
    function step(now) {
      if (!R.playing) return;
      t += ((now - last) / 1000) * Number($("replay-speed").value); last = now;
      let k = R.i; while (k < d.points.length - 1 && d.points[k + 1][0] <= t) k++;
      show(k);
      if (k >= d.points.length - 1) { R.playing = false; $("replay-play").textContent = "播放"; return; }
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  }

  async function main() {
    initMap(await SG.api("/api/v1/live/config"));
    await SG.ensureLogin();
    const grids = await SG.api("/api/v1/grids?format=geojson").catch(() => null);
    if (grids && grids.features) drawGrids(grids.features);
    $("log-file").addEventListener("change", async (ev) => {
      const f = ev.target.files && ev.target.files[0]; if (!f) return;
      $("replay-error").textContent = "";
      const fd = new FormData(); fd.append("file", f, f.name);
      try { load(await SG.api("/api/v1/replay", { method: "POST", body: fd, retries: 1 })); }
      catch (e) { $("replay-error").textContent = "无法读取该飞行日志：" + e.message; }
    });
    $("replay-slider").addEventListener("input", (ev) => show(Number(ev.target.value)));
    $("replay-play").addEventListener("click", play);
    document.body.dataset.ready = "1";
  }
  main().catch((e) => { $("replay-error").textContent = "启动失败：" + e.message; });
})();
