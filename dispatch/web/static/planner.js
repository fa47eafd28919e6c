/* 飞手规划: pick or upload grids, no-fly zones (file or drawn), camera/altitude/drones/home,
 * preview routes + footprints + sorties, save to the server, download JSON/QGC/KML/DJI KMZ.
 * DOM built with textContent only; no inline script or handlers. Planning runs on the server (geo/). */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const P = { grids: new Map(), checked: new Set(), zones: [], home: null, mode: null, draft: [], result: null };
  window.SGPLAN = P; // for tests and debugging
  const DRONE_COLORS = ["#0077ff", "#00a86b", "#c2185b", "#ff8f00", "#6a1b9a", "#00838f"];
  let map, layers;

  function toast(msg, ms) {
    const t = $("toast"); t.textContent = msg; t.style.display = "block";
    clearTimeout(toast._t); toast._t = setTimeout(() => { t.style.display = "none"; }, ms || 4000);
  }
  function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  const ring = (r) => r.map((p) => SG.ll(p[1], p[0]));
  const polysOf = (g) => (!g ? [] : g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : []);

  function initMap(cfg) {
    SG.displayCrs = cfg.display_crs || "wgs84";
    map = L.map("map", { zoomControl: true, attributionControl: !!cfg.tile_url });
    if (cfg.tile_url) L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.tile_attribution || "" }).addTo(map);
    else $("map").classList.add("no-tiles");
    layers = { grids: L.layerGroup().addTo(map), zones: L.layerGroup().addTo(map), foot: L.layerGroup().addTo(map),
      routes: L.layerGroup().addTo(map), home: L.layerGroup().addTo(map), draft: L.layerGroup().addTo(map) };
    map.setView([30.1, 120.3], 12);
    map.on("click", onMapClick);
  }

  // ---------- grids ----------
  function addGrids(fc, replace) {
    if (replace) { P.grids.clear(); P.checked.clear(); }
    for (const f of fc.features || []) {
      const id = String((f.properties || {}).id || f.id);
      P.grids.set(id, f); P.checked.add(id);
    }
    renderGridList(); drawInputs(true);
  }
  function renderGridList() {
    const ul = $("grid-list"); ul.replaceChildren();
    for (const [id, f] of P.grids) {
      const li = el("li"); const lab = el("label"); const cb = el("input");
      cb.type = "checkbox"; cb.checked = P.checked.has(id); cb.dataset.grid = id;
      cb.addEventListener("change", () => { if (cb.checked) P.checked.add(id); else P.checked.delete(id); drawInputs(false); });
      lab.append(cb, " " + id + " " + ((f.properties || {}).name || ""));
      li.append(lab); ul.append(li);
    }
  }
  function drawInputs(fit) {
    layers.grids.clearLayers(); layers.zones.clearLayers();
    const pts = [];
    for (const [id, f] of P.grids) {
      const on = P.checked.has(id);
      for (const rings of polysOf(f.geometry)) {
        const ll = rings.map(ring); pts.push(...ll[0]);
        L.polygon(ll, { color: on ? "#1f6feb" : "#8899aa", weight: on ? 2 : 1, fillOpacity: on ? 0.08 : 0.02, className: "plan-grid" })
          .bindTooltip(id + " " + ((f.properties || {}).name || ""), { sticky: true }).addTo(layers.grids);
      }
    }
    for (const z of P.zones) {
      for (const rings of polysOf(z.geometry)) {
        L.polygon(rings.map(ring), { color: "#d62828", weight: 1.5, fillOpacity: 0.18, dashArray: "3 3", className: "plan-nofly" })
          .bindTooltip("禁飞区 " + ((z.properties || {}).name || z.id)).addTo(layers.zones);
      }
    }
    if (fit && pts.length) { map.invalidateSize(false); map.fitBounds(L.latLngBounds(pts), { padding: [20, 20], animate: false }); }
  }
  async function readFile(input) {
    const f = input.files && input.files[0];
    if (!f) return null;
    const buf = new Uint8Array(await f.arrayBuffer());
    let bin = ""; for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    return { filename: f.name, data_b64: btoa(bin) };
  }
  async function upload(input, kind) {
    const file = await readFile(input);
    if (!file) return;
    const body = Object.assign(file, { kind, crs: $("grid-crs").value || null, skip_bad: $("skip-bad").checked });
    try {
      const res = await SG.api("/api/v1/planner/upload", { method: "POST", body, retries: 1 });
      showWarnings(res.warnings_zh || res.warnings || []);
      if (kind === "grid") { addGrids(res, true); toast(`已导入 ${res.features.length} 个网格（${res.crs}）`); }
      else { P.zones.push(...res.features); renderZones(); drawInputs(false); toast(`已导入 ${res.features.length} 个禁飞区`); }
    } catch (e) { toast("导入失败：" + e.message, 8000); }
    input.value = "";
  }

  // ---------- no-fly zones ----------
  function renderZones() {
    const ul = $("nofly-list"); ul.replaceChildren();
    P.zones.forEach((z, i) => {
      const li = el("li", `禁飞区 ${(z.properties || {}).name || z.id}（缓冲 ${(z.properties || {}).buffer_m || 0} 米） `);
      const b = el("button", "删除"); b.type = "button";
      b.addEventListener("click", () => { P.zones.splice(i, 1); renderZones(); drawInputs(false); });
      li.append(b); ul.append(li);
    });
  }
  function setMode(mode) {
    P.mode = mode;
    $("mode-hint").textContent = mode === "home" ? "点击地图设置起降点" : mode === "nofly" ? "依次点击地图画禁飞区边界，点“完成绘制”结束" : "";
    $("finish-nofly").disabled = mode !== "nofly";
  }
  function onMapClick(ev) {
    if (P.mode === "home") {
      P.home = { lat: ev.latlng.lat, lon: ev.latlng.lng, crs: SG.displayCrs };
      $("home-text").textContent = `${P.home.lat.toFixed(6)}, ${P.home.lon.toFixed(6)}（${SG.displayCrs}）`;
      layers.home.clearLayers();
      L.circleMarker(ev.latlng, { radius: 7, color: "#000", fillColor: "#ffd166", fillOpacity: 1, className: "plan-home" })
        .bindTooltip("起降点").addTo(layers.home);
      setMode(null);
    } else if (P.mode === "nofly") {
      P.draft.push([ev.latlng.lng, ev.latlng.lat]);
      layers.draft.clearLayers();
      L.polyline(P.draft.map((p) => [p[1], p[0]]), { color: "#d62828", dashArray: "4 4" }).addTo(layers.draft);
    }
  }
  async function finishZone() {
    if (P.draft.length < 3) { toast("禁飞区至少需要 3 个点"); return; }
    const n = P.zones.length + 1;
    const ring = P.draft.concat([P.draft[0]]);
    const fc = { type: "FeatureCollection", features: [{ type: "Feature",
      properties: { zone_id: "NFZ-M" + n, name: "手绘禁飞区 " + n, buffer_m: Number($("nofly-buffer").value) || 0 },
      geometry: { type: "Polygon", coordinates: [ring] } }] };
    // drawn in the map's datum: the server converts it to WGS-84 like any uploaded file
    const body = { filename: "drawn.geojson", data_b64: btoa(unescape(encodeURIComponent(JSON.stringify(fc)))),
      kind: "zone", crs: SG.displayCrs };
    try {
      const res = await SG.api("/api/v1/planner/upload", { method: "POST", body, retries: 1 });
      P.zones.push(...res.features);
    } catch (e) { toast("禁飞区无效：" + e.message, 8000); }
    P.draft = []; layers.draft.clearLayers(); setMode(null); renderZones(); drawInputs(false);
  }

  // ---------- plan, preview, save, download ----------
  function request() {
    const feats = [...P.grids].filter(([id]) => P.checked.has(id)).map(([, f]) => f);
    const v = Number($("alt-value").value);
    const body = { grids: { type: "FeatureCollection", features: feats },
      no_fly: P.zones.length ? { type: "FeatureCollection", features: P.zones } : null,
      camera: $("camera").value, drones: Number($("drones").value) || 1, speed_m_s: Number($("speed").value) || 10 };
    if ($("alt-mode").value === "gsd") body.gsd_cm = v; else body.altitude_m = v;
    if (P.home) { body.home = [P.home.lat, P.home.lon]; body.home_crs = P.home.crs; }
    return body;
  }
  function showWarnings(list) {
    const ul = $("warnings"); ul.replaceChildren();
    for (const w of list) ul.append(el("li", w));
  }
  function showSummary(s) {
    const box = $("summary"); box.replaceChildren();
    const rows = [["网格", `${s.grids} 个`], ["架次", `${s.sorties} 个 · ${s.drones} 架无人机`], ["总航程", `${s.km.toFixed(2)} km`],
      ["总飞行时间", `${s.minutes.toFixed(1)} 分钟`], ["最长单机", `${s.longest_drone_minutes.toFixed(1)} 分钟`],
      ["航高 / GSD", `${s.altitude_m} 米 · ${s.gsd_cm} 厘米/像素`]];
    for (const [k, v] of rows) { box.append(el("span", k), el("span", v)); }
    box.dataset.km = s.km; box.dataset.sorties = s.sorties;
  }
  function drawPreview(res) {
    layers.routes.clearLayers(); layers.foot.clearLayers();
    for (const f of res.preview.features) {
      const k = f.properties.kind;
      if (k === "route") {
        const c = DRONE_COLORS[f.properties.drone % DRONE_COLORS.length];
        L.polyline(f.geometry.coordinates.map((p) => SG.ll(p[1], p[0])), { color: c, weight: 2.5, className: "plan-route" })
          .bindTooltip(`架次 ${f.properties.sortie_id} · 无人机 d${f.properties.drone} · ${(f.properties.distance_m / 1000).toFixed(2)} km · ${(f.properties.duration_s / 60).toFixed(1)} 分钟`, { sticky: true })
          .addTo(layers.routes);
      } else if (k === "footprint") {
        L.polygon(ring(f.geometry.coordinates[0]), { color: "#ff8000", weight: 0.5, fillOpacity: 0.08, className: "plan-footprint" }).addTo(layers.foot);
      } else if (k === "home" && !P.home) {
        layers.home.clearLayers();
        const [lon, lat] = f.geometry.coordinates;
        L.circleMarker(SG.ll(lat, lon), { radius: 7, color: "#000", fillColor: "#fff", fillOpacity: 1, className: "plan-home" })
          .bindTooltip("起降点（默认）").addTo(layers.home);
      }
    }
  }
  async function preview() {
    if (!P.checked.size) { toast("请先选择网格"); return; }
    const btn = $("preview"); btn.disabled = true; btn.textContent = "规划中…";
    try {
      const res = await SG.api("/api/v1/planner/plan", { method: "POST", body: request(), retries: 1 });
      P.result = res;
      showSummary(res.summary); showWarnings(res.warnings_zh || res.warnings || []); drawPreview(res);
      $("save").disabled = false;
      for (const b of $("downloads").querySelectorAll("button")) b.disabled = false;
      document.body.dataset.planned = "1";
    } catch (e) { toast("规划失败：" + e.message, 10000); }
    btn.disabled = false; btn.textContent = "预览航线";
  }
  async function save() {
    if (!P.result) return;
    try {
      const r = await SG.api("/api/v1/plan", { method: "PUT", body: P.result.plan, retries: 1 });
      toast(`已保存：${r.grids} 个网格，${r.sorties} 个架次；指挥室已可见航线`);
      document.body.dataset.saved = "1";
    } catch (e) { toast("保存失败：" + e.message, 8000); }
  }
  async function download(fmt) {
    if (!P.result) return;
    const headers = SG.authHeaders ? SG.authHeaders() : (SG.token() ? { Authorization: "Bearer " + SG.token() } : {});
    headers["Content-Type"] = "application/json";
    try {
      const res = await fetch("/api/v1/planner/export/" + fmt, { method: "POST", headers, body: JSON.stringify(P.result.plan),
        credentials: "same-origin", cache: "no-store" });
      if (!res.ok) { let d = null; try { d = await res.json(); } catch (e) { /* not JSON */ } throw new Error(SGZ.errorText(d, res.status)); }
      const cd = res.headers.get("Content-Disposition") || "";
      const m = /filename\*=UTF-8''([^;]+)/.exec(cd);
      const name = m ? decodeURIComponent(m[1]) : "skygrid-plan";
      const url = URL.createObjectURL(await res.blob());
      const a = el("a"); a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { toast("导出失败：" + e.message, 8000); }
  }

  async function loadServerGrids() {
    try { addGrids(await SG.api("/api/v1/grids?format=geojson"), true); toast(`已载入服务器网格 ${P.grids.size} 个`); }
    catch (e) { toast("网格载入失败：" + e.message); }
  }

  function wire() {
    $("load-server").addEventListener("click", loadServerGrids);
    $("grid-file").addEventListener("change", () => upload($("grid-file"), "grid"));
    $("nofly-file").addEventListener("change", () => upload($("nofly-file"), "zone"));
    $("select-all").addEventListener("click", () => { for (const id of P.grids.keys()) P.checked.add(id); renderGridList(); drawInputs(false); });
    $("select-none").addEventListener("click", () => { P.checked.clear(); renderGridList(); drawInputs(false); });
    $("draw-nofly").addEventListener("click", () => { P.draft = []; setMode("nofly"); });
    $("finish-nofly").addEventListener("click", finishZone);
    $("pick-home").addEventListener("click", () => setMode("home"));
    $("preview").addEventListener("click", preview);
    $("save").addEventListener("click", save);
    for (const b of $("downloads").querySelectorAll("button")) b.addEventListener("click", () => download(b.dataset.fmt));
  }

  async function main() {
    initMap(await SG.api("/api/v1/live/config"));
    await SG.ensureLogin();
    wire();
    document.body.dataset.ready = "1";
  }
  main().catch((e) => { toast("启动失败：" + e.message, 10000); });
})();
