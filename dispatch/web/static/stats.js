/* Statistics page (考核): on-time rate and median time per stage, overall and per grid and per
 * department, drawn as SVG bar charts from GET /api/v1/stats. Times filter on ticket creation. */
"use strict";
(function () {
  const Z = window.SGZ, el = Z.el;
  const $ = (id) => document.getElementById(id);
  const STAGES = ["sign", "dispatch", "on_site", "handle", "supervise"];
  const ST = { names: {}, data: {} };
  window.SGSTATS = ST;
  const pct = (v) => (v === null || v === undefined ? "—" : Math.round(v * 1000) / 10 + "%");

  function query(extra) {
    const q = new URLSearchParams(extra);
    if ($("s-since").value) q.set("since", new Date($("s-since").value).toISOString());
    if ($("s-until").value) q.set("until", new Date($("s-until").value).toISOString());
    return q.toString();
  }

  function stageChart(title, total) {
    return Z.barChart({
      title, labels: STAGES.map((s) => Z.STAGE[s]), max: 1, fmt: pct,
      series: [{ name: "按时率", color: "#2d7a3a", values: STAGES.map((s) => total.stages[s].on_time_rate) }],
    });
  }
  function medianChart(title, total) {
    const vals = STAGES.map((s) => total.stages[s].median_s);
    return Z.barChart({ title, labels: STAGES.map((s) => Z.STAGE[s]), fmt: Z.duration,
      series: [{ name: "中位用时", color: "#1f6feb", values: vals.map((v) => (v === null ? null : v)) }] });
  }
  function groupChart(title, groups, nameOf) {
    const labels = groups.map((g) => nameOf(g.key));
    const rate = (g) => {  // all stages together: on-time completions / completions
      let n = 0, ok = 0;
      for (const s of STAGES) { n += g.stages[s].count; ok += g.stages[s].on_time; }
      return n ? ok / n : null;
    };
    return Z.barChart({ title, labels, max: 1, fmt: pct, series: [
      { name: "各环节按时率", color: "#2d7a3a", values: groups.map(rate) },
      { name: "到场按时率", color: "#f28c18", values: groups.map((g) => g.stages.on_site.on_time_rate) },
    ] });
  }
  function groupMedianChart(title, groups, nameOf) {
    return Z.barChart({ title, labels: groups.map((g) => nameOf(g.key)), fmt: Z.duration, series: [
      { name: "到场中位用时", color: "#f28c18", values: groups.map((g) => g.stages.on_site.median_s) },
      { name: "处置中位用时", color: "#1f6feb", values: groups.map((g) => g.stages.handle.median_s) },
    ] });
  }
  function table(title, groups, nameOf) {
    const head = ["名称", "工单", "办结", "超时", "升级", "平均得分", ...STAGES.map((s) => Z.STAGE[s] + "按时率"), ...STAGES.map((s) => Z.STAGE[s] + "中位")];
    const closed = (g) => (g.by_status.closed || 0);
    return el("div", { class: "card" }, el("h4", { text: title }), el("table", { class: "plain" },
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
      el("tbody", {}, groups.map((g) => el("tr", {},
        [nameOf(g.key), g.tickets, closed(g), g.overdue, g.escalated, g.score_avg === null || g.score_avg === undefined ? "—" : g.score_avg,
          ...STAGES.map((s) => pct(g.stages[s].on_time_rate)), ...STAGES.map((s) => Z.duration(g.stages[s].median_s))]
          .map((v) => el("td", { text: v })))))));
  }

  async function load() {
    const [byGrid, byDept] = await Promise.all([
      SG.api("/api/v1/stats?" + query({ group_by: "grid" })), SG.api("/api/v1/stats?" + query({ group_by: "department" }))]);
    ST.data = { grid: byGrid, department: byDept };
    const total = byGrid.total;
    let n = 0, ok = 0;
    for (const s of STAGES) { n += total.stages[s].count; ok += total.stages[s].on_time; }
    const kpi = (v, label, id) => el("div", { class: "kpi", id }, el("b", { text: v }), el("span", { text: label }));
    Z.clear($("kpis")).append(
      kpi(total.tickets, "工单总数", "kpi-tickets"), kpi(total.by_status.closed || 0, "考核办结", "kpi-closed"),
      kpi(n ? pct(ok / n) : "—", "各环节按时率", "kpi-ontime"), kpi(total.overdue, "超时督办", "kpi-overdue"),
      kpi(total.score_avg === null || total.score_avg === undefined ? "—" : total.score_avg, "平均考核得分", "kpi-score"));
    const gname = (k) => ST.names[k] || k;
    const dname = (k) => ST.depts[k] || k;
    Z.clear($("charts")).append(
      el("div", { class: "card" }, stageChart("各环节按时率（全部工单）", total)),
      el("div", { class: "card" }, medianChart("各环节中位用时（全部工单）", total)),
      el("div", { class: "card" }, groupChart("按网格 · 按时率", byGrid.groups, gname)),
      el("div", { class: "card" }, groupMedianChart("按网格 · 中位用时", byGrid.groups, gname)),
      el("div", { class: "card" }, groupChart("按牵头部门 · 按时率", byDept.groups, dname)),
      el("div", { class: "card" }, groupMedianChart("按牵头部门 · 中位用时", byDept.groups, dname)));
    Z.clear($("tables")).append(table("按网格", byGrid.groups, gname), table("按牵头部门", byDept.groups, dname));
  }

  async function main() {
    await SG.ensureLogin();
    const [grids, depts] = await Promise.all([SG.api("/api/v1/grids").catch(() => ({ items: [] })),
      SG.api("/api/v1/departments").catch(() => ({ items: [] }))]);
    for (const g of grids.items || []) ST.names[g.id] = g.name || g.id;
    ST.depts = {};
    for (const d of depts.items || []) ST.depts[d.id] = d.name;
    const since = el("input", { id: "s-since", type: "datetime-local" });
    const until = el("input", { id: "s-until", type: "datetime-local" });
    Z.clear($("toolbar")).append(el("label", { text: "立案时间 起" }), since, el("label", { text: "止" }), until,
      el("button", { type: "button", class: "primary", id: "s-apply", text: "查询", onclick: () => load().catch((e) => toast(e.message)) }),
      el("button", { type: "button", id: "s-print", text: "打印", onclick: () => window.print() }));
    await load();
    document.body.dataset.ready = "1";
  }
  function toast(msg) { const t = $("toast"); t.textContent = msg; t.style.display = "block"; setTimeout(() => { t.style.display = "none"; }, 4000); }
  main().catch((e) => toast("加载失败：" + e.message));
})();
