/* Grid worker's phone page: open tickets in my grids, navigate, accept, arrive, photo + note,
 * resolve or send back. No map library; small JSON; every call retried on a flaky network. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const h = SG.h;
  const W = { tickets: new Map(), me: null, workflow: {}, grids: {} };
  window.SGWORKER = W;
  SG.setNet = (s) => { $("net").textContent = s; };
  function toast(msg, ms) {
    const t = $("toast"); t.textContent = msg; t.style.display = "block";
    clearTimeout(toast._t); toast._t = setTimeout(() => { t.style.display = "none"; }, ms || 3000);
  }

  /** Navigation links: AMap (GCJ-02, what Gaode expects) and a standard geo: URI (WGS-84). */
  function navLinks(t) {
    const g = SG.wgs84ToGcj02(t.lon, t.lat);
    const name = encodeURIComponent(`${SG.classLabel(t)} #${t.id}`);
    const amap = `https://uri.amap.com/marker?position=${g[0].toFixed(6)},${g[1].toFixed(6)}&name=${name}&coordinate=gaode&callnative=1`;
    const geo = `geo:${t.lat.toFixed(6)},${t.lon.toFixed(6)}?q=${t.lat.toFixed(6)},${t.lon.toFixed(6)}(${name})`;
    return { amap, geo };
  }

  function can(t, action) {
    const a = W.workflow[action];
    return (t.allowed_actions || []).includes(action) && (!a || !W.me || a.roles.includes(W.me.role));
  }

  function render() {
    const a = document.activeElement;
    if (a && a.closest && a.closest("#list") && (a.tagName === "TEXTAREA" || a.tagName === "INPUT")) {
      W.dirty = true; return; // do not wipe what the worker is typing; re-render on blur
    }
    W.dirty = false;
    const now = Date.now();
    const list = [...W.tickets.values()].filter(SG.OPEN).sort((a, b) => (a.priority - b.priority) || (a.id - b.id));
    if (!list.length) { SG.fill($("list"), h("p", { class: "note" }, "当前没有待处理的工单。")); return; }
    SG.fill($("list"), list.map((t) => {
      const s = SG.sla(t, now), nav = navLinks(t);
      const early = ["accepted", "analyzing", "routed"].includes(t.status);
      return h("div", { class: "tcard" + (s.overdue ? " overdue" : ""), dataset: { id: t.id },
        style: { borderLeftColor: s.overdue ? "#d62828" : SG.classColor(t.class_name) } },
        h("h3", {}, SG.classLabel(t) + " ", h("span", { class: "badge p" + t.priority }, t.priority_label || "P" + t.priority)),
        h("div", {}, `工单 #${t.id} · `, h("b", { class: "status" }, t.status_label || t.status), " · ",
          h("span", { dataset: { sla: t.id }, class: s.overdue ? "msg-error" : "" }, s.text)),
        h("div", { class: "note" }, `${t.grid_name || t.grid_id} · 误差 ±${Math.round(t.error_m || 0)} m · ${SG.time(t.created_at)}`),
        h("div", { class: "note" }, "检查：" + (t.checklist || []).map((c) => c.text || c.id).join("；")),
        h("div", { class: "row" },
          h("a", { class: "btn nav-amap", href: nav.amap, target: "_blank", rel: "noopener" }, "高德导航"),
          h("a", { class: "btn nav-geo", href: nav.geo }, "地图应用")),
        h("div", { class: "row" },
          early ? h("button", { type: "button", dataset: { do: "accept" } }, "接单") : null,
          can(t, "arrive") ? h("button", { type: "button", class: "primary", dataset: { do: "arrive" } }, "到场") : null,
          can(t, "resolve") ? h("button", { type: "button", class: "primary", dataset: { do: "resolve" } }, "处置完毕") : null,
          h("button", { type: "button", dataset: { do: "send_back" } }, "退回")),
        h("div", { class: "row" },
          h("textarea", { placeholder: "现场情况备注", dataset: { note: t.id } }),
          h("input", { type: "file", accept: "image/*", capture: "environment", class: "photo-input", dataset: { photo: t.id } }),
          h("button", { type: "button", dataset: { do: "report" } }, "提交照片/备注")));
    }));
    for (const t of list) addEvidence(t);
  }

  /** The drone's evidence image and a small map (the grid outline, the spot and its error
   *  circle, drawn as SVG: no map library, no tiles) under each card, built from DOM nodes. */
  function addEvidence(t) {
    const card = document.querySelector(`.tcard[data-id="${t.id}"]`); if (!card) return;
    const Z = window.SGZ, el = Z.el;
    const img = t.evidence_url ? Z.img(t.evidence_url, "无人机取证图像", "evidence") : el("p", { class: "note", text: "无取证图像" });
    if (img.tagName === "IMG") img.loading = "lazy";
    const box = el("div", { class: "evid" },
      el("figure", {}, el("figcaption", { text: "无人机取证" }), img),
      el("figure", {}, el("figcaption", { text: "位置示意" }), miniMap(t)));
    card.insertBefore(box, card.querySelector(".row"));
  }
  function miniMap(t) {
    const Z = window.SGZ;
    const f = W.grids[t.grid_id];
    const pts = [];
    const rings = [];
    if (f && f.geometry) {
      const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.type === "MultiPolygon" ? f.geometry.coordinates : [];
      for (const p of polys) { rings.push(p[0]); pts.push(...p[0]); }
    }
    pts.push([t.lon, t.lat]);
    const k = Math.cos(t.lat * Math.PI / 180);  // metres east per degree shrink with latitude
    const xs = pts.map((p) => p[0] * k), ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const span = Math.max(x1 - x0, y1 - y0, 0.002), W0 = 200, H0 = 130, pad = 8;
    const sc = Math.min((W0 - 2 * pad) / Math.max(x1 - x0, 1e-9), (H0 - 2 * pad) / Math.max(y1 - y0, 1e-9), (W0 - 2 * pad) / span);
    const X = (lon) => pad + (lon * k - x0) * sc + ((W0 - 2 * pad) - (x1 - x0) * sc) / 2;
    const Y = (lat) => H0 - pad - (lat - y0) * sc - ((H0 - 2 * pad) - (y1 - y0) * sc) / 2;
    const svg = Z.svg("svg", { viewBox: `0 0 ${W0} ${H0}`, class: "minimap", role: "img", "aria-label": "位置示意图" });
    for (const r of rings) svg.appendChild(Z.svg("polygon", { points: r.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" "), fill: "#7fa7d1", "fill-opacity": 0.25, stroke: "#2b4a6b", "stroke-width": 1.2 }));
    const rPx = Math.max(3, ((t.error_m || 0) / 111320) * sc);
    svg.appendChild(Z.svg("circle", { cx: X(t.lon), cy: Y(t.lat), r: rPx, fill: SG.classColor(t.class_name), "fill-opacity": 0.25, stroke: SG.classColor(t.class_name) }));
    svg.appendChild(Z.svg("circle", { cx: X(t.lon), cy: Y(t.lat), r: 4, fill: "#d62828", stroke: "#fff", "stroke-width": 1.5, class: "spot" }));
    svg.appendChild(Z.svg("text", { x: 4, y: 12, "font-size": 10, fill: "#2b4a6b", text: (f && f.properties && f.properties.name) || t.grid_id }));
    return svg;
  }

  async function act(t, action, comment) {
    const out = await SG.api(`/api/v1/tickets/${t.id}/actions`, { method: "POST", body: { action, comment: comment || null }, retries: 5 });
    W.tickets.set(out.id, out);
  }
  async function comment(t, text) {
    await SG.api(`/api/v1/tickets/${t.id}/comments`, { method: "POST", body: { text }, retries: 5 });
  }
  /** Shrink a phone photo to <= 1280 px JPEG (a few hundred KB) before upload. */
  function shrink(file) {
    return new Promise((resolve) => {
      const img = new Image(), url = URL.createObjectURL(file);
      img.onload = () => {
        const k = Math.min(1, 1280 / Math.max(img.width, img.height));
        const c = document.createElement("canvas");
        c.width = Math.round(img.width * k); c.height = Math.round(img.height * k);
        c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
        URL.revokeObjectURL(url);
        c.toBlob((b) => resolve(b || file), "image/jpeg", 0.72);
      };
      img.onerror = () => { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  }
  async function report(t, card) {
    const note = card.querySelector(`[data-note="${t.id}"]`).value.trim();
    const input = card.querySelector(`[data-photo="${t.id}"]`);
    const file = input.files && input.files[0];
    if (!note && !file) { toast("请拍照或填写备注"); return; }
    if (file) {
      const fd = new FormData();
      fd.append("file", await shrink(file), "photo.jpg");
      if (note) fd.append("caption", note);
      await SG.api(`/api/v1/tickets/${t.id}/photos`, { method: "POST", body: fd, retries: 5 });
    } else {
      await comment(t, note);
    }
    toast("已提交");
  }

  $("list").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-do]"); if (!b) return;
    const card = b.closest("[data-id]"); const t = W.tickets.get(Number(card.dataset.id)); if (!t) return;
    const what = b.dataset.do;
    b.disabled = true;
    try {
      if (what === "accept") {
        if (can(t, "claim")) await act(t, "claim", "网格员已接单，正在前往现场");
        else await comment(t, "网格员已接单，正在前往现场");
        toast("已接单");
      }
      else if (what === "arrive") { await act(t, "arrive", "网格员到场"); toast("已到场"); }
      else if (what === "resolve") {
        const note = card.querySelector(`[data-note="${t.id}"]`).value.trim();
        const input = card.querySelector(`[data-photo="${t.id}"]`);
        const file = input.files && input.files[0];
        if (file && (W.workflow.resolve || {}).requires && W.workflow.resolve.requires.includes("photo")) {
          const fd = new FormData();  // the rules want a photo: the chosen one goes up first
          fd.append("file", await shrink(file), "photo.jpg");
          if (note) fd.append("caption", note);
          await SG.api(`/api/v1/tickets/${t.id}/photos`, { method: "POST", body: fd, retries: 5 });
          input.value = "";
        }
        await act(t, "resolve", note || "网格员现场处置完毕"); toast("已提交处置结果");
      } else if (what === "send_back") {
        const why = window.prompt("退回原因（如：非本网格、需部门处置）"); if (why === null) { b.disabled = false; return; }
        if (can(t, "return")) await act(t, "return", why || "需指挥室重新派单");
        else await comment(t, "【网格员退回】" + (why || "需指挥室重新派单"));
        toast("已退回指挥室");
      } else if (what === "report") { await report(t, card); }
      render();
    } catch (e) {
      toast("失败：" + e.message, 5000);
      b.disabled = false;
    }
  });

  async function load() {
    const page = await SG.api("/api/v1/tickets?status=accepted,analyzing,routed,handling,supervising&limit=100", { retries: 6 });
    W.tickets.clear();
    for (const t of page.items || []) W.tickets.set(t.id, t);
    render();
  }
  $("list").addEventListener("focusout", () => setTimeout(() => { if (W.dirty) render(); }, 0));
  $("refresh").onclick = () => load().catch((e) => toast(e.message));

  async function main() {
    await SG.ensureLogin();
    const [me, wf, grids] = await Promise.all([SG.api("/api/v1/me"), SG.api("/api/v1/workflow").catch(() => null),
      SG.api("/api/v1/grids?format=geojson").catch(() => null)]);
    for (const f of (grids && grids.features) || []) W.grids[f.id] = f;
    W.me = me;
    if (wf) for (const a of wf.actions) W.workflow[a.id] = a;
    $("who").textContent = `${me.name}（${SGZ.ROLE[me.role] || "用户"}）· 网格 ${(me.grid_ids || ["全部"]).join("、")}`;
    await load();
    // SSE: one long HTTP response, light on a phone; the server confines it to my grids.
    W.live = SG.live((ev) => {
      if (ev.topic === "resync") { load(); return; } // replay refused: reload my tickets
      if (!ev.topic.startsWith("ticket.")) return;
      W.tickets.set(ev.data.id, ev.data); render();
    }, { transport: "sse", filters: { topic: "ticket" },
      onStatus: (s) => { $("live-dot").className = "status-dot " + s; } });
    setInterval(() => {
      const now = Date.now();
      for (const el of document.querySelectorAll("[data-sla]")) {
        const t = W.tickets.get(Number(el.dataset.sla)); if (t) { const s = SG.sla(t, now); el.textContent = s.text; el.className = s.overdue ? "msg-error" : ""; }
      }
    }, 1000);
    document.body.dataset.ready = "1";
  }
  main().catch((e) => toast("启动失败：" + e.message, 10000));
})();
