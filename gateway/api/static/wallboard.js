// The seatlink wallboard (issue 6): seats in their desk-light colours, the queues against
// the seeds' targets and the open alerts, live from the API's WebSocket feed.
//
// Plain ES2020, no build step, nothing loaded from elsewhere. Every text from the server is
// set with textContent, never parsed as HTML. The token is kept in sessionStorage only.
"use strict";

(() => {
  const TOKEN_KEY = "seatlink.wallboard.token";
  const RECONNECT_MS = [500, 30000]; // first and longest wait before reopening the feed

  // What the day's figures are held against: the seeds' defaults as in
  // gateway/core/report.py (Targets), until the feed's snapshot brings the site's own
  // (the core's [targets], docs/core.md).
  const TARGETS = {
    ring_limit: 3, // rings
    within_ring_limit: 1.0, // share answered within ring_limit: every call
    service_level: 0.8, // answered within 20 s
    avg_talk_s: 180,
    max_hold_s: 30, // no single hold over 30 s: the longest one is judged, as report.py does
    avg_acw_s: 60,
    sl_threshold_s: 20,
  };

  const STATE_LABEL = {
    logged_out: "Logged out",
    ready: "Ready",
    not_ready: "Not ready",
    ringing: "Ringing",
    talking: "Talking",
    hold: "On hold",
    acw: "After-call work",
  };

  const $ = (id) => document.getElementById(id);

  const model = {
    token: null,
    seats: new Map(), // seat id -> seat (API Seat) plus `_base`, `_at` for the local clock
    kpis: {}, // scope -> key -> KpiLive
    alerts: { alerts: [], more: 0 },
  };

  let ws = null;
  let wsWanted = false; // false after logout / a refusal: a close is then not retried
  let retryMs = RECONNECT_MS[0];
  let retryTimer = null;

  // --- small helpers ---------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k.startsWith("data-")) node.setAttribute(k, String(v));
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function show(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  function detailOf(body, fallback) {
    // FastAPI errors: {"detail": "..."} or, for a 422, {"detail": [{"loc", "msg"}, ...]}
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail
        .map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`)
        .join("; ");
    }
    return fallback;
  }

  async function api(method, path, { json, form, auth = true } = {}) {
    const headers = { Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = new URLSearchParams(form);
    }
    if (auth && model.token) headers.Authorization = `Bearer ${model.token}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch (err) {
      return { ok: false, status: 0, body: null, message: `the API is unreachable (${err.message})` };
    }
    let parsed = null;
    const text = await response.text();
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (_) {
        parsed = null;
      }
    }
    const message = response.ok ? "" : detailOf(parsed, `${response.status} ${response.statusText}`);
    return { ok: response.ok, status: response.status, body: parsed, message };
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.floor(seconds));
    if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  }

  function fmtSecs(v) {
    return v === null || v === undefined ? "–" : `${Math.round(v)} s`;
  }

  function fmtPct(v) {
    if (v === null || v === undefined) return "–";
    const p = v * 100;
    return `${p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)} %`;
  }

  function fmtCount(v) {
    return v === null || v === undefined ? "–" : String(v);
  }

  function fmtClock(t) {
    if (t === null || t === undefined) return "–";
    const d = new Date(t * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  // --- views -----------------------------------------------------------------------------

  function showView(name, message) {
    $("login").hidden = name !== "login";
    $("password-change").hidden = name !== "password";
    $("board").hidden = name !== "board";
    $("whoami").hidden = name === "login";
    if (name === "login") {
      show($("login-message"), message);
      $("password").value = "";
      $("username").focus();
    }
    if (name === "password") {
      show($("pw-message"), message);
      $("pw-old").focus();
    }
  }

  function setLink(connected) {
    const node = $("link");
    node.className = `badge ${connected ? "link-up" : "link-down"}`;
    node.textContent = connected ? "Broker: connected" : "Broker: link lost (showing the last known picture)";
  }

  function setFeed(state, text) {
    const node = $("feed");
    node.className = `badge feed-${state}`;
    node.textContent = `Feed: ${text}`;
  }

  // --- login, password, logout --------------------------------------------------------------

  async function onLogin(event) {
    event.preventDefault();
    const button = $("login-submit");
    button.disabled = true;
    show($("login-message"), "");
    try {
      const r = await api("POST", "/auth/token", {
        form: { username: $("username").value.trim(), password: $("password").value },
        auth: false,
      });
      if (!r.ok) {
        showView("login", `Login refused: ${r.message}`);
        return;
      }
      model.token = r.body.access_token;
      sessionStorage.setItem(TOKEN_KEY, model.token);
      $("password").value = "";
      await enter(r.body.must_change_password);
    } finally {
      button.disabled = false;
    }
  }

  // After a login or a reload with a kept token: who am I, then the board or the password.
  async function enter(mustChange) {
    const me = await api("GET", "/auth/me");
    if (!me.ok) {
      forget();
      showView("login", me.status === 401 ? `Please log in again: ${me.message}` : me.message);
      return;
    }
    $("user-name").textContent = me.body.full_name || me.body.username;
    $("user-role").textContent = `(${me.body.username}, ${(me.body.roles || [me.body.role]).join(", ")})`;
    if (mustChange || me.body.must_change_password) {
      showView("password", "Your password must be changed before you can use the wallboard.");
      return;
    }
    showView("board");
    openFeed();
  }

  async function onPassword(event) {
    event.preventDefault();
    const old = $("pw-old").value;
    const fresh = $("pw-new").value;
    if (fresh !== $("pw-again").value) {
      show($("pw-message"), "The two new passwords differ.");
      return;
    }
    $("pw-submit").disabled = true;
    try {
      const r = await api("POST", "/auth/password", { json: { old, new: fresh } });
      if (!r.ok) {
        if (r.status === 401) {
          forget();
          showView("login", `Please log in again: ${r.message}`);
        } else {
          show($("pw-message"), `Password not changed: ${r.message}`);
        }
        return;
      }
      for (const id of ["pw-old", "pw-new", "pw-again"]) $(id).value = "";
      await enter(false);
    } finally {
      $("pw-submit").disabled = false;
    }
  }

  async function onLogout() {
    const had = model.token;
    closeFeed();
    let message = "You are logged out.";
    if (had) {
      const r = await api("POST", "/auth/logout");
      if (!r.ok && r.status !== 401) message = `Logged out here; the API said: ${r.message}`;
    }
    forget();
    showView("login", message);
  }

  function forget() {
    model.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    closeFeed();
    const link = $("link");
    link.className = "badge link-unknown";
    link.textContent = "Broker: not known (not logged in)";
    model.seats.clear();
    model.kpis = {};
    model.alerts = { alerts: [], more: 0 };
    renderSeats();
    renderKpis();
    renderAlerts();
  }

  // --- the feed ------------------------------------------------------------------------------

  function openFeed() {
    closeFeed();
    wsWanted = true;
    connect();
  }

  function closeFeed() {
    wsWanted = false;
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
    if (ws) {
      const old = ws;
      ws = null;
      old.onclose = null;
      old.close(1000, "closed by the wallboard");
    }
    setFeed("idle", "closed");
  }

  function connect() {
    if (!model.token) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws?token=${encodeURIComponent(model.token)}`;
    setFeed("connecting", "connecting…");
    const socket = new WebSocket(url);
    ws = socket;
    socket.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return; // not ours to show
      }
      handle(msg);
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      ws = null;
      if (event.code === 4401 || event.code === 4403) {
        const reason = event.reason || (event.code === 4401 ? "the session ended" : "not allowed");
        const text = event.code === 4403
          ? `The live feed refused this account: ${reason}.`
          : `Your session ended: ${reason}. Please log in again.`;
        const token = model.token;
        forget();
        if (event.code === 4403 && token) {
          // do not leave a session open that cannot be used here
          fetch("/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } })
            .catch(() => {});
        }
        showView("login", text);
        return;
      }
      if (!wsWanted) return;
      const wait = Math.round(retryMs * (0.8 + Math.random() * 0.4));
      retryMs = Math.min(retryMs * 2, RECONNECT_MS[1]);
      setFeed("down", `lost (code ${event.code}); reconnecting in ${Math.ceil(wait / 1000)} s`);
      retryTimer = setTimeout(() => {
        retryTimer = null;
        if (wsWanted) connect();
      }, wait);
    };
  }

  function handle(msg) {
    if (msg.type === "batch") {
      // the changes of the last few milliseconds, each seat and KPI once at its latest
      for (const update of msg.updates || []) handle(update);
      return;
    }
    switch (msg.type) {
      case "snapshot":
        retryMs = RECONNECT_MS[0];
        setFeed("live", "live");
        setLink(Boolean(msg.connected));
        model.seats.clear();
        for (const s of msg.seats || []) putSeat(s);
        model.kpis = msg.kpis || {};
        model.alerts = msg.alerts || { alerts: [], more: 0 };
        setTargets(msg.targets);
        renderSeats();
        renderKpis();
        renderAlerts();
        break;
      case "seat":
        putSeat(msg.seat);
        renderSeats();
        break;
      case "seat_removed":
        model.seats.delete(msg.seat);
        renderSeats();
        break;
      case "kpi":
        (model.kpis[msg.scope] = model.kpis[msg.scope] || {})[msg.key] = msg.kpi;
        renderKpis();
        break;
      case "alerts":
        model.alerts = msg.alerts || { alerts: [], more: 0 };
        renderAlerts();
        break;
      case "alert":
        mergeAlert(msg.alert);
        renderAlerts();
        break;
      case "connected":
        setLink(Boolean(msg.connected));
        break;
      case "resync":
        setFeed("connecting", "catching up…"); // the API sends a fresh snapshot next
        break;
      default:
        break; // "decision" and anything newer: not shown here
    }
  }

  // --- seats ---------------------------------------------------------------------------------

  function putSeat(seat) {
    if (!seat || typeof seat.seat !== "string") return;
    // the local clock: the API's time in state when it sent the seat, plus what passed here
    // since (browser and gateway clocks need not agree)
    let base = seat.time_in_state_s;
    if ((base === null || base === undefined) && typeof seat.since === "number") {
      base = Math.max(0, Date.now() / 1000 - seat.since);
    }
    model.seats.set(seat.seat, { ...seat, _base: base, _at: performance.now() });
  }

  function timeInState(seat) {
    if (seat._base === null || seat._base === undefined) return null;
    return seat._base + (performance.now() - seat._at) / 1000;
  }

  function seatTile(seat) {
    const state = typeof seat.state === "string" && STATE_LABEL[seat.state] ? seat.state : "unknown";
    const classes = ["tile", `state-${state}`];
    if (seat.hold_over_limit && state === "hold") classes.push("hold-over-limit");
    if (seat.help) classes.push("help");
    classes.push(seat.online ? "online" : "offline");
    const label = STATE_LABEL[state] || (seat.state ? String(seat.state) : "No state yet");

    const flags = el("p", { class: "flags" });
    if (seat.help) flags.append(el("span", { class: "flag flag-help", text: "Help requested" }));
    if (seat.hold_over_limit && state === "hold") {
      flags.append(el("span", { class: "flag flag-over", text: "⚠ Hold over limit" }));
    }
    if (!seat.online) {
      const why = seat.availability ? `Offline: ${seat.availability}` : "Offline: link lost";
      flags.append(el("span", { class: "flag flag-offline", text: why }));
    }

    const details = el("dl", { class: "details" });
    const add = (term, value, cls) => {
      details.append(el("dt", { text: term }), el("dd", { class: cls, text: value }));
    };
    add("Time", fmtDuration(timeInState(seat)), "tis");
    if (seat.reason) add("Reason", String(seat.reason).replace(/_/g, " "));
    if (seat.call !== null && seat.call !== undefined) add("Call", String(seat.call));
    // a board at the desk (an emulated one in the demo), not a seat simulated on a host
    if (seat.board_name && seat.board_name !== "virtual") add("Board", String(seat.board_name));

    const lamp = el("span", { class: "lamp", "aria-hidden": "true" });
    // blink phases start when the state was entered (docs/seat.md) and survive a redraw
    const tis = timeInState(seat);
    if (tis !== null) lamp.style.animationDelay = `-${(tis % 60).toFixed(3)}s`;
    return el(
      "li",
      { class: classes.join(" "), "data-seat": seat.seat, "data-state": state,
        "data-online": seat.online ? "true" : "false", "data-help": seat.help ? "true" : "false",
        "data-agent": seat.agent || null },
      el("div", { class: "lamp-row" },
        lamp,
        el("h3", { class: "seat-id", text: seat.seat })),
      // who is signed in at the seat (seat/{seat}/agent): nobody, no line
      seat.agent_name ? el("p", { class: "agent", text: seat.agent_name, title: `agent ${seat.agent}` }) : null,
      el("p", { class: "state", text: label }),
      details,
      flags.childNodes.length ? flags : null,
    );
  }

  function renderSeats() {
    const list = $("seats");
    const ids = [...model.seats.keys()].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    list.replaceChildren(...ids.map((id) => seatTile(model.seats.get(id))));
    $("no-seats").hidden = ids.length > 0;
    const offline = ids.filter((id) => !model.seats.get(id).online).length;
    $("seat-count").textContent = ids.length
      ? `(${ids.length}${offline ? `, ${offline} offline` : ""})`
      : "";
  }

  function tick() {
    for (const tile of $("seats").children) {
      const seat = model.seats.get(tile.getAttribute("data-seat"));
      const cell = tile.querySelector(".tis");
      if (seat && cell) cell.textContent = fmtDuration(timeInState(seat));
    }
  }

  // --- KPIs ----------------------------------------------------------------------------------

  function pickWindow(kpi) {
    const w = (kpi && kpi.windows) || {};
    const has = (name) => w[name] && Object.keys(w[name]).length > 0;
    if (has("today")) return ["today", "Today", w.today];
    if (has("rolling_15min")) return ["rolling_15min", "Last 15 min", w.rolling_15min];
    return [null, "No data", {}];
  }

  // [text, verdict]: verdict "met", "missed" or "nodata" (null: no target for it)
  function judged(value, text, target, atMost) {
    if (value === null || value === undefined) return [text, "nodata"];
    return [text, (atMost ? value <= target : value >= target) ? "met" : "missed"];
  }

  function kpiRow(kind, key, kpi) {
    const [windowName, windowLabel, f] = pickWindow(kpi);
    const cells = [
      [fmtCount(f.offered), null],
      [fmtCount(f.answered), null],
      [fmtCount(f.abandoned), null],
      [fmtPct(f.abandon_rate), null],
      [fmtSecs(f.asa_s), null],
      judged(f.within_ring_limit, fmtPct(f.within_ring_limit), TARGETS.within_ring_limit, false),
      judged(f.service_level, fmtPct(f.service_level), TARGETS.service_level, false),
      judged(f.avg_talk_s, fmtSecs(f.avg_talk_s), TARGETS.avg_talk_s, true),
      judged(f.max_hold_s, fmtSecs(f.max_hold_s), TARGETS.max_hold_s, true),
      judged(f.avg_acw_s, fmtSecs(f.avg_acw_s), TARGETS.avg_acw_s, true),
    ];
    const names = ["offered", "answered", "abandoned", "abandon_rate", "asa_s",
      "within_ring_limit", "service_level", "avg_talk_s", "max_hold_s", "avg_acw_s"];
    const row = el("tr", {
      class: kind === "site" ? "site-row" : "queue-row",
      "data-queue": kind === "queue" ? key : null,
      "data-site": kind === "site" ? key : null,
      "data-window": windowName || "none",
    });
    row.append(el("th", { scope: "row", class: "key", text: kind === "site" ? `Site ${key}` : key }));
    row.append(el("td", { class: "window", text: windowLabel }));
    cells.forEach(([text, verdict], i) => {
      const td = el("td", { "data-kpi": names[i] });
      td.append(el("span", { class: "value", text }));
      if (verdict) {
        td.classList.add(verdict);
        td.setAttribute("data-verdict", verdict);
        const mark = { met: "✓", missed: "✗", nodata: "–" }[verdict];
        const said = { met: "met", missed: "missed", nodata: "no data" }[verdict];
        td.append(" ", el("span", { class: "mark", "aria-hidden": "true", text: mark }),
          el("span", { class: "sr-only", text: `target ${said}` }));
        if (verdict !== "nodata") td.title = `target ${said}`;
      }
      row.append(td);
    });
    return row;
  }

  // The site's targets from the snapshot: only known names with finite numbers are taken.
  function setTargets(targets) {
    if (!targets || typeof targets !== "object") return;
    for (const name of Object.keys(TARGETS)) {
      const v = targets[name];
      if (typeof v === "number" && Number.isFinite(v)) TARGETS[name] = v;
    }
    const share = (v) => `${+(v * 100).toFixed(1)} %`;
    const num = (v) => String(+v.toFixed(1));
    $("t-ring-limit").textContent = num(TARGETS.ring_limit);
    $("t-within-ring-limit").textContent = share(TARGETS.within_ring_limit);
    $("t-sl-threshold").textContent = num(TARGETS.sl_threshold_s);
    $("t-service-level").textContent = share(TARGETS.service_level);
    $("t-avg-talk").textContent = num(TARGETS.avg_talk_s);
    $("t-max-hold").textContent = num(TARGETS.max_hold_s);
    $("t-avg-acw").textContent = num(TARGETS.avg_acw_s);
  }

  function renderKpis() {
    const queues = model.kpis.queue || {};
    const keys = Object.keys(queues).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    $("kpi-rows").replaceChildren(...keys.map((k) => kpiRow("queue", k, queues[k])));
    const sites = model.kpis.site || {};
    const siteKeys = Object.keys(sites).sort();
    $("kpi-site").replaceChildren(...siteKeys.map((k) => kpiRow("site", k, sites[k])));
    $("no-kpis").hidden = keys.length + siteKeys.length > 0;
    $("site-name").textContent = siteKeys.length === 1 ? `· site ${siteKeys[0]}` : "";
  }

  // --- alerts --------------------------------------------------------------------------------

  function mergeAlert(alert) {
    if (!alert || typeof alert.id !== "string") return;
    const list = (model.alerts.alerts || []).filter((a) => a.id !== alert.id);
    if (alert.status === "raised" || alert.status === "acknowledged") list.push(alert);
    model.alerts = { ...model.alerts, alerts: list };
  }

  async function act(alertId, action, node) {
    const outcome = $("alert-outcome");
    for (const b of node.querySelectorAll("button")) b.disabled = true;
    show(outcome, `${action === "resolve" ? "Resolving" : "Acknowledging"} ${alertId}…`);
    const r = await api("POST", `/alerts/${encodeURIComponent(alertId)}/${action}`, { json: { note: "" } });
    for (const b of node.querySelectorAll("button")) b.disabled = false;
    if (r.status === 401) {
      forget();
      showView("login", `Please log in again: ${r.message}`);
      return;
    }
    if (!r.ok) {
      show(outcome, `${action} ${alertId}: refused: ${r.message}`);
      return;
    }
    const o = r.body || {};
    show(outcome, `${action} ${alertId}: ${o.status}${o.detail ? ` (${o.detail})` : ""}`);
  }

  function alertItem(a) {
    const status = String(a.status || "raised");
    const severity = String(a.severity || "info");
    const item = el("li", { class: `alert sev-${severity} status-${status}`, "data-alert": a.id });
    item.append(
      el("p", { class: "alert-head" },
        el("span", { class: `sev sev-${severity}`, text: severity }), " ",
        el("strong", { class: "rule", text: a.rule }), " · seat ",
        el("span", { class: "seat", text: a.seat }), " · at ",
        el("time", { class: "raised", datetime: new Date((a.raised || 0) * 1000).toISOString(),
          text: fmtClock(a.raised) }), " · ",
        el("span", { class: "status",
          text: status === "acknowledged" ? `acknowledged${a.who ? ` by ${a.who}` : ""}` : "new" })),
      el("p", { class: "alert-message", text: a.message }),
    );
    const ack = el("button", { type: "button", class: "ack", text: "Acknowledge" });
    const res = el("button", { type: "button", class: "resolve", text: "Resolve" });
    ack.setAttribute("aria-label", `Acknowledge ${a.rule} alert of seat ${a.seat}`);
    res.setAttribute("aria-label", `Resolve ${a.rule} alert of seat ${a.seat}`);
    if (status === "acknowledged") ack.disabled = true;
    ack.addEventListener("click", () => act(a.id, "acknowledge", item));
    res.addEventListener("click", () => act(a.id, "resolve", item));
    item.append(el("div", { class: "actions" }, ack, " ", res));
    return item;
  }

  function renderAlerts() {
    const alerts = [...(model.alerts.alerts || [])].filter((a) => a && typeof a.id === "string");
    alerts.sort((x, y) => (y.raised || 0) - (x.raised || 0) || (y.t || 0) - (x.t || 0));
    $("alerts").replaceChildren(...alerts.map(alertItem));
    $("no-alerts").hidden = alerts.length > 0;
    $("alert-count").textContent = alerts.length ? `(${alerts.length})` : "";
    const more = Number(model.alerts.more) || 0;
    show($("alerts-more"), more ? `${more} older open alerts are not shown.` : "");
  }

  // --- start ---------------------------------------------------------------------------------

  function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("pw-form").addEventListener("submit", onPassword);
    $("logout").addEventListener("click", onLogout);
    setInterval(tick, 1000);
    renderSeats();
    renderKpis();
    renderAlerts();
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) {
      model.token = kept;
      enter(false);
    } else {
      showView("login");
    }
  }

  start();
})();
