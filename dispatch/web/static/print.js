/* Printable ticket sheets (/print?id=12 or ?id=12,13): the case's facts, assignment, checklist,
 * history and the evidence images (drone before, on-site photos after), one sheet per ticket.
 * body[data-ready] is set once every image has loaded, so printing never misses one. */
"use strict";
(function () {
  const Z = window.SGZ, el = Z.el;
  const $ = (id) => document.getElementById(id);
  const P = { tickets: [] };
  window.SGPRINT = P;

  function sheet(t, wf, depts) {
    const dn = (id) => depts[id] || id || "—";
    const a = t.assignment || {};
    const rows = [
      ["工单号", `#${t.id}`, "优先级", t.priority_label],
      ["类别", SG.classLabel(t), "状态", t.status_label],
      ["网格", `${t.grid_name || ""}（${t.grid_id}）`, "层级", Z.TIER[t.tier] || t.tier],
      ["网格员", `${(t.worker && t.worker.name) || "—"} ${(t.worker && t.worker.phone) || ""}`, "发现", `${t.incident_count} 次，置信度 ${t.max_confidence.toFixed(2)}`],
      ["位置", `WGS-84 ${t.lat.toFixed(6)}, ${t.lon.toFixed(6)}（±${t.error_m.toFixed(1)} 米）`, "立案时间", Z.datetime(t.created_at)],
      ["牵头部门", dn(t.lead_department), "协同部门", (t.co_departments || []).map(dn).join("、") || "—"],
      ["承办", `${a.department ? dn(a.department) : "—"}${a.assignee ? " · " + a.assignee : ""}`, "办理时限", a.deadline ? Z.datetime(a.deadline) : "—"],
      ["处置要求", a.instructions || "—", "考核得分", t.score === null || t.score === undefined ? "—" : t.score + " 分"],
    ];
    const drone = [...new Set(t.incidents.filter((i) => i.evidence_url).map((i) => i.evidence_url))].slice(-2);
    const photos = t.events.filter((e) => e.kind === "photo" && e.data && e.data.url);
    return el("section", { class: "sheet", dataset: { id: t.id } },
      el("h1", { text: "综合查一次 · 联合检查工单" }),
      el("table", { class: "grid" }, el("tbody", {}, rows.map((r) => el("tr", {},
        el("th", { text: r[0] }), el("td", { text: r[1] }), el("th", { text: r[2] }), el("td", { text: r[3] }))))),
      el("h3", { text: "取证图像" }),
      el("div", { class: "imgs" },
        el("figure", {}, el("figcaption", { text: "无人机取证（处置前）" }), drone.length ? drone.map((u) => Z.img(u, "无人机取证图像", "evidence")) : el("p", { text: "无" })),
        el("figure", {}, el("figcaption", { text: "现场照片（处置后）" }), photos.length ? photos.slice(-2).map((e) => Z.img(e.data.url, "现场照片", "photo")) : el("p", { text: "无" }))),
      el("h3", { text: "联合检查清单" }),
      el("ul", {}, (t.checklist || []).map((c) => el("li", { text: "□ " + (c.text || c.id) + (c.departments ? `（${c.departments.map(dn).join("、")}）` : "") }))),
      el("h3", { text: "流转记录" }),
      el("table", { class: "grid" }, el("tbody", {}, t.events.map((e) => el("tr", {},
        el("td", { text: Z.datetime(e.at) }), el("td", { text: Z.actor(e) }),
        el("td", { text: Z.historyVerb(e, wf) + (e.comment ? "：" + e.comment : "") }))))),
      el("div", { class: "sign" }, el("div", { text: "承办人签字：" }), el("div", { text: "审核人签字：" }), el("div", { text: "日期：" })));
  }

  async function main() {
    await SG.ensureLogin();
    const ids = (new URLSearchParams(location.search).get("id") || "").split(",").map((x) => Number(x.trim())).filter((x) => x > 0);
    if (!ids.length) { Z.clear($("sheets")).appendChild(el("p", { class: "page msg-error", text: "请指定工单号（/print?id=12）" })); document.body.dataset.ready = "1"; return; }
    const [wf, depts] = await Promise.all([SG.api("/api/v1/workflow").catch(() => null), SG.api("/api/v1/departments").catch(() => ({ items: [] }))]);
    const W = {}; if (wf) for (const a of wf.actions) W[a.id] = a;
    const D = {}; for (const d of depts.items || []) D[d.id] = d.name;
    P.tickets = await Promise.all(ids.map((id) => SG.api(`/api/v1/tickets/${id}`)));
    const host = Z.clear($("sheets"));
    for (const t of P.tickets) host.appendChild(sheet(t, W, D));
    const imgs = [...document.querySelectorAll(".sheet img")];
    const t0 = Date.now();
    while (imgs.some((i) => !i.dataset.loaded) && Date.now() - t0 < 10000) await SG.sleep(100);
    document.title = `工单 #${ids.join("、#")} · 打印`;
    document.body.dataset.ready = "1";
  }
  $("do-print").addEventListener("click", () => window.print());
  main().catch((e) => { Z.clear($("sheets")).appendChild(el("p", { class: "page msg-error", text: "加载失败：" + e.message })); });
})();
