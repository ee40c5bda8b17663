// The desk's page (issue 19): an agent signs in at the seat of the desk's link
// (/desk?seat=s101) with its own account, and sees its seat, its figures today and its
// own open alerts (GET /me/desk).
//
// Plain ES2020 like the wallboard: no build step, nothing from elsewhere, server text set with
// textContent only, the token in this tab's sessionStorage only.
"use strict";

(() => {
  const TOKEN_KEY = "seatlink.desk.token";
  const REFRESH_MS = 5000;
  const SEAT_ID = /^[A-Za-z0-9_.-]{1,64}$/; // the contract's ids
  const STATE_LABEL = {
    logged_out: "Logged out", ready: "Ready", not_ready: "Not ready", ringing: "Ringing",
    talking: "Talking", hold: "On hold", acw: "After-call work",
  };
  const CAUSE = {
    self: "you signed out",
    supervisor: "by a supervisor",
    moved: "you signed in at another seat",
    account: "your account was changed",
  };

  const $ = (id) => document.getElementById(id);
  const seat = new URLSearchParams(location.search).get("seat") || "";
  let token = null;
  let timer = null;

  function say(text) {
    $("message").textContent = text || "";
    $("message").hidden = !text;
  }

  function view(name) {
    for (const id of ["login", "password-change", "mine"]) $(id).hidden = id !== name;
    $("whoami").hidden = name === "login" || !$("user-name").textContent;
  }

  function detailOf(body, fallback) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
    }
    return fallback;
  }

  async function api(method, path, { json, form } = {}) {
    const headers = { Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = new URLSearchParams(form);
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch (err) {
      return { ok: false, status: 0, body: null, message: `the API is unreachable (${err.message})` };
    }
    let parsed = null;
    try {
      parsed = JSON.parse(await response.text());
    } catch (_) {
      parsed = null;
    }
    return { ok: response.ok, status: response.status, body: parsed,
      message: response.ok ? "" : detailOf(parsed, `${response.status} ${response.statusText}`) };
  }

  function forget(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (timer) clearInterval(timer);
    timer = null;
    $("user-name").textContent = "";
    view("login");
    say(message);
    $("password").value = "";
  }

  // a 401 after the page was in use: the session ended (one live session per agent)
  function ended(r) {
    forget(`Your session on this page ended (${r.message}). A login of yours elsewhere ` +
      "ends it; if you signed in at another seat, you are no longer signed in here.");
  }

  async function onLogin(event) {
    event.preventDefault();
    $("login-submit").disabled = true;
    say("");
    try {
      const r = await api("POST", "/auth/token", {
        form: { username: $("username").value.trim(), password: $("password").value },
      });
      $("password").value = "";
      if (!r.ok) {
        say(`Login refused: ${r.message}`);
        return;
      }
      token = r.body.access_token;
      sessionStorage.setItem(TOKEN_KEY, token);
      if (r.body.must_change_password) {
        await who();
        view("password-change");
        say(`Your password must be changed before you can sign in at ${seat}.`);
        return;
      }
      await signIn();
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function who() {
    const me = await api("GET", "/auth/me");
    if (me.ok) $("user-name").textContent = me.body.full_name || me.body.username;
    return me;
  }

  async function signIn() {
    const me = await who();
    if (!me.ok) return ended(me);
    if (me.body.role !== "agent") {
      await api("POST", "/auth/logout");
      return forget(`Only agents sign in at a desk; ${me.body.username} is ${me.body.role}.`);
    }
    const r = await api("POST", "/me/signin", { json: { seat } });
    if (r.status === 401) return ended(r);
    if (r.status === 403 && /password/.test(r.message)) {
      view("password-change");
      return say(`Your password must be changed before you can sign in at ${seat}.`);
    }
    say(r.ok ? (r.body.published ? "" : r.body.message) : `Not signed in at ${seat}: ${r.message}`);
    if (r.ok && r.body.moved_from) showMoved(`You were signed out of ${r.body.moved_from}.`);
    await refresh();
    if (!timer) timer = setInterval(refresh, REFRESH_MS);
  }

  async function onPassword(event) {
    event.preventDefault();
    if ($("pw-new").value !== $("pw-again").value) return say("The two new passwords differ.");
    $("pw-submit").disabled = true;
    try {
      const r = await api("POST", "/auth/password", { json: { old: $("pw-old").value, new: $("pw-new").value } });
      if (r.status === 401) return ended(r);
      if (!r.ok) return say(`Password not changed: ${r.message}`);
      for (const id of ["pw-old", "pw-new", "pw-again"]) $(id).value = "";
      say("");
      await signIn();
    } finally {
      $("pw-submit").disabled = false;
    }
  }

  async function onSignOut() {
    const r = await api("DELETE", "/me/signin");
    if (r.status === 401) return ended(r);
    const text = r.ok ? `Signed out of ${r.body.ended.seat}.` : `Sign-out: ${r.message}`;
    await api("POST", "/auth/logout"); // the desk may be shared: nobody stays logged in here
    forget(text);
  }

  function showMoved(text) {
    $("moved").textContent = text;
    $("moved").hidden = !text;
  }

  function fmtTime(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  async function refresh() {
    if (!token) return;
    const r = await api("GET", "/me/desk");
    if (r.status === 401) return ended(r);
    if (!r.ok) return say(r.message);
    render(r.body);
  }

  function render(d) {
    view("mine");
    const here = d.signin && d.signin.seat === seat;
    $("where").textContent = here
      ? `Signed in at ${seat} as ${d.full_name}`
      : d.signin ? `You are signed in at ${d.signin.seat}, not here (${seat})`
        : `You are not signed in at any seat`;
    $("signin-here").hidden = here;
    $("signout").hidden = !d.signin;
    const last = d.last_signout;
    if (!here && last && (!d.signin || last.until >= d.signin.since)) {
      const why = CAUSE[last.until_cause] || last.until_cause;
      const byWhom = last.until_cause === "supervisor" && last.until_by ? ` (${last.until_by})` : "";
      showMoved(`Signed out of ${last.seat} at ${fmtTime(last.until)}: ${why}${byWhom}.`);
    } else if (here && $("moved").textContent.startsWith("Signed out of")) {
      showMoved("");
    }
    const s = d.seat;
    $("seat-state").textContent = !d.signin ? "–"
      : !s ? `${d.signin.seat}: no state reported yet`
        : `${s.seat}: ${STATE_LABEL[s.state] || s.state || "no state yet"}` +
          `${s.reason ? ` (${String(s.reason).replace(/_/g, " ")})` : ""}${s.online ? "" : " · offline"}`;
    renderKpis(d.kpis, d.targets || {});
    renderAlerts(d.alerts || []);
  }

  function renderKpis(kpi, t) {
    const today = (kpi && kpi.windows && kpi.windows.today) || {};
    const pct = (v) => `${Math.round(v * 1000) / 10} %`;
    const secs = (v) => `${Math.round(v)} s`;
    const rows = [
      ["answered", "Answered", today.answered, String, null],
      ["within_ring_limit", `Within ${t.ring_limit} rings (target ${pct(t.within_ring_limit)})`,
        today.within_ring_limit, pct, (v) => v >= t.within_ring_limit],
      ["avg_talk_s", `Average talk (target ≤ ${t.avg_talk_s} s)`, today.avg_talk_s, secs, (v) => v <= t.avg_talk_s],
      ["max_hold_s", `Longest hold (target ≤ ${t.max_hold_s} s)`, today.max_hold_s, secs, (v) => v <= t.max_hold_s],
      ["avg_acw_s", `Average after-call work (target ≤ ${t.avg_acw_s} s)`, today.avg_acw_s, secs, (v) => v <= t.avg_acw_s],
    ];
    const shown = rows.filter((row) => row[2] !== null && row[2] !== undefined);
    $("kpi-rows").replaceChildren(...shown.map(([name, label, value, fmt, ok]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = label;
      const td = document.createElement("td");
      td.dataset.kpi = name;
      td.textContent = fmt(value);
      if (ok) {
        const verdict = ok(value) ? "met" : "missed";
        td.classList.add(verdict);
        td.dataset.verdict = verdict;
        td.append(verdict === "met" ? " ✓" : " ✗");
      }
      tr.append(th, td);
      return tr;
    }));
    $("no-kpis").hidden = shown.length > 0;
  }

  function renderAlerts(alerts) {
    $("my-alerts").replaceChildren(...alerts.map((a) => {
      const li = document.createElement("li");
      li.dataset.alert = a.id;
      li.textContent = `${fmtTime(a.raised)} ${a.rule}: ${a.message}`;
      return li;
    }));
    $("no-alerts").hidden = alerts.length > 0;
  }

  function start() {
    $("desk-seat").textContent = seat || "?";
    document.title = `seatlink desk ${seat}`;
    if (!SEAT_ID.test(seat)) {
      view(null);
      say("This link names no seat: open the link on the desk's label (…/desk?seat=s101).");
      return;
    }
    $("login-form").addEventListener("submit", onLogin);
    $("pw-form").addEventListener("submit", onPassword);
    $("signout").addEventListener("click", onSignOut);
    $("signin-here").addEventListener("click", signIn);
    token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return view("login");
    // a reload: show where the agent is; it signs in here again only when asked
    who().then((me) => {
      if (!me.ok) return forget(me.status === 401 ? "Please log in again." : me.message);
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    });
  }

  start();
})();
