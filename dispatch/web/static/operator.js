/* Operator (飞手) view: the plan, its sorties, live progress per drone, RTL/hold/resume/abort. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const O = { plan: null, drones: new Map(), commands: new Map() };
  window.SGOP = O;
  const ACTION_LABEL = { rtl: "返航", hold: "悬停", resume: "继续任务" };
  function toast(msg, ms) {
    const t = $("toast"); t.textContent = msg; t.style.display = "block";
    clearTimeout(toast._t); toast._t = setTimeout(() => { t.style.display = "none"; }, ms || 3000);
  }

  const h = SG.h;
  const num = (v, digits) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "—");

  function renderPlan() {
    const p = O.plan;
    if (!p) return;
    const sorties = p.sorties || [];
    const km = sorties.reduce((a, s) => a + (Number(s.distance_m) || 0), 0) / 1000;
    const kv = (label, value) => [h("span", {}, label), h("span", {}, value)];
    SG.fill($("plan"), h("h3", {}, "巡查计划"), h("div", { class: "kv" },
      kv("网格", `${(p.grids || []).length} 个`),
      kv("无人机", `${p.drones} 架`),
      kv("架次", `${sorties.length} 个，共 ${km.toFixed(1)} km`),
      kv("航高", `${p.altitude_m} m（真高 ≤ 120 m）`),
      kv("地面分辨率", `${p.gsd_cm} cm/px · 航速 ${p.speed_m_s} m/s`),
      kv("起降点", p.home ? `${num(p.home.lat, 5)}, ${num(p.home.lon, 5)}` : "—"),
      kv("生成", p.created_at || "")));
    const rows = [...sorties].sort((a, b) => (a.drone - b.drone) || (a.index - b.index)).map((s) =>
      h("tr", { dataset: { sortie: s.id } },
        h("td", {}, s.id), h("td", {}, "d" + s.drone), h("td", {}, Number(s.index) + 1),
        h("td", {}, (s.grid_ids || []).join("、")), h("td", {}, (s.waypoints || []).length),
        h("td", {}, `${num(s.distance_m / 1000, 2)} km`), h("td", {}, `${Math.round(s.duration_s / 60)} min`),
        h("td", {}, `${Math.round(s.battery_fraction * 100)}%`), h("td", { class: "sortie-state" })));
    const heads = ["架次", "无人机", "序号", "网格", "航点", "航程", "预计", "电量", "状态"].map((t) => h("th", {}, t));
    SG.fill($("sorties"), h("h3", {}, "架次"),
      h("table", { class: "plain" }, h("thead", {}, h("tr", {}, heads)), h("tbody", {}, rows)));
    const n = Math.min(Number(p.drones) || 0, 64);
    for (let i = 0; i < n; i++) ensureDrone("d" + i);
    renderSortieStates();
  }

  function ensureDrone(id) {
    if (O.drones.has(id)) return O.drones.get(id);
    const d = { id, tel: null, events: [] };
    O.drones.set(id, d);
    const kv = (label, cls) => [h("span", {}, label), h("span", { class: cls }, "—")];
    const card = h("div", { class: "card", id: "drone-" + id, dataset: { drone: id } },
      h("h3", {}, h("span", {}, "无人机 " + id), h("span", { class: "mode note" }, "未连接")),
      h("div", { class: "kv" }, kv("架次", "sortie"), kv("航点", "item"), kv("高度", "alt"), kv("速度", "spd"),
        kv("电量", "bat"), kv("位置", "pos")),
      h("div", { class: "progress" }, h("div")),
      h("div", { class: "row cmd-row" },
        h("button", { type: "button", class: "danger", dataset: { cmd: "rtl", abort: "1" } }, "中止任务"),
        h("button", { type: "button", dataset: { cmd: "rtl" } }, "返航"),
        h("button", { type: "button", dataset: { cmd: "hold" } }, "悬停"),
        h("button", { type: "button", dataset: { cmd: "resume" } }, "继续任务")),
      h("ul", { class: "events" }));
    $("drones").appendChild(card);
    return d;
  }

  function renderDrone(d) {
    const c = $("drone-" + d.id); if (!c) return;
    const t = d.tel;
    if (t) {
      c.querySelector(".mode").textContent = `${SGZ.flightMode(t.flight_mode)}${t.in_air ? " · 空中" : " · 地面"}${t.armed ? " · 已解锁" : ""}`;
      c.querySelector(".sortie").textContent = t.sortie_id || "—";
      const tot = t.mission_total || 0, it = t.mission_item === null || t.mission_item === undefined ? null : t.mission_item;
      c.querySelector(".item").textContent = it === null ? "—" : `${it} / ${tot}`;
      c.querySelector(".progress > div").style.width = tot ? `${Math.min(100, (100 * it) / tot).toFixed(0)}%` : "0";
      c.querySelector(".alt").textContent = `${t.rel_alt_m.toFixed(1)} m`;
      c.querySelector(".spd").textContent = `${t.ground_speed_m_s.toFixed(1)} m/s`;
      c.querySelector(".bat").textContent = `${Math.round(t.battery_pct)}%`;
      c.querySelector(".pos").textContent = `${t.lat.toFixed(6)}, ${t.lon.toFixed(6)}`;
    }
    SG.fill(c.querySelector(".events"), d.events.slice(-8).reverse().map((e) => h("li", {}, `${SG.time(e.at)} ${e.text}`)));
  }

  function renderSortieStates() {
    for (const d of O.drones.values()) {
      if (!d.tel || !d.tel.sortie_id) continue;
      const row = document.querySelector(`tr[data-sortie="${CSS.escape(d.tel.sortie_id)}"] .sortie-state`);
      if (row) row.textContent = d.tel.in_air ? `执行中 ${d.tel.mission_item || 0}/${d.tel.mission_total || 0}` : "地面";
    }
    for (const d of O.drones.values()) for (const e of d.events) {
      if (e.kind === "sortie_done" && e.sortie_id) {
        const row = document.querySelector(`tr[data-sortie="${CSS.escape(e.sortie_id)}"] .sortie-state`); if (row) row.textContent = "已完成";
      }
    }
  }

  function addEvent(id, at, text, kind, sortie) {
    const d = ensureDrone(id);
    d.events.push({ at, text, kind, sortie_id: sortie });
    if (d.events.length > 50) d.events.shift();
    renderDrone(d);
  }

  function renderCommands() {
    const rows = [...O.commands.values()].sort((a, b) => b.id - a.id).slice(0, 20);
    SG.fill($("cmds").querySelector("tbody"), rows.map((c) => h("tr", {}, h("td", {}, c.id), h("td", {}, c.drone_id),
      h("td", {}, (ACTION_LABEL[c.action] || c.action) + (c.note ? "（" + c.note + "）" : "")),
      h("td", {}, c.issued_by), h("td", {}, SG.time(c.issued_at)))));
  }

  $("drones").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-cmd]"); if (!b) return;
    const id = b.closest("[data-drone]").dataset.drone;
    const abort = b.dataset.abort === "1";
    if (abort && !window.confirm(`确认中止 ${id} 的任务并返航？`)) return;
    b.disabled = true;
    try {
      const c = await SG.api(`/api/v1/drones/${encodeURIComponent(id)}/commands`, { method: "POST",
        body: { action: b.dataset.cmd, note: abort ? "中止任务" : null }, retries: 2 });
      O.commands.set(c.id, c); renderCommands();
      toast(`已向 ${id} 下达：${abort ? "中止任务并返航" : ACTION_LABEL[c.action]}`);
    } catch (e) { toast("指令失败：" + e.message, 5000); }
    b.disabled = false;
  });

  function onEvent(ev) {
    if (ev.topic === "hello") {
      const ds = ev.data.drones || {};
      for (const id of Object.keys(ds)) {
        const d = ensureDrone(id); d.tel = ds[id].telemetry || d.tel;
        for (const e of ds[id].events || []) {
          if (e.topic === "drone.command") O.commands.set(e.id, e);
          else d.events.push({ at: new Date((e.wall_time || 0) * 1000).toISOString(), text: SGZ.flightEventText(e), kind: e.kind, sortie_id: e.sortie_id });
        }
        renderDrone(d);
      }
      renderCommands(); renderSortieStates();
      return;
    }
    if (ev.topic === "drone.telemetry") { const d = ensureDrone(ev.data.drone_id); d.tel = ev.data; renderDrone(d); renderSortieStates(); }
    else if (ev.topic === "drone.event") { addEvent(ev.data.drone_id, ev.at, SGZ.flightEventText(ev.data), ev.data.kind, ev.data.sortie_id); renderSortieStates(); }
    else if (ev.topic === "drone.command") { O.commands.set(ev.data.id, ev.data); renderCommands(); addEvent(ev.data.drone_id, ev.at, `指令 ${ACTION_LABEL[ev.data.action] || ev.data.action}（${ev.data.issued_by}）`, "command"); }
    else if (ev.topic === "plan.updated") loadPlan();
  }

  async function loadPlan() {
    try { O.plan = await SG.api("/api/v1/plan", { retries: 1 }); renderPlan(); } catch (e) { if (e.status !== 404) toast(e.message); }
  }

  async function main() {
    await SG.ensureLogin();
    await loadPlan();
    try {
      const cmds = await SG.api("/api/v1/drones/commands?after=0&limit=1000");
      for (const c of cmds.commands) O.commands.set(c.id, c);
      renderCommands();
    } catch (e) { /* viewer roles cannot list commands */ }
    O.live = SG.live(onEvent, { filters: { topic: "drone,plan" },
      onStatus: (s) => { $("live-dot").className = "status-dot " + s; $("live-text").textContent = s === "live" ? "实时" : "重连中"; } });
    document.body.dataset.ready = "1";
  }
  main().catch((e) => toast("启动失败：" + e.message, 10000));
})();
