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

  function renderPlan() {
    const p = O.plan;
    if (!p) return;
    const km = (p.sorties || []).reduce((a, s) => a + (s.distance_m || 0), 0) / 1000;
    $("plan").innerHTML = `<h3>巡查计划</h3><div class="kv">
      <span>网格</span><span>${p.grids.length} 个</span>
      <span>无人机</span><span>${p.drones} 架</span>
      <span>架次</span><span>${p.sorties.length} 个，共 ${km.toFixed(1)} km</span>
      <span>航高</span><span>${p.altitude_m} m（真高 ≤ 120 m）</span>
      <span>地面分辨率</span><span>${p.gsd_cm} cm/px · 航速 ${p.speed_m_s} m/s</span>
      <span>起降点</span><span>${p.home.lat.toFixed(5)}, ${p.home.lon.toFixed(5)}</span>
      <span>生成</span><span>${SG.esc(p.created_at || "")}</span></div>`;
    const rows = [...p.sorties].sort((a, b) => (a.drone - b.drone) || (a.index - b.index)).map((s) =>
      `<tr data-sortie="${SG.esc(s.id)}"><td>${SG.esc(s.id)}</td><td>d${s.drone}</td><td>${s.index + 1}</td><td>${s.grid_ids.map(SG.esc).join("、")}</td>
       <td>${s.waypoints.length}</td><td>${(s.distance_m / 1000).toFixed(2)} km</td><td>${Math.round(s.duration_s / 60)} min</td>
       <td>${Math.round(s.battery_fraction * 100)}%</td><td class="sortie-state"></td></tr>`).join("");
    $("sorties").innerHTML = `<h3>架次</h3><table class="plain"><thead><tr><th>架次</th><th>无人机</th><th>序号</th><th>网格</th><th>航点</th><th>航程</th><th>预计</th><th>电量</th><th>状态</th></tr></thead><tbody>${rows}</tbody></table>`;
    for (let i = 0; i < p.drones; i++) ensureDrone("d" + i);
    renderSortieStates();
  }

  function ensureDrone(id) {
    if (O.drones.has(id)) return O.drones.get(id);
    const d = { id, tel: null, events: [] };
    O.drones.set(id, d);
    const card = document.createElement("div");
    card.className = "card"; card.id = "drone-" + id; card.dataset.drone = id;
    card.innerHTML = `<h3><span>无人机 ${SG.esc(id)}</span><span class="mode note">未连接</span></h3>
      <div class="kv"><span>架次</span><span class="sortie">—</span><span>航点</span><span class="item">—</span>
      <span>高度</span><span class="alt">—</span><span>速度</span><span class="spd">—</span><span>电量</span><span class="bat">—</span>
      <span>位置</span><span class="pos">—</span></div>
      <div class="progress"><div></div></div>
      <div class="row" style="display:flex;gap:6px;flex-wrap:wrap">
        <button type="button" class="danger" data-cmd="rtl" data-abort="1">中止任务</button>
        <button type="button" data-cmd="rtl">返航 RTL</button>
        <button type="button" data-cmd="hold">悬停</button>
        <button type="button" data-cmd="resume">继续任务</button></div>
      <ul class="events"></ul>`;
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
    c.querySelector(".events").innerHTML = d.events.slice(-8).reverse().map((e) =>
      `<li>${SG.time(e.at)} ${SG.esc(e.text)}</li>`).join("");
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
    $("cmds").querySelector("tbody").innerHTML = rows.map((c) =>
      `<tr><td>${c.id}</td><td>${SG.esc(c.drone_id)}</td><td>${SG.esc(ACTION_LABEL[c.action] || c.action)}${c.note ? "（" + SG.esc(c.note) + "）" : ""}</td><td>${SG.esc(c.issued_by)}</td><td>${SG.time(c.issued_at)}</td></tr>`).join("");
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
