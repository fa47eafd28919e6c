/* Command room: map (grids, planned routes, drone tracks, incidents) + live ticket list + ticket panel. */
"use strict";
(function () {
  const S = {
    tickets: new Map(), markers: new Map(), drones: new Map(), selected: null, workflow: null,
    departments: {}, me: null, errorCircle: null, fitted: false, p0seen: new Set(),
  };
  window.SGROOM = S; // for tests and debugging
  const $ = (id) => document.getElementById(id);
  const DRONE_COLORS = ["#0077ff", "#00a86b", "#c2185b", "#ff8f00", "#6a1b9a", "#00838f"];
  const droneColor = (id) => DRONE_COLORS[(parseInt(String(id).replace(/\D/g, ""), 10) || 0) % DRONE_COLORS.length];

  function toast(msg, ms) {
    const t = $("toast"); t.textContent = msg; t.style.display = "block";
    clearTimeout(toast._t); toast._t = setTimeout(() => { t.style.display = "none"; }, ms || 3500);
  }

  // ---------- map ----------
  let map, layers;
  function initMap(cfg) {
    SG.displayCrs = cfg.display_crs || "wgs84";
    map = L.map("map", { zoomControl: true, preferCanvas: false, attributionControl: !!cfg.tile_url });
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.tile_attribution || "" }).addTo(map);
    } else {
      $("map").classList.add("no-tiles");
    }
    layers = {
      grids: L.layerGroup().addTo(map), routes: L.layerGroup().addTo(map),
      tracks: L.layerGroup().addTo(map), incidents: L.layerGroup().addTo(map), drones: L.layerGroup().addTo(map),
    };
    map.setView([30.1, 120.3], 12);
    const legend = L.control({ position: "bottomleft" });
    legend.onAdd = () => {
      const d = L.DomUtil.create("div", "legend");
      d.innerHTML = Object.keys(SG.CLASS).map((k) => `<div><i style="background:${SG.CLASS[k].color}"></i>${SG.CLASS[k].label}</div>`).join("") +
        '<div><i style="background:#fff;border:2px solid #0077ff"></i>无人机 / 航线</div>' +
        `<div>坐标系：${{ wgs84: "WGS-84", gcj02: "GCJ-02（高德）", bd09: "BD-09（百度）" }[SG.displayCrs] || SG.displayCrs}</div>`;
      return d;
    };
    legend.addTo(map);
    L.control.layers(null, { "网格": layers.grids, "规划航线": layers.routes, "无人机轨迹": layers.tracks, "事件": layers.incidents }, { collapsed: true }).addTo(map);
  }
  const ring = (r) => r.map((p) => SG.ll(p[1], p[0]));

  function drawGrids(features) {
    layers.grids.clearLayers();
    const all = [];
    for (const f of features) {
      const g = f.geometry; if (!g) continue;
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const rings of polys) {
        const latlngs = rings.map(ring);
        all.push(...latlngs[0]);
        const p = L.polygon(latlngs, { color: "#2b4a6b", weight: 1.2, fillColor: "#7fa7d1", fillOpacity: 0.08 });
        const props = f.properties || {};
        p.bindTooltip(`${SG.esc(props.name || f.id)}<br>${SG.esc(props.township || "")}${SG.esc(props.village || "")}`, { sticky: true });
        p.addTo(layers.grids);
      }
    }
    if (!S.fitted && all.length) { map.invalidateSize(false); map.fitBounds(L.latLngBounds(all), { padding: [20, 20], animate: false }); S.fitted = true; }
  }

  function drawPlan(plan) {
    layers.routes.clearLayers();
    if (!plan) return;
    const planned = [];
    for (const g of plan.grids || []) {  // the grids this plan covers, outlined over the county's grids
      const latlngs = g.rings.map(ring);
      planned.push(...latlngs[0]);
      L.polygon(latlngs, { color: "#1f6feb", weight: 2.2, fill: false, className: "planned-grid" })
        .bindTooltip(`计划网格 ${SG.esc(g.name || g.id)}`, { sticky: true }).addTo(layers.routes);
    }
    if (!S.fitted && planned.length) { map.invalidateSize(false); map.fitBounds(L.latLngBounds(planned), { padding: [20, 20], animate: false }); S.fitted = true; }
    for (const s of plan.sorties || []) {
      const pts = (s.waypoints || []).map((w) => SG.ll(w.lat, w.lon));
      if (pts.length < 2) continue;
      L.polyline(pts, { color: droneColor("d" + s.drone), weight: 1.5, opacity: 0.55, dashArray: "4 4" })
        .bindTooltip(`架次 ${SG.esc(s.id)} · 无人机 d${s.drone} · ${(s.distance_m / 1000).toFixed(1)} km`, { sticky: true })
        .addTo(layers.routes);
    }
    for (const z of plan.no_fly || []) {
      L.polygon(z.rings.map(ring), { color: "#d62828", weight: 1, fillOpacity: 0.12, dashArray: "3 3" })
        .bindTooltip("禁飞区 " + SG.esc(z.name)).addTo(layers.routes);
    }
    if (plan.home) {
      L.circleMarker(SG.ll(plan.home.lat, plan.home.lon), { radius: 6, color: "#000", fillColor: "#fff", fillOpacity: 1 })
        .bindTooltip("起降点").addTo(layers.routes);
    }
  }

  // ---------- drones ----------
  function droneUpdate(id, tel, track) {
    let d = S.drones.get(id);
    if (!d) {
      const color = droneColor(id);
      d = { track: L.polyline([], { color, weight: 2.5 }).addTo(layers.tracks),
        marker: L.circleMarker([0, 0], { radius: 7, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1 }) };
      S.drones.set(id, d);
    }
    if (track) d.track.setLatLngs(track.map((p) => SG.ll(p[0], p[1])));
    if (tel) {
      const ll = SG.ll(tel.lat, tel.lon);
      if (!track) { d.track.addLatLng(ll); const pts = d.track.getLatLngs(); if (pts.length > 600) d.track.setLatLngs(pts.slice(-600)); }
      d.marker.setLatLng(ll);
      if (!layers.drones.hasLayer(d.marker)) d.marker.addTo(layers.drones);
      d.marker.bindTooltip(`无人机 ${SG.esc(id)} · ${SG.esc(tel.flight_mode)} · 电量 ${Math.round(tel.battery_pct)}% · 高度 ${Math.round(tel.rel_alt_m)} m`);
      d.tel = tel;
    }
  }

  // ---------- tickets ----------
  function upsertTicket(t, isNew) {
    const prev = S.tickets.get(t.id);
    if (prev && prev.updated_at && t.updated_at && prev.updated_at > t.updated_at) return;
    S.tickets.set(t.id, t);
    let m = S.markers.get(t.id);
    const ll = SG.ll(t.lat, t.lon);
    const style = { radius: t.priority === 0 ? 10 : 8, color: "#fff", weight: 2, fillColor: SG.classColor(t.class_name),
      fillOpacity: SG.OPEN(t) ? 0.95 : 0.35, className: "incident-marker incident-" + t.class_name };
    if (!m) {
      m = L.circleMarker(ll, style).addTo(layers.incidents);
      m.on("click", () => select(t.id));
      S.markers.set(t.id, m);
    } else { m.setLatLng(ll); m.setStyle(style); }
    m.bindTooltip(`#${t.id} ${SG.esc(SG.classLabel(t))} · ${SG.esc(t.status_label || t.status)}`);
    if (isNew && t.priority === 0 && SG.OPEN(t) && !S.p0seen.has(t.id)) p0Alert(t);
    renderList();
    if (S.selected === t.id) renderPanel();
  }

  function p0Alert(t) {
    S.p0seen.add(t.id);
    const a = $("p0-alert");
    a.innerHTML = `⚠ P0 紧急警报：${SG.esc(SG.classLabel(t))} · ${SG.esc(t.grid_name || t.grid_id)} · 工单 #${t.id}（点击查看）`;
    a.dataset.ticket = t.id;
    a.classList.add("on"); document.body.classList.add("p0-flash");
    SG.beep(4);
    a.onclick = () => { a.classList.remove("on"); document.body.classList.remove("p0-flash"); select(t.id); };
    map.setView(SG.ll(t.lat, t.lon), Math.max(map.getZoom(), 15));
  }

  function sortedTickets() {
    return [...S.tickets.values()].filter(SG.OPEN).sort((a, b) =>
      (b.overdue - a.overdue) || (a.priority - b.priority) || (b.created_at || "").localeCompare(a.created_at || ""));
  }

  function renderList() {
    const now = Date.now();
    const list = sortedTickets();
    $("ticket-count").textContent = `${list.length} 件在办`;
    const overdue = list.filter((t) => SG.sla(t, now).overdue).length;
    $("counts").textContent = `在办 ${list.length} · 超时 ${overdue} · 无人机 ${S.drones.size}`;
    $("tickets").innerHTML = list.map((t) => {
      const s = SG.sla(t, now);
      const pr = t.priority_label || "P" + t.priority;
      return `<li data-id="${t.id}" class="${s.overdue ? "overdue" : ""} ${S.selected === t.id ? "selected" : ""}">
        <span class="dot" style="background:${SG.classColor(t.class_name)}"></span>
        <span><b>#${t.id}</b> ${SG.esc(SG.classLabel(t))}<span class="badge ${"p" + t.priority}">${SG.esc(pr)}</span>${s.overdue ? '<span class="badge overdue">超时督办</span>' : ""}</span>
        <span class="sla" data-sla="${t.id}">${SG.esc(s.text)}</span>
        <span class="sub">${SG.esc(t.grid_name || t.grid_id)} · ${SG.esc(t.status_label || t.status)} · ${SG.esc(SG.TIER[t.tier] || t.tier)} · ${SG.time(t.created_at)}</span></li>`;
    }).join("");
  }
  $("tickets").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-id]"); if (li) select(Number(li.dataset.id));
  });

  function tick() {
    const now = Date.now();
    $("clock").textContent = new Date(now).toLocaleTimeString("zh-CN", { hour12: false });
    for (const el of document.querySelectorAll("[data-sla]")) {
      const t = S.tickets.get(Number(el.dataset.sla)); if (!t) continue;
      const s = SG.sla(t, now); el.textContent = s.text;
      const li = el.closest("li"); if (li) li.classList.toggle("overdue", s.overdue);
    }
  }

  async function select(id) {
    S.selected = id;
    renderList(); renderPanel();
    const t = S.tickets.get(id);
    if (t) map.panTo(SG.ll(t.lat, t.lon));
    try { const full = await SG.api(`/api/v1/tickets/${id}`); S.detail = full; upsertTicket(full); renderPanel(); } catch (e) { /* keep the summary */ }
  }

  function deptName(id) { return S.departments[id] || id; }

  function renderPanel() {
    const t = S.tickets.get(S.selected);
    const p = $("panel");
    if (S.errorCircle) { S.errorCircle.remove(); S.errorCircle = null; }
    if (!t) { p.innerHTML = '<p class="empty">点击地图或列表中的工单查看详情</p>'; return; }
    S.errorCircle = L.circle(SG.ll(t.lat, t.lon), { radius: Math.max(t.error_m || 0, 1), color: SG.classColor(t.class_name), weight: 1, fillOpacity: 0.1 }).addTo(map);
    const disp = SG.ll(t.lat, t.lon);
    const s = SG.sla(t, Date.now());
    const actions = (t.allowed_actions || []).filter((a) => !S.workflow || !S.me || (S.workflow[a] && S.workflow[a].roles.includes(S.me.role)));
    const img = t.evidence_url ? `<img class="evidence" alt="取证图像" src="${SG.esc(t.evidence_url)}?token=${encodeURIComponent(SG.token() || "")}">` : '<p class="empty">无取证图像</p>';
    const detail = S.detail && S.detail.id === t.id ? S.detail : null;
    const history = detail ? `<h4>流转记录</h4><ul class="checklist">${detail.events.slice(-8).map((e) =>
      `<li>${SG.time(e.at)} ${SG.esc(e.actor || "")} ${SG.esc(e.action || e.kind)}${e.comment ? "：" + SG.esc(e.comment) : ""}</li>`).join("")}</ul>` : "";
    p.innerHTML = `<h3 style="margin:0 0 6px">#${t.id} ${SG.esc(SG.classLabel(t))} <span class="badge p${t.priority}">${SG.esc(t.priority_label || "P" + t.priority)}</span></h3>
      ${img}
      <dl>
        <dt>状态</dt><dd id="panel-status">${SG.esc(t.status_label || t.status)}（${SG.esc(t.status)}）</dd>
        <dt>时限</dt><dd class="${s.overdue ? "msg-error" : ""}">${SG.esc(s.text)}${t.escalations ? ` · 已升级 ${t.escalations} 次` : ""}</dd>
        <dt>层级</dt><dd>${SG.esc(SG.TIER[t.tier] || t.tier)}</dd>
        <dt>网格</dt><dd>${SG.esc(t.grid_name || "")}（${SG.esc(t.grid_id)}）</dd>
        <dt>网格员</dt><dd>${SG.esc((t.worker && t.worker.name) || "—")} ${SG.esc((t.worker && t.worker.phone) || "")}</dd>
        <dt>位置</dt><dd>WGS-84 ${t.lat.toFixed(6)}, ${t.lon.toFixed(6)}${SG.displayCrs !== "wgs84" ? `<br>${{ gcj02: "GCJ-02", bd09: "BD-09" }[SG.displayCrs] || SG.displayCrs} ${disp[0].toFixed(6)}, ${disp[1].toFixed(6)}` : ""}<br>误差圈 ±${(t.error_m || 0).toFixed(1)} m</dd>
        <dt>发现</dt><dd>${t.incident_count} 次 · 置信度 ${(t.max_confidence || 0).toFixed(2)} · ${SG.time(t.first_seen_at)}</dd>
        <dt>牵头</dt><dd>${SG.esc(deptName(t.lead_department))}</dd>
        <dt>协同</dt><dd>${(t.co_departments || []).map((d) => SG.esc(deptName(d))).join("、") || "—"}</dd>
      </dl>
      <h4 style="margin:6px 0 2px">联合检查清单</h4>
      <ul class="checklist">${(t.checklist || []).map((c) => `<li>${SG.esc(c.text || c.id)}${c.departments ? ` <small>(${c.departments.map(deptName).map(SG.esc).join("、")})</small>` : ""}</li>`).join("")}</ul>
      <div class="actions">${actions.map((a) => `<button type="button" data-action="${SG.esc(a)}" class="${a === "reject" || a === "mark_duplicate" ? "" : "primary"}">${SG.esc((S.workflow && S.workflow[a] && S.workflow[a].label) || a)}</button>`).join("")}</div>
      <p class="msg-error" id="panel-error"></p>${history}`;
    for (const b of p.querySelectorAll("button[data-action]")) b.onclick = () => act(t.id, b.dataset.action, b);
  }

  async function act(id, action, btn) {
    let comment = null;
    if (["reject", "send_back", "mark_duplicate"].includes(action)) {
      comment = window.prompt("请填写原因"); if (comment === null) return;
    }
    btn.disabled = true;
    try {
      const t = await SG.api(`/api/v1/tickets/${id}/actions`, { method: "POST", body: { action, comment }, retries: 1 });
      upsertTicket(t); toast("已提交：" + btn.textContent);
    } catch (e) {
      const el = $("panel-error"); if (el) el.textContent = e.message;
      btn.disabled = false;
    }
  }

  // ---------- live ----------
  function onEvent(ev) {
    if (ev.topic === "hello") {
      const drones = ev.data.drones || {};
      for (const id of Object.keys(drones)) droneUpdate(id, drones[id].telemetry, drones[id].track);
      return;
    }
    if (ev.topic === "resync") { loadTickets(); return; } // replay refused: reload the list
    if (ev.topic.startsWith("ticket.")) { upsertTicket(ev.data, ev.topic === "ticket.created"); return; }
    if (ev.topic === "drone.telemetry") { droneUpdate(ev.data.drone_id, ev.data, null); return; }
    if (ev.topic === "drone.event" && ["link_lost", "rtl", "failsafe"].includes(ev.data.kind)) toast(`无人机 ${ev.data.drone_id}：${ev.data.message || ev.data.kind}`);
    if (ev.topic === "plan.updated") loadPlan();
  }
  function liveStatus(s) {
    $("live-dot").className = "status-dot " + s;
    $("live-text").textContent = s === "live" ? "实时" : "重连中";
    if (s === "live") loadTickets(); // catch up after a gap (replay covers events, this covers the list)
  }

  async function loadPlan() {
    try { drawPlan(await SG.api("/api/v1/plan", { retries: 1 })); } catch (e) { /* no plan yet */ }
  }
  async function loadTickets() {
    try {
      const page = await SG.api("/api/v1/tickets?status=accepted,analyzing,routed,handling,supervising&limit=500");
      for (const t of page.items || []) upsertTicket(t, false);
    } catch (e) { toast("工单加载失败：" + e.message); }
  }

  async function main() {
    initMap(await SG.api("/api/v1/live/config"));
    await SG.ensureLogin();
    const [me, wf, depts, grids] = await Promise.all([
      SG.api("/api/v1/me"), SG.api("/api/v1/workflow").catch(() => null),
      SG.api("/api/v1/departments").catch(() => ({ items: [] })), SG.api("/api/v1/grids?format=geojson").catch(() => null)]);
    S.me = me;
    if (wf) { S.workflow = {}; for (const a of wf.actions) S.workflow[a.id] = a; }
    for (const d of depts.items || []) S.departments[d.id] = d.name;
    if (grids && grids.features) drawGrids(grids.features);
    await loadPlan();
    S.live = SG.live(onEvent, { onStatus: liveStatus });
    setInterval(tick, 1000); tick();
    document.body.dataset.ready = "1";
  }
  $("logout").onclick = SG.logout;
  main().catch((e) => { toast("启动失败：" + e.message, 10000); });
})();
