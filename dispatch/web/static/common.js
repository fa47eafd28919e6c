/* SkyGrid pages: safe DOM building, session cookie + CSRF, HTTP with retry, live stream (one-use tickets),
 * China map coordinates. No dependencies. Never build HTML from data (no innerHTML): use SG.h / SG.fill / SG.tip. */
"use strict";
(function (global) {
  const SG = {};

  // ---- safe DOM building: data only ever becomes text nodes and attribute values ----
  const URL_ATTRS = new Set(["href", "src", "action", "formaction", "xlink:href"]);
  /** Append children: strings become text nodes, arrays flatten, null/false skip. */
  SG.append = function (el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) SG.append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  };
  /** SG.h("li", {class, dataset, style: {}, onclick}, "text", child): never parses HTML;
   *  URL attributes refuse javascript:/data:. */
  SG.h = function (tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = String(v);
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else if (k === "dataset") { for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv); }
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else {
        const val = v === true ? "" : String(v);
        if (URL_ATTRS.has(k) && /^\s*(javascript|data|vbscript):/i.test(val)) continue;
        el.setAttribute(k, val);
      }
    }
    return SG.append(el, children);
  };
  /** Replace el's content with children (see SG.append). */
  SG.fill = function (el, ...children) { el.replaceChildren(); return SG.append(el, children); };
  /** Leaflet tooltip content as a node (a string would be parsed as HTML), one line per argument. */
  SG.tip = function (...lines) {
    const el = document.createElement("div");
    lines.forEach((l, i) => { if (i) el.appendChild(document.createElement("br")); SG.append(el, [l]); });
    return el;
  };

  // ---- session: an HttpOnly cookie set by the server; the page never keeps the token ----
  /** A ?token= / #token= in the address: removed at once, exchanged for the cookie by ensureLogin. */
  SG.takeUrlToken = function () {
    const url = new URL(window.location.href);
    const hash = new URLSearchParams(url.hash.replace(/^#/, ""));
    const t = url.searchParams.get("token") || hash.get("token");
    if (!t) return null;
    url.searchParams.delete("token");
    hash.delete("token");
    const h = hash.toString();
    window.history.replaceState(null, "", url.pathname + url.search + (h ? "#" + h : ""));
    return t;
  };
  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }
  SG.csrf = () => cookie("skygrid_csrf");
  /** Headers for a hand-made fetch (downloads): the session cookie goes by itself. */
  SG.authHeaders = () => ({ "X-CSRF-Token": SG.csrf() });

  /** Exchange a token for the session cookie (POST /api/v1/session). */
  SG.startSession = function (token) {
    return SG.api("/api/v1/session", { method: "POST", body: { token }, retries: 2 });
  };

  SG.logout = async function () {
    try { await SG.api("/api/v1/session", { method: "DELETE", retries: 1 }); } catch (e) { /* reload anyway */ }
    window.location.reload();
  };

  /** Show the login box; resolves once a token was accepted (the session cookie is set). */
  SG.login = function (message) {
    return new Promise((resolve) => {
      let box = document.getElementById("sg-login");
      if (!box) {
        box = SG.h("div", { id: "sg-login", class: "login" },
          SG.h("form", {}, SG.h("h2", {}, "登录 SkyGrid"), SG.h("p", { class: "msg" }),
            SG.h("input", { name: "token", type: "password", autocomplete: "current-password",
              placeholder: "访问令牌 (token)", required: true }),
            SG.h("button", { type: "submit" }, "登录")));
        document.body.appendChild(box);
      }
      const msg = box.querySelector(".msg");
      msg.textContent = message || "请输入访问令牌";
      box.style.display = "flex";
      box.querySelector("form").onsubmit = async (ev) => {
        ev.preventDefault();
        const input = box.querySelector("input");
        const t = input.value.trim();
        if (!t) return;
        try {
          const who = await SG.startSession(t);
          input.value = "";
          box.style.display = "none";
          SG.unlockAudio();
          resolve(who);
        } catch (e) {
          msg.textContent = e.status === 401 ? "令牌无效、已过期或已撤销" : ("登录失败：" + e.message);
        }
      };
    });
  };

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  SG.sleep = sleep;

  /** fetch JSON with the bearer token. Retries network errors and 5xx/429 with backoff
   *  (slow or flaky phone connections); 4xx come back at once as an Error with .status. */
  SG.api = async function (path, opts) {
    opts = opts || {};
    const retries = opts.retries === undefined ? 4 : opts.retries;
    const headers = Object.assign({}, opts.headers || {});
    const method = opts.method || "GET";
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRF-Token"] = SG.csrf();
    let body = opts.body;
    if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    let delay = 500;
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        res = await fetch(path, { method, headers, body, cache: "no-store", credentials: "same-origin" });
      } catch (e) {
        if (attempt >= retries) { const err = new Error("网络错误，请稍后重试"); err.status = 0; throw err; }
        SG.setNet && SG.setNet("重试中…");
        await sleep(delay); delay = Math.min(delay * 2, 8000);
        continue;
      }
      if ((res.status >= 500 || res.status === 429) && attempt < retries) {
        await sleep(delay); delay = Math.min(delay * 2, 8000);
        continue;
      }
      SG.setNet && SG.setNet("");
      const text = await res.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
      if (!res.ok) {
        const err = new Error(SG.errorText(data) || ("HTTP " + res.status));
        err.status = res.status; err.data = data;
        throw err;
      }
      return data;
    }
  };

  SG.errorText = function (data) {
    if (!data) return "";
    const d = data.detail !== undefined ? data.detail : (data.error || data.message);
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => (x.loc ? x.loc.join(".") + ": " : "") + x.msg).join("; ");
    if (d && typeof d === "object") return d.message || JSON.stringify(d);
    return data.message || "";
  };

  /** Ensure a session (a token from the address is exchanged first; login box on 401).
   *  Returns the drones snapshot (/api/v1/live/drones). */
  SG.ensureLogin = async function () {
    const fromUrl = SG.takeUrlToken();
    if (fromUrl) {
      try { await SG.startSession(fromUrl); } catch (e) { if (e.status !== 401) throw e; }
    }
    for (;;) {
      try {
        return await SG.api("/api/v1/live/drones", { retries: 6 });
      } catch (e) {
        if (e.status === 401) { await SG.login(fromUrl ? "令牌无效、已过期或已撤销，请重新输入" : ""); continue; }
        throw e;
      }
    }
  };

  // ---- live stream: WebSocket with resume (?after=), SSE fallback ----
  /** Open the live stream. onEvent(ev) gets every event (hello included); reconnects with
   *  the last outbox id so nothing is missed. opts.filters: {grid, tier, class_name, priority, topic}.
   *  Each (re)connect first asks for a single-use stream ticket: no token in the stream URL. */
  SG.live = function (onEvent, opts) {
    opts = opts || {};
    const state = { lastId: null, ws: null, es: null, closed: false, onStatus: opts.onStatus || function () {} };
    let delay = 500;
    function query(ticket) {
      const q = new URLSearchParams();
      q.set("ticket", ticket);
      const f = opts.filters || {};
      for (const k of Object.keys(f)) if (f[k]) q.set(k, f[k]);
      if (state.lastId !== null) q.set("after", String(state.lastId));
      if (opts.transport !== "sse") q.set("batch", "1"); // bursts arrive as one JSON-array frame
      return q.toString();
    }
    function handle(raw) {
      let ev;
      try { ev = JSON.parse(raw); } catch (e) { return; }
      if (Array.isArray(ev)) { for (const one of ev) handleOne(one); return; }
      handleOne(ev);
    }
    function handleOne(ev) {
      if (ev.topic === "hello" && state.lastId === null) state.lastId = ev.data.last_id;
      // resync: asked to replay too far back (or past the retention); resume from the head,
      // the page reloads its tickets from the REST API (its onEvent sees this event)
      if (ev.topic === "resync") state.lastId = ev.data.last_id;
      if (ev.id !== null && ev.id !== undefined) state.lastId = Math.max(state.lastId || 0, ev.id);
      if (ev.topic !== "ping") onEvent(ev);
    }
    function retry() {
      if (state.closed) return;
      state.onStatus("reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    }
    async function connect() {
      if (state.closed) return;
      let ticket;
      try {
        ticket = (await SG.api("/api/v1/live/tickets", { method: "POST", retries: 0 })).ticket;
      } catch (e) {
        if (e.status === 401) await SG.login("登录已失效，请重新输入令牌");
        retry();
        return;
      }
      if (opts.transport === "sse" || !("WebSocket" in window)) {
        const es = new EventSource("/api/v1/live/sse?" + query(ticket));
        state.es = es;
        es.addEventListener("hello", (m) => { delay = 500; state.onStatus("live"); handle(m.data); });
        es.onmessage = (m) => handle(m.data);
        es.addEventListener("revoked", () => { es.close(); retry(); });
        es.onerror = () => { es.close(); retry(); };
        return;
      }
      const proto = window.location.protocol === "https:" ? "wss://" : "ws://";
      const ws = new WebSocket(proto + window.location.host + "/api/v1/live/ws?" + query(ticket));
      state.ws = ws;
      ws.onopen = () => { delay = 500; state.onStatus("live"); };
      ws.onmessage = (m) => handle(m.data);
      ws.onclose = () => retry();
      ws.onerror = () => { /* onclose follows */ };
    }
    connect();
    state.close = () => { state.closed = true; if (state.ws) state.ws.close(); if (state.es) state.es.close(); };
    return state;
  };

  // ---- China map coordinates (ported from geo/crs.py, forward formulas) ----
  const A = 6378245.0, EE = 0.00669342162296594323, X_PI = Math.PI * 3000.0 / 180.0;
  function inChina(lon, lat) { return lon > 72.004 && lon < 137.8347 && lat > 0.8293 && lat < 55.8271; }
  function tLat(x, y) {
    let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin(y / 3.0 * Math.PI)) * 2.0 / 3.0;
    r += (160.0 * Math.sin(y / 12.0 * Math.PI) + 320 * Math.sin(y * Math.PI / 30.0)) * 2.0 / 3.0;
    return r;
  }
  function tLon(x, y) {
    let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin(x / 3.0 * Math.PI)) * 2.0 / 3.0;
    r += (150.0 * Math.sin(x / 12.0 * Math.PI) + 300.0 * Math.sin(x / 30.0 * Math.PI)) * 2.0 / 3.0;
    return r;
  }
  /** WGS-84 -> GCJ-02, [lon, lat] degrees. */
  SG.wgs84ToGcj02 = function (lon, lat) {
    if (!inChina(lon, lat)) return [lon, lat];
    let dLat = tLat(lon - 105.0, lat - 35.0), dLon = tLon(lon - 105.0, lat - 35.0);
    const rad = lat / 180.0 * Math.PI;
    const magic = 1 - EE * Math.sin(rad) * Math.sin(rad), sq = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((A * (1 - EE)) / (magic * sq) * Math.PI);
    dLon = (dLon * 180.0) / (A / sq * Math.cos(rad) * Math.PI);
    return [lon + dLon, lat + dLat];
  };
  /** GCJ-02 -> BD-09, [lon, lat] degrees. */
  SG.gcj02ToBd09 = function (lon, lat) {
    const z = Math.sqrt(lon * lon + lat * lat) + 0.00002 * Math.sin(lat * X_PI);
    const th = Math.atan2(lat, lon) + 0.000003 * Math.cos(lon * X_PI);
    return [z * Math.cos(th) + 0.0065, z * Math.sin(th) + 0.006];
  };
  SG.displayCrs = "wgs84";
  /** WGS-84 (lat, lon) -> Leaflet [lat, lng] in the basemap's CRS (SG.displayCrs). */
  SG.ll = function (lat, lon) {
    if (SG.displayCrs === "gcj02") { const p = SG.wgs84ToGcj02(lon, lat); return [p[1], p[0]]; }
    if (SG.displayCrs === "bd09") { const g = SG.wgs84ToGcj02(lon, lat); const p = SG.gcj02ToBd09(g[0], g[1]); return [p[1], p[0]]; }
    return [lat, lon];
  };

  // ---- labels and formatting ----
  SG.CLASS = {
    hazmat_fire: { label: "危化品车辆火情", color: "#e01e1e" },
    straw_burning: { label: "秸秆焚烧", color: "#f28c18" },
    illegal_dumping: { label: "偷倒垃圾", color: "#8d5a2b" },
    illegal_structure: { label: "违章建筑", color: "#7b3fbf" },
  };
  SG.classLabel = (t) => t.class_label || (SG.CLASS[t.class_name] || {}).label || t.class_name;
  SG.classColor = (c) => (SG.CLASS[c] || {}).color || "#2a6fdb";
  SG.TIER = { village: "村级", town: "镇街", district: "区级" };
  SG.OPEN = (t) => !["closed", "rejected", "duplicate"].includes(t.status);
  /** SLA text for a ticket: "剩余 mm:ss" / "超时 mm:ss" and whether it is overdue. */
  SG.sla = function (t, nowMs) {
    const due = t.sla && t.sla.due_at ? Date.parse(t.sla.due_at) : NaN;
    if (!SG.OPEN(t) || isNaN(due)) return { text: t.overdue ? "已超时" : "—", overdue: !!t.overdue && SG.OPEN(t) };
    const left = Math.round((due - nowMs) / 1000);
    const a = Math.abs(left), h = Math.floor(a / 3600), m = Math.floor((a % 3600) / 60), s = a % 60;
    const mmss = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
    return left >= 0 && !t.overdue ? { text: "剩余 " + mmss, overdue: false }
      : { text: "超时 " + (left < 0 ? mmss : ""), overdue: true };
  };
  SG.time = (iso) => { if (!iso) return ""; const d = new Date(iso); return d.toLocaleTimeString("zh-CN", { hour12: false }); };

  // ---- sound: a Web Audio beep (no asset), unlocked by the first user gesture ----
  SG.beeps = 0;
  SG.unlockAudio = function () {
    try {
      if (!SG._audio) SG._audio = new (window.AudioContext || window.webkitAudioContext)();
      if (SG._audio.state === "suspended") SG._audio.resume();
    } catch (e) { /* no audio */ }
  };
  document.addEventListener("pointerdown", SG.unlockAudio, { once: false, passive: true });
  SG.beep = function (times) {
    SG.beeps += 1;
    try {
      SG.unlockAudio();
      const ctx = SG._audio; if (!ctx) return;
      for (let i = 0; i < (times || 3); i++) {
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.type = "square"; o.frequency.value = i % 2 ? 660 : 880;
        g.gain.value = 0.15;
        o.connect(g); g.connect(ctx.destination);
        const t0 = ctx.currentTime + i * 0.35;
        o.start(t0); o.stop(t0 + 0.25);
      }
    } catch (e) { /* audio unavailable: the flashing banner still shows */ }
  };

  global.SG = SG;
})(window);
