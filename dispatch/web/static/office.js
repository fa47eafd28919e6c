/* County-office helpers shared by the command room, statistics, print, replay and worker pages:
 * Chinese labels (flight modes, flight events, ticket history, API error codes), DOM building
 * (textContent only, no HTML strings), authenticated images and downloads, per-priority alarm
 * sounds made with WebAudio, and SVG bar charts. Loaded after common.js. No dependencies. */
"use strict";
(function (global) {
  const SG = global.SG;
  const Z = {};

  // ---------- DOM ----------
  /** el("div", {class: "x", text: "...", onclick: fn, dataset: {id: 1}}, child, ...) */
  Z.el = function (tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.className = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
      else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };
  Z.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); return node; };
  const SVGNS = "http://www.w3.org/2000/svg";
  Z.svg = function (tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = String(v); else if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c) e.appendChild(c);
    return e;
  };

  // ---------- Chinese labels ----------
  Z.FLIGHT_MODE = {
    MISSION: "航线任务", HOLD: "悬停", LOITER: "悬停", RETURN_TO_LAUNCH: "返航", RTL: "返航", LAND: "降落",
    TAKEOFF: "起飞", OFFBOARD: "外部控制", MANUAL: "手动", POSCTL: "定点", POSITION: "定点", ALTCTL: "定高",
    ALTITUDE: "定高", STABILIZED: "自稳", ACRO: "特技", READY: "待命", FOLLOW_ME: "跟随", PRECISION_LAND: "精准降落",
    UNKNOWN: "未知",
  };
  Z.flightMode = (m) => Z.FLIGHT_MODE[String(m || "UNKNOWN").toUpperCase()] || "其他模式";
  // the same tables as flight/zh.py (tests/flight/test_zh.py keeps them in step)
  Z.FLIGHT_EVENT = {
    connected: "已连接", connect_failed: "连接失败", preflight_ok: "起飞前检查通过",
    preflight_failed: "起飞前检查未通过", geofence_uploaded: "电子围栏已上传", geofence_failed: "电子围栏上传失败",
    geofence_missing: "无电子围栏飞行", mission_uploaded: "航线已上传", upload_failed: "航线上传失败",
    sortie_start: "架次开始", armed: "电机已解锁", start_failed: "起飞失败", mission_started: "开始执行航线",
    item_reached: "到达航点", mission_complete: "航线完成，返航中", low_battery: "电量低，返航",
    failsafe: "触发失控保护", landed: "已降落", sortie_done: "架次结束", sortie_failed: "架次失败",
    rtl: "返航", rtl_failed: "返航指令被拒绝", command: "收到指挥室指令", hold: "按指挥室指令悬停",
    command_ignored: "指令未执行", command_failed: "指令执行失败", link_lost: "数据链中断",
    link_waiting: "等待数据链", link_timeout: "数据链超时，放弃本架次", link_restored: "数据链恢复",
    resume_planned: "已规划续飞", resumed: "已续飞", resume_failed: "续飞失败", turnaround: "降落换电",
    battery_ready: "电池已更换", battery_not_swapped: "电池未更换", replanned: "剩余航线已重新规划",
    replan_refused: "无法重新规划剩余航线", drone_done: "本机任务结束",
  };
  /** A flight event in Chinese: its kind's label plus the figures worth showing (as flight.zh.event_zh:
   * waypoints 1-based, battery in %, outage in s). Machine codes stay English in the API. */
  Z.flightEvent = function (ev) {
    const k = ev.kind || "";
    const d = ev.data || {};
    const num = (key) => (typeof d[key] === "number" && isFinite(d[key]) ? d[key] : null);
    let s = Z.FLIGHT_EVENT[k] || "飞行事件";
    if (k === "item_reached") {
      const item = num("item") !== null ? num("item") : (typeof ev.item === "number" ? ev.item : null);
      if (item !== null) s += " " + (item + 1) + (num("total") !== null ? "/" + num("total") : "");
    } else if (["low_battery", "preflight_ok", "battery_ready", "battery_not_swapped"].includes(k) && num("battery_pct") !== null) {
      s += "（电量 " + Math.round(num("battery_pct")) + "%）";
    } else if ((k === "resumed" || k === "resume_planned") && num("from_index") !== null) {
      s += "（自航点 " + (num("from_index") + 1) + "）";
    } else if (k === "mission_started" && num("start_index")) {
      s += "（自航点 " + (num("start_index") + 1) + "）";
    } else if (k === "link_restored" && num("outage_s") !== null) {
      s += "（中断 " + num("outage_s").toFixed(1) + " 秒）";
    } else if ((k === "command" || k === "command_failed") && d.action) {
      s += "：" + (Z.COMMAND[d.action] || "其他指令");
    } else if (k === "failsafe" && d.mode) {
      s += "：" + Z.flightMode(d.mode);
    } else if (k === "turnaround" && d.next_sortie) {
      s += "，下一架次 " + d.next_sortie;
    } else if (k === "preflight_failed" && Array.isArray(d.problems_zh) && d.problems_zh.length) {
      s += "：" + d.problems_zh.map(String).join("；");
    } else if (k === "preflight_failed" && Array.isArray(d.problems)) {
      s += "（" + d.problems.length + " 项）";
    }
    return s;
  };
  /** A flight event's text for a page: its message when already Chinese, else the kind's label. */
  Z.flightEventText = function (ev) {
    return /[\u4e00-\u9fff]/.test(ev.message || "") ? ev.message : Z.flightEvent(ev);
  };
  Z.COMMAND = { rtl: "返航", hold: "悬停", resume: "继续任务", land: "降落" };
  Z.STAGE = { sign: "签收", dispatch: "派单", on_site: "到场", handle: "处置", supervise: "督办考核" };
  Z.TICKET_EVENT = {
    created: "发现并立案", incident_merged: "再次发现（已合并）", comment: "备注", photo: "上传现场照片",
    escalated: "超时升级", overdue: "超时督办",
  };
  Z.ROLE = { dispatcher: "指挥员", department: "部门", grid_worker: "网格员", operator: "飞手", viewer: "值班", system: "系统" };
  Z.TIER = { village: "村级", town: "镇街", district: "区级" };
  Z.STATUS = { accepted: "受理", analyzing: "分析", routed: "流转", handling: "处置", supervising: "督办",
    closed: "考核办结", rejected: "不予受理", duplicate: "重复件" };
  /** Who did it: "网格员 王网格", or just the role when the name repeats it. */
  Z.actor = function (e) {
    const r = Z.ROLE[e.actor_role] || "";
    if (!e.actor || e.actor === "system" || e.actor === r) return r;
    return (r ? r + " " : "") + e.actor;
  };
  /** One history line's verb: the workflow action's label, else the event kind's. */
  Z.historyVerb = function (e, workflow) {
    if (e.kind === "transition") return (workflow && workflow[e.action] && workflow[e.action].label) || "流转";
    return Z.TICKET_EVENT[e.kind] || "记录";
  };

  // ---------- API errors in Chinese ----------
  Z.ERROR = {
    photo_required: "请先上传现场照片，再提交处置完毕",
    score_required: "请填写考核得分（0–100 分）",
    duplicate_of_required: "请选择与本工单重复的工单",
    duplicate_of_self: "不能标记为与自身重复",
    duplicate_of_unknown: "所选的重复工单不存在",
    illegal_transition: "工单状态已变化，当前不能执行此操作，请刷新后再试",
    role_not_allowed: "您的角色无权执行此操作",
    unknown_department: "所选部门不存在",
    unknown_action: "未知操作",
    flightlog_invalid: "文件不是可读取的飞行日志（skygrid.flightlog/1）",
    flightlog_empty: "飞行日志中没有位置记录",
  };
  Z.STATUS_ERROR = {
    0: "网络错误，请稍后重试", 400: "请求有误", 401: "登录已失效，请重新登录", 403: "无权访问该数据或执行该操作",
    404: "未找到该记录", 409: "操作与当前状态冲突，请刷新后再试", 413: "文件过大", 415: "文件格式不支持（仅限 JPEG/PNG 图片）",
    422: "填写内容有误，请检查", 429: "操作过于频繁，请稍后再试",
  };
  Z.FIELD = { "body.score": "考核得分", "body.duplicate_of": "重复工单", "body.deadline": "办理时限",
    "body.department": "承办部门", "body.assignee": "承办人", "body.comment": "说明", "body.instructions": "处置要求",
    "form.file": "照片", "query.q": "搜索", "query.since": "开始时间", "query.until": "结束时间" };
  /** Chinese text for an error answer (data = JSON body, status = HTTP status). */
  Z.errorText = function (data, status) {
    if (data && data.code && Z.ERROR[data.code]) return Z.ERROR[data.code];
    if (data && typeof data.detail_zh === "string" && data.detail_zh) return data.detail_zh;  // specifics (grid, coordinate)
    let base = Z.STATUS_ERROR[status] || (status >= 500 ? "服务器暂时无法处理，请稍后重试" : "操作未成功");
    let field = data && data.field;
    if (!field && data && Array.isArray(data.detail) && data.detail[0] && data.detail[0].loc) field = data.detail[0].loc.join(".");
    if (field && Z.FIELD[field]) base += "（" + Z.FIELD[field] + "）";
    return base;
  };
  if (SG) {  // every SG.api error message in Chinese: map the code, else the HTTP status
    SG.errorText = function (data) { return Z.errorText(data, data && data._status); };
    const api = SG.api;
    SG.api = async function (path, opts) {
      try { return await api(path, opts); } catch (e) {
        if (e && typeof e.status === "number") e.message = Z.errorText(e.data, e.status);
        throw e;
      }
    };
  }

  // ---------- authenticated bytes (images, downloads) ----------
  function authHeaders() {
    const h = {};
    const t = SG && typeof SG.token === "function" ? SG.token() : null;
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }
  /** GET a protected URL as a Blob (session cookie or bearer token, whichever the page uses). */
  Z.blob = async function (url) {
    const res = await fetch(url, { headers: authHeaders(), credentials: "same-origin", cache: "no-store" });
    if (!res.ok) { const err = new Error(Z.errorText(null, res.status)); err.status = res.status; throw err; }
    return res.blob();
  };
  /** An <img> for a protected evidence URL; resolves img.dataset.loaded = "1" when drawn. */
  Z.img = function (url, alt, cls) {
    const img = Z.el("img", { alt: alt || "图像", class: cls || "evidence" });
    img.dataset.src = url;
    Z.blob(url).then((b) => {
      img.onload = () => { img.dataset.loaded = "1"; };
      img.src = URL.createObjectURL(b);
    }).catch(() => { img.alt = "图像加载失败"; img.dataset.loaded = "error"; });
    return img;
  };
  /** Download a protected URL under ``name`` (CSV/Excel export). */
  Z.download = async function (url, name) {
    const b = await Z.blob(url);
    const a = Z.el("a", { href: URL.createObjectURL(b), download: name });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 30000);
    return b;
  };

  // ---------- alarm sounds per priority (WebAudio, nothing downloaded) ----------
  /** Tone patterns: [frequency Hz, start s, length s]; P0 a two-tone siren, lower tiers fewer, lower beeps. */
  Z.SOUND = {
    0: [[880, 0, .22], [660, .25, .22], [880, .5, .22], [660, .75, .22], [880, 1, .22], [660, 1.25, .22]],
    1: [[740, 0, .18], [740, .28, .18]],
    2: [[587, 0, .2]],
    3: [[440, 0, .15]],
  };
  Z.sounds = [];  // priorities played, for tests
  Z.audioReady = function () { return !!(SG && SG._audio && SG._audio.state === "running"); };
  Z.alarm = function (priority) {
    const p = Math.max(0, Math.min(3, Number(priority) || 0));
    Z.sounds.push(p);
    if (SG) SG.beeps = (SG.beeps || 0) + 1;
    try {
      if (SG) SG.unlockAudio();
      const ctx = SG && SG._audio; if (!ctx) return;
      for (const [f, t, len] of Z.SOUND[p]) {
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.type = p === 0 ? "square" : "sine"; o.frequency.value = f;
        g.gain.value = p === 0 ? 0.15 : 0.2;
        o.connect(g); g.connect(ctx.destination);
        o.start(ctx.currentTime + t); o.stop(ctx.currentTime + t + len);
      }
    } catch (e) { /* no audio: the banner still shows */ }
  };
  /** A visible "click to enable sound" button while the browser keeps audio locked. */
  Z.soundPrompt = function (host) {
    const b = Z.el("button", { type: "button", id: "sound-enable", class: "sound-enable", text: "🔔 点击启用提示音" });
    b.addEventListener("click", () => {
      if (SG) SG.unlockAudio();
      setTimeout(update, 50);
    });
    function update() { b.hidden = Z.audioReady(); }
    host.appendChild(b);
    document.addEventListener("pointerdown", () => setTimeout(update, 50));
    update();
    return b;
  };

  // ---------- charts (SVG) ----------
  /** Horizontal grouped bar chart. spec: {title, labels[], series: [{name, color, values[]}],
   *  max (default: data max), fmt(v) -> text, unit}. Returns an <svg> (class "chart"). */
  Z.barChart = function (spec) {
    const labels = spec.labels || [], series = spec.series || [];
    const rowH = 14 * series.length + 8, left = 130, right = 60, top = 26, width = spec.width || 520;
    const height = top + Math.max(1, labels.length) * rowH + 22;
    const vals = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    const max = spec.max || Math.max(1e-9, ...vals);
    const fmt = spec.fmt || ((v) => String(v));
    const w = width - left - right;
    const svg = Z.svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": spec.title || "" });
    svg.appendChild(Z.svg("text", { x: 4, y: 16, class: "chart-title", text: spec.title || "" }));
    labels.forEach((lab, i) => {
      const y0 = top + i * rowH;
      svg.appendChild(Z.svg("text", { x: left - 6, y: y0 + rowH / 2 + 4, "text-anchor": "end", class: "chart-label",
        text: String(lab).length > 10 ? String(lab).slice(0, 10) + "…" : lab }));
      series.forEach((s, k) => {
        const v = s.values[i];
        const y = y0 + 4 + k * 14;
        const bw = v === null || v === undefined ? 0 : Math.max(1, (v / max) * w);
        const r = Z.svg("rect", { x: left, y, width: bw, height: 11, fill: s.color || "#1f6feb", class: "bar" });
        r.appendChild(Z.svg("title", { text: `${lab} · ${s.name}：${v === null || v === undefined ? "无数据" : fmt(v)}` }));
        svg.appendChild(r);
        svg.appendChild(Z.svg("text", { x: left + bw + 4, y: y + 10, class: "chart-value",
          text: v === null || v === undefined ? "—" : fmt(v) }));
      });
    });
    svg.appendChild(Z.svg("line", { x1: left, y1: top - 2, x2: left, y2: height - 20, stroke: "#8593a3" }));
    let lx = left;
    for (const s of series) {  // legend
      svg.appendChild(Z.svg("rect", { x: lx, y: height - 14, width: 10, height: 10, fill: s.color || "#1f6feb" }));
      svg.appendChild(Z.svg("text", { x: lx + 14, y: height - 5, class: "chart-label", text: s.name }));
      lx += 20 + 13 * s.name.length;
    }
    return svg;
  };

  /** Seconds as Chinese duration text: "45 秒", "3 分 20 秒", "2 小时 5 分", "1 天 3 小时". */
  Z.duration = function (s) {
    if (s === null || s === undefined || isNaN(s)) return "—";
    s = Math.round(s);
    if (s < 60) return s + " 秒";
    if (s < 3600) return Math.floor(s / 60) + " 分" + (s % 60 ? " " + (s % 60) + " 秒" : "");
    if (s < 86400) return Math.floor(s / 3600) + " 小时" + (Math.floor((s % 3600) / 60) ? " " + Math.floor((s % 3600) / 60) + " 分" : "");
    return Math.floor(s / 86400) + " 天" + (Math.floor((s % 86400) / 3600) ? " " + Math.floor((s % 86400) / 3600) + " 小时" : "");
  };
  /** ISO time as local "MM-DD HH:MM:SS". */
  Z.datetime = function (iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };

  global.SGZ = Z;
})(window);
