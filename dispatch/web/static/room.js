/* Command room: map (grids, planned routes, labelled drones with full tracks, incidents), a
 * searchable worklist ordered by priority, the ticket panel (actions first, drone evidence
 * beside the worker's photos), 派单 / 考核 / 标记重复 dialogs, exports and the P0 alarm.
 * DOM is built with textContent only (no HTML strings); SGZ (office.js) holds the labels. */
"use strict";
(function () {
  const Z = window.SGZ;
  const el = Z.el;
  const S = {
    tickets: new Map(), markers: new Map(), drones: new Map(), selected: null, workflow: null, requires: {},
    departments: {}, deptList: [], workers: [], grids: [], me: null, errorCircle: null, fitted: false,
    p0seen: new Set(), p0ack: new Set(), detail: null, view: null, filter: { view: "open" },
    checked: new Set(),  // the bulk selection (ticket ids): print several sheets, export just these
  };
  window.SGROOM = S; // for tests and debugging
  const $ = (id) => document.getElementById(id);
  const OPEN_STATES = "accepted,analyzing,routed,handling,supervising";
  const CLOSED_STATES = "closed,rejected,duplicate";
  const TRACK_MAX = 20000; // points kept per drone (a full sortie at 1 Hz is a few thousand)
  const DRONE_COLORS = ["#0077ff", "#00a86b", "#c2185b", "#ff8f00", "#6a1b9a", "#00838f"];
  const droneColor = (id) => DRONE_COLORS[(parseInt(String(id).replace(/\D/g, ""), 10) || 0) % DRONE_COLORS.length];
  const tip = (text) => el("span", { text });  // Leaflet tooltips from DOM nodes, never HTML strings

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
      const crs = { wgs84: "WGS-84", gcj02: "GCJ-02（高德）", bd09: "BD-09（百度）" }[SG.displayCrs] || SG.displayCrs;
      return el("div", { class: "legend" },
        Object.keys(SG.CLASS).map((k) => el("div", {}, el("i", { style: { background: SG.CLASS[k].color } }), SG.CLASS[k].label)),
        el("div", {}, el("i", { style: { background: "#fff", border: "2px solid #0077ff" } }), "无人机 / 航线"),
        el("div", { text: "坐标系：" + crs }));
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
        p.bindTooltip(el("span", {}, props.name || f.id, el("br"), (props.township || "") + (props.village || "")), { sticky: true });
        p.addTo(layers.grids);
      }
    }
    if (!S.fitted && all.length) { map.invalidateSize(false); map.fitBounds(L.latLngBounds(all), { padding: [20, 20], animate: false }); S.fitted = true; }
  }

  function drawPlan(plan) {
    layers.routes.clearLayers();
    if (!plan) return;
    const planned = [];
    const partsOf = (x) => (x.parts && x.parts.length ? x.parts : [x.rings]);  // every part of a multi-part grid/zone
    for (const g of plan.grids || []) {  // the grids this plan covers, outlined over the county's grids
      for (const rings of partsOf(g)) {
        const latlngs = rings.map(ring);
        planned.push(...latlngs[0]);
        L.polygon(latlngs, { color: "#1f6feb", weight: 2.2, fill: false, className: "planned-grid" })
          .bindTooltip(tip(`计划网格 ${g.name || g.id}`), { sticky: true }).addTo(layers.routes);
      }
    }
    if (!S.fitted && planned.length) { map.invalidateSize(false); map.fitBounds(L.latLngBounds(planned), { padding: [20, 20], animate: false }); S.fitted = true; }
    for (const s of plan.sorties || []) {
      const pts = (s.waypoints || []).map((w) => SG.ll(w.lat, w.lon));
      if (pts.length < 2) continue;
      L.polyline(pts, { color: droneColor("d" + s.drone), weight: 1.5, opacity: 0.55, dashArray: "4 4" })
        .bindTooltip(tip(`架次 ${s.id} · 无人机 d${s.drone} · ${(s.distance_m / 1000).toFixed(1)} 公里`), { sticky: true })
        .addTo(layers.routes);
    }
    for (const z of plan.no_fly || []) {
      for (const rings of partsOf(z)) {
        L.polygon(rings.map(ring), { color: "#d62828", weight: 1, fillOpacity: 0.12, dashArray: "3 3" })
          .bindTooltip(tip("禁飞区 " + (z.name || ""))).addTo(layers.routes);
      }
    }
    if (plan.home) {
      L.circleMarker(SG.ll(plan.home.lat, plan.home.lon), { radius: 6, color: "#000", fillColor: "#fff", fillOpacity: 1 })
        .bindTooltip(tip("起降点")).addTo(layers.routes);
    }
  }

  // ---------- drones: labelled with their id, the whole track kept ----------
  function droneUpdate(id, tel, track) {
    let d = S.drones.get(id);
    if (!d) {
      const color = droneColor(id);
      d = { track: L.polyline([], { color, weight: 2.5 }).addTo(layers.tracks),
        marker: L.circleMarker([0, 0], { radius: 7, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1, className: "drone-marker" }),
        label: el("span", { class: "drone-label-text", text: id }) };
      d.marker.bindTooltip(d.label, { permanent: true, direction: "right", offset: [8, 0], className: "drone-label" });
      S.drones.set(id, d);
    }
    if (track) d.track.setLatLngs(track.map((p) => SG.ll(p[0], p[1])));
    if (tel) {
      const ll = SG.ll(tel.lat, tel.lon);
      if (!track) { d.track.addLatLng(ll); const pts = d.track.getLatLngs(); if (pts.length > TRACK_MAX) d.track.setLatLngs(pts.slice(-TRACK_MAX)); }
      d.marker.setLatLng(ll);
      if (!layers.drones.hasLayer(d.marker)) d.marker.addTo(layers.drones);
      d.label.textContent = `${id} · ${Z.flightMode(tel.flight_mode)} · ${Math.round(tel.battery_pct)}% · ${Math.round(tel.rel_alt_m)} 米`;
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
    m.bindTooltip(tip(`#${t.id} ${SG.classLabel(t)} · ${t.status_label || Z.STATUS[t.status] || ""}`));
    if (isNew && SG.OPEN(t)) {
      if (t.priority === 0) checkP0(); else Z.alarm(t.priority);
    }
    scheduleList();
    if (S.selected === t.id) { renderPanel(); if (!isNew) refreshDetail(t.id); }
  }

  // ---------- P0 alarm: new ones, and open ones found at load or after a reconnect ----------
  function checkP0() {
    const open = [...S.tickets.values()].filter((t) => t.priority === 0 && SG.OPEN(t) && !S.p0ack.has(t.id))
      .sort((a, b) => b.id - a.id);
    const a = $("p0-alert");
    if (!open.length) { a.classList.remove("on"); document.body.classList.remove("p0-flash"); return; }
    const t = open[0];
    Z.clear(a).append(`⚠ P0 紧急警报：${SG.classLabel(t)} · ${t.grid_name || t.grid_id} · 工单 #${t.id}`
      + (open.length > 1 ? `（另有 ${open.length - 1} 件 P0 在办）` : "") + "（点击查看）");
    a.dataset.ticket = t.id;
    a.classList.add("on"); document.body.classList.add("p0-flash");
    if (!S.p0seen.has(t.id)) {
      S.p0seen.add(t.id);
      Z.alarm(0);
      map.setView(SG.ll(t.lat, t.lon), Math.max(map.getZoom(), 15));
    }
  }
  function ackP0() {
    const a = $("p0-alert");
    for (const t of S.tickets.values()) if (t.priority === 0 && SG.OPEN(t)) S.p0ack.add(t.id);
    a.classList.remove("on"); document.body.classList.remove("p0-flash");
    if (a.dataset.ticket) select(Number(a.dataset.ticket));
  }

  // ---------- the worklist: priority first, searchable, open or closed cases ----------
  function byPriority(a, b) {
    return (a.priority - b.priority) || ((b.overdue ? 1 : 0) - (a.overdue ? 1 : 0)) || (b.id - a.id);
  }
  function filterQuery() {
    const f = S.filter, q = new URLSearchParams();
    q.set("status", f.view === "closed" ? CLOSED_STATES : f.view === "all" ? "" : OPEN_STATES);
    for (const k of ["q", "class_name", "tier", "grid_id", "priority"]) if (f[k]) q.set(k, f[k]);
    if (f.since) q.set("since", new Date(f.since).toISOString());
    if (f.until) q.set("until", new Date(f.until).toISOString());
    q.set("order", f.view === "closed" ? "newest" : "priority");
    for (const [k, v] of [...q.entries()]) if (!v) q.delete(k);
    return q;
  }
  const isLiveView = () => S.filter.view === "open" && !["q", "class_name", "tier", "grid_id", "priority", "since", "until"].some((k) => S.filter[k]);
  async function loadView() {
    if (isLiveView()) { S.view = null; renderList(); return; }
    const q = filterQuery(); q.set("limit", "500");
    try {
      const page = await SG.api("/api/v1/tickets?" + q.toString(), { retries: 1 });
      S.view = (page.items || []).map((t) => t.id);
      for (const t of page.items || []) if (!S.tickets.has(t.id) || S.tickets.get(t.id).updated_at <= t.updated_at) S.tickets.set(t.id, t);
      S.viewTotal = page.total;
    } catch (e) { toast("查询失败：" + e.message); }
    renderList();
  }
  function scheduleList() {
    clearTimeout(scheduleList._t);
    scheduleList._t = setTimeout(() => { if (isLiveView()) renderList(); else loadView(); }, isLiveView() ? 0 : 300);
  }
  function listed() {
    if (S.view) return S.view.map((id) => S.tickets.get(id)).filter(Boolean);
    return [...S.tickets.values()].filter(SG.OPEN).sort(byPriority);
  }

  function renderList() {
    const now = Date.now();
    const list = listed();
    const open = [...S.tickets.values()].filter(SG.OPEN);
    $("ticket-count").textContent = S.view ? `查询结果 ${list.length}${S.viewTotal > list.length ? " / " + S.viewTotal : ""} 件` : `${list.length} 件在办`;
    const overdue = open.filter((t) => SG.sla(t, now).overdue).length;
    $("counts").textContent = `在办 ${open.length} · 超时 ${overdue} · 无人机 ${S.drones.size}`;
    const ul = Z.clear($("tickets"));
    if (!list.length) ul.appendChild(el("li", { class: "empty", text: S.view ? "没有符合条件的工单" : "当前没有在办工单" }));
    for (const t of list) {
      const s = SG.sla(t, now);
      ul.appendChild(el("li", { dataset: { id: t.id }, class: [s.overdue ? "overdue" : "", S.selected === t.id ? "selected" : "", "p" + t.priority].join(" ") },
        el("input", { type: "checkbox", class: "pick", dataset: { pick: t.id }, checked: S.checked.has(t.id),
          title: "选中（批量打印、导出）", "aria-label": `选中工单 #${t.id}` }),
        el("span", { class: "dot", style: { background: SG.classColor(t.class_name) } }),
        el("span", {}, el("b", { text: "#" + t.id }), " " + SG.classLabel(t),
          el("span", { class: "badge p" + t.priority, text: t.priority_label || "P" + t.priority }),
          s.overdue ? el("span", { class: "badge overdue", text: "超时督办" }) : null),
        el("span", { class: "sla", dataset: { sla: t.id }, text: s.text }),
        el("span", { class: "sub", text: [t.grid_name || t.grid_id, t.status_label || Z.STATUS[t.status], Z.TIER[t.tier] || t.tier,
          (t.assignment && t.assignment.assignee) ? "承办 " + t.assignment.assignee : null, Z.datetime(t.created_at).slice(5, 16)].filter(Boolean).join(" · ") })));
    }
    renderBulk(list);
  }
  $("tickets").addEventListener("click", (ev) => {
    const box = ev.target.closest("input.pick");
    if (box) {  // ticking a box selects for bulk work; it does not open the ticket
      const id = Number(box.dataset.pick);
      if (box.checked) S.checked.add(id); else S.checked.delete(id);
      renderBulk(listed());
      return;
    }
    const li = ev.target.closest("li[data-id]"); if (li) select(Number(li.dataset.id));
  });

  // ---------- bulk selection: print several ticket sheets at once, export just the selection ----------
  const checkedIds = () => [...S.checked].sort((a, b) => a - b);
  function renderBulk(list) {
    const n = S.checked.size;
    const all = $("bulk-all");
    if (!all) return;
    all.checked = list.length > 0 && list.every((t) => S.checked.has(t.id));
    all.indeterminate = !all.checked && list.some((t) => S.checked.has(t.id));
    $("bulk-count").textContent = n ? `已选 ${n} 件` : "未选择";
    for (const id of ["bulk-print", "bulk-csv", "bulk-xlsx", "bulk-clear"]) $(id).disabled = n === 0;
  }
  function buildBulk() {
    const exportSel = (fmt) => async (ev) => {
      const q = new URLSearchParams({ ids: checkedIds().join(","), format: fmt, order: "priority" });
      ev.target.disabled = true;
      try { await Z.download("/api/v1/export/tickets?" + q.toString(), `所选工单.${fmt}`); toast(`已导出所选 ${S.checked.size} 件`); }
      catch (e) { toast("导出失败：" + e.message); }
      renderBulk(listed());
    };
    const all = el("input", { type: "checkbox", id: "bulk-all", title: "全选列表中的工单", "aria-label": "全选列表中的工单",
      onchange: (ev) => {
        for (const t of listed()) { if (ev.target.checked) S.checked.add(t.id); else S.checked.delete(t.id); }
        renderList();
      } });
    Z.clear($("bulk")).append(
      el("label", { class: "bulk-all" }, all, el("span", { id: "bulk-count", text: "未选择" })),
      el("button", { type: "button", id: "bulk-print", text: "打印所选", disabled: true,
        onclick: () => window.open(`/print?id=${checkedIds().join(",")}`, "_blank") }),
      el("button", { type: "button", id: "bulk-csv", text: "导出所选 CSV", disabled: true, onclick: exportSel("csv") }),
      el("button", { type: "button", id: "bulk-xlsx", text: "导出所选 Excel", disabled: true, onclick: exportSel("xlsx") }),
      el("button", { type: "button", id: "bulk-clear", class: "ghost", text: "清除选择", disabled: true,
        onclick: () => { S.checked.clear(); renderList(); } }));
  }

  function buildFilters() {
    const f = $("filters");
    const opt = (v, text) => el("option", { value: v, text });
    const tabs = el("div", { class: "tabs", role: "tablist" }, [["open", "在办"], ["closed", "已办结"], ["all", "全部"]].map(([v, text]) =>
      el("button", { type: "button", class: v === S.filter.view ? "tab on" : "tab", dataset: { view: v }, text })));
    tabs.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-view]"); if (!b) return;
      S.filter.view = b.dataset.view;
      for (const x of tabs.children) x.classList.toggle("on", x === b);
      loadView();
    });
    const q = el("input", { id: "f-q", type: "search", placeholder: "搜索：工单号 / 网格 / 承办人 / 要求" });
    const cls = el("select", { id: "f-class", title: "类别" }, opt("", "全部类别"), Object.keys(SG.CLASS).map((k) => opt(k, SG.CLASS[k].label)));
    const tier = el("select", { id: "f-tier", title: "层级" }, opt("", "全部层级"), Object.entries(Z.TIER).map(([k, v]) => opt(k, v)));
    const pri = el("select", { id: "f-priority", title: "优先级" }, opt("", "全部优先级"), [0, 1, 2, 3].map((p) => opt(String(p), "P" + p)));
    const grid = el("select", { id: "f-grid", title: "网格" }, opt("", "全部网格"), S.grids.map((g) => opt(g.id, g.name || g.id)));
    const since = el("input", { id: "f-since", type: "datetime-local", title: "立案时间起" });
    const until = el("input", { id: "f-until", type: "datetime-local", title: "立案时间止" });
    const apply = () => {
      Object.assign(S.filter, { q: q.value.trim(), class_name: cls.value, tier: tier.value, priority: pri.value,
        grid_id: grid.value, since: since.value, until: until.value });
      loadView();
    };
    q.addEventListener("input", () => { clearTimeout(apply._t); apply._t = setTimeout(apply, 350); });
    for (const x of [cls, tier, pri, grid, since, until]) x.addEventListener("change", apply);
    const exp = (fmt) => async (ev) => {
      const q2 = filterQuery(); q2.set("format", fmt);
      ev.target.disabled = true;
      try { await Z.download("/api/v1/export/tickets?" + q2.toString(), `工单导出.${fmt}`); toast("已导出"); }
      catch (e) { toast("导出失败：" + e.message); }
      ev.target.disabled = false;
    };
    Z.clear(f).append(tabs,
      el("div", { class: "frow" }, q),
      el("div", { class: "frow" }, cls, pri, tier, grid),
      el("div", { class: "frow" }, el("label", { text: "起" }), since, el("label", { text: "止" }), until),
      el("div", { class: "frow" },
        el("button", { type: "button", id: "export-csv", text: "导出 CSV", onclick: exp("csv") }),
        el("button", { type: "button", id: "export-xlsx", text: "导出 Excel", onclick: exp("xlsx") }),
        el("button", { type: "button", id: "reset-filters", text: "清除条件", onclick: () => {
          for (const x of [q, cls, tier, pri, grid, since, until]) x.value = "";
          apply();
        } })));
  }

  function tick() {
    const now = Date.now();
    $("clock").textContent = new Date(now).toLocaleTimeString("zh-CN", { hour12: false });
    for (const e of document.querySelectorAll("[data-sla]")) {
      const t = S.tickets.get(Number(e.dataset.sla)); if (!t) continue;
      const s = SG.sla(t, now); e.textContent = s.text;
      const li = e.closest("li"); if (li) li.classList.toggle("overdue", s.overdue);
    }
  }

  async function select(id) {
    S.selected = id;
    renderList(); renderPanel();
    const t = S.tickets.get(id);
    if (t) map.panTo(SG.ll(t.lat, t.lon));
    await refreshDetail(id);
  }
  async function refreshDetail(id) {
    try {
      const full = await SG.api(`/api/v1/tickets/${id}`, { retries: 1 });
      if (S.selected !== id) return;
      S.detail = full; S.tickets.set(full.id, full); renderPanel();
    } catch (e) { /* keep the summary */ }
  }

  function deptName(id) { return S.departments[id] || id || "—"; }

  // ---------- the ticket panel ----------
  function evidenceBlock(t, detail) {
    const drone = detail ? detail.incidents.filter((i) => i.evidence_url).map((i) => i.evidence_url) : [];
    if (!detail && t.evidence_url) drone.push(t.evidence_url);
    const photos = detail ? detail.events.filter((e) => e.kind === "photo" && e.data && e.data.url) : [];
    const uniq = [...new Set(drone)].slice(-2);
    return el("div", { class: "before-after" },
      el("figure", { class: "before" }, el("figcaption", { text: "无人机取证（处置前）" }),
        uniq.length ? uniq.map((u) => Z.img(u, "无人机取证图像", "evidence")) : el("p", { class: "empty", text: "无取证图像" }),
        uniq.length ? el("div", { class: "verdict" },  // the room's verdict becomes training data (skygrid vision harvest)
          el("button", { type: "button", class: "verdict-confirm", text: "确认", onclick: () => verdict(t.id, "confirmed") }),
          el("button", { type: "button", class: "verdict-false", text: "标记误报", onclick: () => verdict(t.id, "false_alarm") })) : null),
      el("figure", { class: "after" }, el("figcaption", { text: `现场照片（处置后）${photos.length ? " · " + photos.length + " 张" : ""}` }),
        photos.length ? photos.slice(-3).map((e) => el("div", { class: "photo-item" }, Z.img(e.data.url, "现场照片", "photo"),
          el("small", { text: `${Z.actor(e)} ${SG.time(e.at)}${e.comment ? "：" + e.comment : ""}` })))
          : el("p", { class: "empty", text: "尚无现场照片" })));
  }

  function renderPanel() {
    const t = S.tickets.get(S.selected);
    const p = Z.clear($("panel"));
    if (S.errorCircle) { S.errorCircle.remove(); S.errorCircle = null; }
    if (!t) { p.appendChild(el("p", { class: "empty", text: "点击地图或列表中的工单查看详情" })); return; }
    S.errorCircle = L.circle(SG.ll(t.lat, t.lon), { radius: Math.max(t.error_m || 0, 1), color: SG.classColor(t.class_name), weight: 1, fillOpacity: 0.1 }).addTo(map);
    const disp = SG.ll(t.lat, t.lon);
    const s = SG.sla(t, Date.now());
    const actions = (t.allowed_actions || []).filter((a) => !S.workflow || !S.me || (S.workflow[a] && S.workflow[a].roles.includes(S.me.role)));
    const detail = S.detail && S.detail.id === t.id ? S.detail : null;
    const asg = t.assignment || {};
    const dl = el("dl", {});
    const row = (k, ...v) => dl.append(el("dt", { text: k }), el("dd", {}, ...v));
    row("状态", el("span", { id: "panel-status", text: t.status_label || Z.STATUS[t.status] || t.status }));
    row("时限", el("span", { class: s.overdue ? "msg-error" : "", text: s.text + (t.escalations ? ` · 已升级 ${t.escalations} 次` : "") }));
    row("层级", Z.TIER[t.tier] || t.tier);
    row("网格", `${t.grid_name || ""}（${t.grid_id}）`);
    row("网格员", `${(t.worker && t.worker.name) || "—"} ${(t.worker && t.worker.phone) || ""}`);
    row("位置", `WGS-84 ${t.lat.toFixed(6)}, ${t.lon.toFixed(6)}`,
      SG.displayCrs !== "wgs84" ? el("br") : null,
      SG.displayCrs !== "wgs84" ? `${{ gcj02: "GCJ-02", bd09: "BD-09" }[SG.displayCrs] || SG.displayCrs} ${disp[0].toFixed(6)}, ${disp[1].toFixed(6)}` : null,
      el("br"), `误差圈 ±${(t.error_m || 0).toFixed(1)} 米`);
    row("发现", `${t.incident_count} 次 · 置信度 ${(t.max_confidence || 0).toFixed(2)} · ${Z.datetime(t.first_seen_at)}`);
    row("牵头", deptName(t.lead_department));
    row("协同", (t.co_departments || []).map(deptName).join("、") || "—");
    if (asg.department || asg.assignee) {
      row("承办", `${deptName(asg.department)}${asg.assignee ? " · " + asg.assignee : ""}${asg.deadline ? " · 限 " + Z.datetime(asg.deadline) : ""}`);
      if (asg.instructions) row("要求", asg.instructions);
    }
    if (t.score !== null && t.score !== undefined) row("考核", `${t.score} 分`);
    if (t.duplicate_of) row("重复于", `工单 #${t.duplicate_of}`);
    const bar = el("div", { class: "actions", id: "panel-actions" },
      actions.map((a) => el("button", { type: "button", dataset: { action: a }, class: ["reject", "mark_duplicate", "send_back", "return"].includes(a) ? "" : "primary",
        text: (S.workflow && S.workflow[a] && S.workflow[a].label) || a, onclick: (ev) => startAction(t, a, ev.currentTarget) })),
      el("button", { type: "button", id: "print-ticket", class: "ghost", text: "打印工单", onclick: () => window.open(`/print?id=${t.id}`, "_blank") }));
    p.append(
      el("div", { class: "panel-head" },
        el("h3", {}, `#${t.id} ${SG.classLabel(t)} `, el("span", { class: "badge p" + t.priority, text: t.priority_label || "P" + t.priority }),
          el("span", { class: "badge status", text: t.status_label || Z.STATUS[t.status] || "" })),
        bar, el("p", { class: "msg-error", id: "panel-error" })),
      evidenceBlock(t, detail), dl,
      el("h4", { text: "联合检查清单" }),
      el("ul", { class: "checklist" }, (t.checklist || []).map((c) => el("li", {}, c.text || c.id,
        c.departments ? el("small", { text: ` (${c.departments.map(deptName).join("、")})` }) : null))));
    if (detail) {
      p.append(el("h4", { text: "流转记录" }), el("ul", { class: "checklist history" }, detail.events.map((e) => el("li", {},
        `${Z.datetime(e.at).slice(5)} ${Z.actor(e)} `,
        el("b", { text: Z.historyVerb(e, S.workflow) }),
        e.kind === "escalated" && e.data ? `：${Z.STAGE[e.data.stage] || ""}超时，升至${Z.TIER[e.data.to_tier] || ""}` : "",
        e.data && e.data.score !== undefined && e.data.score !== null ? `：${e.data.score} 分` : "",
        e.data && e.data.assignee ? `：${deptName(e.data.department)} · ${e.data.assignee}` : "",
        e.data && e.data.duplicate_of ? `：重复于 #${e.data.duplicate_of}` : "",
        e.comment ? "：" + e.comment : ""))));
    }
  }

  // ---------- actions and their dialogs ----------
  function dialog(title, body, onOk) {
    const d = $("dlg");
    const err = el("p", { class: "msg-error", id: "dlg-error" });
    const ok = el("button", { type: "submit", class: "primary", id: "dlg-ok", text: "确定" });
    const form = el("form", { method: "dialog" }, el("h3", { text: title }), body, err,
      el("div", { class: "dlg-buttons" }, ok, el("button", { type: "button", id: "dlg-cancel", text: "取消", onclick: () => d.close() })));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      ok.disabled = true; err.textContent = "";
      try { await onOk(form); d.close(); } catch (e) { err.textContent = e.message; }
      ok.disabled = false;
    });
    Z.clear(d).appendChild(form);
    d.showModal();
    const first = form.querySelector("input:not([type=radio]), select, textarea");
    if (first) first.focus();
  }
  const field = (label, input) => el("label", { class: "field" }, el("span", { text: label }), input);
  const localInput = (d) => { const p = (n) => String(n).padStart(2, "0"); return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; };

  async function post(id, body) {
    const t = await SG.api(`/api/v1/tickets/${id}/actions`, { method: "POST", body, retries: 1 });
    upsertTicket(t); refreshDetail(id);
    return t;
  }
  async function verdict(id, v) {
    await SG.api(`/api/v1/tickets/${id}/verdict`, { method: "POST", body: { verdict: v }, retries: 1 });
    toast(v === "confirmed" ? "已确认：将作为训练正样本" : "已标记误报：将作为训练负样本");
  }
  async function uploadPhoto(id, file) {
    const fd = new FormData(); fd.append("file", file, file.name || "photo.jpg");
    await SG.api(`/api/v1/tickets/${id}/photos`, { method: "POST", body: fd, retries: 1 });
  }

  function startAction(t, action, btn) {
    const label = (S.workflow && S.workflow[action] && S.workflow[action].label) || action;
    const req = S.requires[action] || [];
    const done = () => toast("已提交：" + label);
    if (action === "route") {
      const dept = el("select", { name: "department", id: "route-department" }, S.deptList.map((d) => el("option", { value: d.id, text: d.name, selected: d.id === t.lead_department })));
      const names = el("datalist", { id: "people" }, [t.worker && t.worker.name, ...S.workers.map((w) => w.name)].filter(Boolean).map((n) => el("option", { value: n })));
      const who = el("input", { name: "assignee", id: "route-assignee", list: "people", placeholder: "承办人姓名", value: (t.worker && t.worker.name) || "" });
      const due = el("input", { name: "deadline", id: "route-deadline", type: "datetime-local", value: localInput(new Date(Date.now() + 2 * 3600e3)) });
      const ins = el("textarea", { name: "instructions", id: "route-instructions", rows: 3, placeholder: "处置要求（如：到场核实后拍照，联系环卫清运）" });
      return dialog(`派单 · 工单 #${t.id}`, el("div", {}, field("承办部门", dept), field("承办人", who), names, field("办理时限", due), field("处置要求", ins)), async () => {
        await post(t.id, { action, department: dept.value, assignee: who.value.trim() || null,
          deadline: due.value ? new Date(due.value).toISOString() : null, instructions: ins.value.trim() || null });
        done();
      });
    }
    if (action === "assess") {
      const score = el("input", { name: "score", id: "assess-score", type: "number", min: 0, max: 100, step: 1, value: 90 });
      const why = el("textarea", { name: "comment", id: "assess-comment", rows: 2, placeholder: "考核意见" });
      return dialog(`考核办结 · 工单 #${t.id}`, el("div", {}, field("考核得分（0–100）", score), field("考核意见", why)), async () => {
        const v = Number(score.value);
        if (score.value === "" || !(v >= 0 && v <= 100)) throw new Error(Z.ERROR.score_required);
        await post(t.id, { action, score: Math.round(v), comment: why.value.trim() || null }); done();
      });
    }
    if (action === "mark_duplicate") {
      const list = el("div", { class: "dup-list", id: "dup-list" }, el("p", { class: "note", text: "正在查找附近同类工单…" }));
      const other = el("input", { name: "duplicate_of", id: "dup-other", type: "number", min: 1, placeholder: "或直接输入工单号" });
      const why = el("textarea", { name: "comment", id: "dup-comment", rows: 2, placeholder: "说明（如：同一处焚烧，已在 #12 办理）" });
      SG.api(`/api/v1/tickets/${t.id}/similar?radius_m=1000`, { retries: 1 }).then((r) => {
        Z.clear(list);
        if (!r.items.length) list.appendChild(el("p", { class: "note", text: "1 公里内没有同类工单，请输入工单号" }));
        r.items.forEach((o, i) => list.appendChild(el("label", { class: "dup-item" },
          el("input", { type: "radio", name: "dup", value: o.id, checked: i === 0 }),
          ` #${o.id} ${SG.classLabel(o)} · ${o.status_label} · 相距 ${Math.round(o.distance_m)} 米 · ${Z.datetime(o.created_at).slice(5, 16)}`)));
      }).catch((e) => { Z.clear(list).appendChild(el("p", { class: "msg-error", text: e.message })); });
      return dialog(`标记重复 · 工单 #${t.id}`, el("div", {}, field("与哪件工单重复", list), field("工单号", other), field("说明", why)), async (form) => {
        const picked = form.querySelector("input[name=dup]:checked");
        const dup = other.value ? Number(other.value) : picked ? Number(picked.value) : null;
        if (!dup) throw new Error(Z.ERROR.duplicate_of_required);
        await post(t.id, { action, duplicate_of: dup, comment: why.value.trim() || null }); done();
      });
    }
    if (["reject", "send_back", "return", "reopen"].includes(action)) {
      const why = el("textarea", { name: "comment", id: "reason", rows: 3, placeholder: "请填写原因" });
      return dialog(`${label} · 工单 #${t.id}`, field("原因", why), async () => {
        if (!why.value.trim()) throw new Error("请填写原因");
        await post(t.id, { action, comment: why.value.trim() }); done();
      });
    }
    if (req.includes("photo")) {
      const file = el("input", { type: "file", id: "resolve-photo", accept: "image/jpeg,image/png" });
      const note = el("textarea", { id: "resolve-comment", rows: 2, placeholder: "处置情况" });
      return dialog(`${label} · 工单 #${t.id}`, el("div", {}, el("p", { class: "note", text: "处置完毕需附现场照片（已由现场人员上传的可不再上传）。" }),
        field("现场照片", file), field("处置情况", note)), async () => {
        if (file.files && file.files[0]) await uploadPhoto(t.id, file.files[0]);
        await post(t.id, { action, comment: note.value.trim() || null }); done();
      });
    }
    btn.disabled = true;
    post(t.id, { action }).then(done).catch((e) => {
      const er = $("panel-error"); if (er) er.textContent = e.message;
      btn.disabled = false;
    });
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
    if (ev.topic === "drone.event" && ["link_lost", "rtl", "failsafe", "rtl_failed", "sortie_failed"].includes(ev.data.kind)) {
      toast(`无人机 ${ev.data.drone_id}：${Z.flightEventText(ev.data)}`);
    }
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
      const page = await SG.api(`/api/v1/tickets?status=${OPEN_STATES}&order=priority&limit=500`);
      for (const t of page.items || []) upsertTicket(t, false);
      checkP0();  // P0s already open at load or after a reconnect alarm too
      if (!isLiveView()) loadView();
    } catch (e) { toast("工单加载失败：" + e.message); }
  }

  async function main() {
    Z.soundPrompt($("sound-host"));
    $("p0-alert").addEventListener("click", ackP0);
    initMap(await SG.api("/api/v1/live/config"));
    await SG.ensureLogin();
    const [me, wf, depts, grids, workers] = await Promise.all([
      SG.api("/api/v1/me"), SG.api("/api/v1/workflow").catch(() => null),
      SG.api("/api/v1/departments").catch(() => ({ items: [] })), SG.api("/api/v1/grids?format=geojson").catch(() => null),
      SG.api("/api/v1/workers").catch(() => ({ items: [] }))]);
    S.me = me;
    if (wf) { S.workflow = {}; for (const a of wf.actions) { S.workflow[a.id] = a; S.requires[a.id] = a.requires || []; } }
    S.deptList = depts.items || [];
    for (const d of S.deptList) S.departments[d.id] = d.name;
    S.workers = workers.items || [];
    if (grids && grids.features) {
      drawGrids(grids.features);
      S.grids = grids.features.map((f) => ({ id: f.id, name: (f.properties || {}).name }));
    }
    buildFilters();
    buildBulk();
    await loadPlan();
    S.live = SG.live(onEvent, { onStatus: liveStatus });
    setInterval(tick, 1000); tick();
    document.body.dataset.ready = "1";
  }
  $("logout").addEventListener("click", SG.logout);
  main().catch((e) => { toast("启动失败：" + e.message, 10000); });
})();
