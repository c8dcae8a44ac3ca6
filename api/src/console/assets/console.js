// The varsel operator console: signs in with an operator token kept in this tab's
// sessionStorage, loads the pages the server draws (HTML fragments) into #page, and runs the
// operator actions through the API's own endpoints. No framework, no third-party code.
"use strict";

const API = "/notifications/api/v1";
const KEY = "varsel.operatorToken";
const $ = (sel, root = document) => root.querySelector(sel);

let watching = null;
// Each navigation's number: a page that arrives after a later navigation began is dropped.
let navigation = 0;

function token() {
  return sessionStorage.getItem(KEY);
}

function headers(extra = {}) {
  return Object.assign({ Authorization: "Bearer " + token() }, extra);
}

// The problem details' own words, or the status.
async function problem(res) {
  try {
    const p = await res.json();
    return p.detail || p.title || res.statusText;
  } catch (_) {
    return res.status + " " + res.statusText;
  }
}

function flash(text, bad = false) {
  const f = $("#flash");
  f.textContent = text;
  f.className = text ? (bad ? "bad" : "good") : "";
}

function showSignIn(message) {
  sessionStorage.removeItem(KEY);
  $("#page").replaceChildren();
  $("#sign-in").hidden = false;
  $("#sign-out").hidden = true;
  $("#sign-in-error").textContent = message || "";
  $("#sign-in-form textarea").focus();
}

// Fetches a fragment; null when it was refused (the reason is shown).
async function fragment(url) {
  const res = await fetch(url, { headers: headers(), cache: "no-store" });
  if (res.status === 401 || res.status === 403) {
    showSignIn(await problem(res));
    return null;
  }
  if (!res.ok) {
    flash(await problem(res), true);
    return null;
  }
  return res.text();
}

async function call(method, path) {
  const res = await fetch(API + path, { method, headers: headers() });
  if (res.status === 401) {
    showSignIn(await problem(res));
    throw new Error("signed out");
  }
  if (!res.ok) {
    throw new Error(await problem(res));
  }
  return res.status === 204 ? null : res.json();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), query: new URLSearchParams(query || "") };
}

function markNav(name) {
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

async function show(url, nav, keepFocus) {
  const mine = navigation;
  const html = await fragment(url);
  if (html === null || mine !== navigation) return false;
  $("#sign-in").hidden = true;
  $("#sign-out").hidden = false;
  $("#page").innerHTML = html;
  markNav(nav);
  const h = $("#page h1");
  if (h && !keepFocus) {
    h.tabIndex = -1;
    h.focus();
  }
  return true;
}

async function loadNotifications(id, status, after) {
  const box = $("#notifications");
  if (!box) return;
  const q = new URLSearchParams();
  if (status) q.set("status", status);
  if (after) q.set("after", after);
  const mine = navigation;
  const html = await fragment(`/console/fragments/orders/${id}/notifications?${q}`);
  if (html !== null && mine === navigation && box.isConnected) box.innerHTML = html;
}

async function route(keepFocus = false) {
  navigation += 1;
  if (!token()) return showSignIn();
  const { parts, query } = parseHash();
  const page = parts[0] || "overview";
  if (page === "orders") {
    await show(`/console/fragments/orders?${query}`, "orders", keepFocus);
  } else if (page === "order" && parts[1]) {
    const id = encodeURIComponent(parts[1]);
    if (await show(`/console/fragments/orders/${id}`, "", keepFocus)) {
      await loadNotifications(id, query.get("status"), null);
      const h = $("#page h1");
      if (h && h.dataset.open === "true") watch(id);
    }
  } else {
    await show("/console/fragments/overview", "overview", keepFocus);
  }
}

// While an order is still being worked on, its page is drawn again every few seconds (at least
// `ticks` times: a redrive reopens the order a moment after it is asked for). The pause grows
// with the time a page takes to draw, so a large order's page never keeps the server busy.
function watch(id, ticks = 0) {
  if (watching && watching.id === id && !ticks) return;
  if (watching) clearTimeout(watching.timer);
  const state = { id, timer: null, left: ticks };
  watching = state;
  const stop = () => { if (watching === state) watching = null; };
  const tick = async () => {
    if (watching !== state) return;
    state.left -= 1;
    const { parts } = parseHash();
    if (parts[0] !== "order" || parts[1] !== id) return stop();
    const started = performance.now();
    if (!$(".preview") && !document.hidden) {
      const mine = navigation;
      const html = await fragment(`/console/fragments/orders/${id}`);
      if (html === null || watching !== state) return stop();
      if (mine !== navigation) {
        state.timer = setTimeout(tick, 2000);
        return;
      }
      const open = document.querySelectorAll("#notifications details[open]").length > 0;
      const list = $("#notifications") && $("#notifications").innerHTML;
      $("#page").innerHTML = html;
      if (list && open) $("#notifications").innerHTML = list;
      else await loadNotifications(id, parseHash().query.get("status"), null);
      const h = $("#page h1");
      if ((!h || h.dataset.open !== "true") && state.left <= 0) return stop();
    }
    state.timer = setTimeout(tick, Math.max(2000, 10 * (performance.now() - started)));
  };
  state.timer = setTimeout(tick, 2000);
}

const actions = {
  async cancel(el) {
    $("#action-result").innerHTML = "";
    const p = document.createElement("p");
    p.textContent = "Cancel this order? Nothing of it will be sent. ";
    const yes = document.createElement("button");
    yes.className = "danger";
    yes.dataset.action = "cancel-confirm";
    yes.dataset.order = el.dataset.order;
    yes.textContent = "Yes, cancel it";
    p.append(yes);
    $("#action-result").append(p);
    yes.focus();
  },
  async "cancel-confirm"(el) {
    const o = await call("POST", `/operator/orders/${el.dataset.order}/cancel`);
    flash(`Order ${o.id} is ${o.status}.`);
    await route(true);
  },
  async "redrive-preview"(el) {
    const html = await fragment(`/console/fragments/orders/${el.dataset.order}/redrive`);
    if (html === null) return;
    $("#action-result").innerHTML = html;
    const go = $("#action-result [data-action=redrive]") || $("#action-result button");
    if (go) go.focus();
  },
  "close-preview"() {
    $("#action-result").innerHTML = "";
  },
  async redrive(el) {
    const r = await call("POST", `/operator/orders/${el.dataset.order}/redrive`);
    flash(`Redrive started: ${r.notifications} notifications are sent again.`);
    await route(true);
    watch(el.dataset.order, 10);
  },
  async replay(el) {
    const r = await call("POST", `/operator/orders/${el.dataset.order}/replay`);
    const what = r.verdict === "clean"
      ? `Replay: clean. This build takes the recorded path (${r.events} events in ${r.runs} ${r.runs === 1 ? "run" : "runs"}).`
      : `Replay: ${r.verdict}. ${r.message || ""}`;
    flash(what, r.verdict !== "clean");
  },
  async history(el) {
    const h = await call("GET", `/orders/${el.dataset.order}/history`);
    const ol = document.createElement("ol");
    ol.className = "timeline";
    for (const e of h.entries) {
      const li = document.createElement("li");
      const t = document.createElement("time");
      t.textContent = e.time;
      li.append(t, ` ${e.source}: ${e.text}`);
      ol.append(li);
    }
    $("#action-result").replaceChildren(ol);
  },
  async "more-notifications"(el) {
    await loadNotifications(el.dataset.order, el.dataset.status, el.dataset.after);
    const first = $("#notifications summary");
    if (first) first.focus();
  },
  async "reapply-dead"() {
    const dead = await call("GET", "/operator/dead-reports");
    const outcomes = {};
    for (const d of dead) {
      try {
        const r = await call("POST", `/operator/dead-reports/${d.id}/reapply`);
        const k = (r && r.outcome) || "applied";
        outcomes[k] = (outcomes[k] || 0) + 1;
      } catch (e) {
        outcomes[e.message] = (outcomes[e.message] || 0) + 1;
      }
    }
    flash("Dead reports re-applied: " + Object.entries(outcomes).map(([k, n]) => `${n} ${k}`).join(", "));
    await route(true);
  },
};

document.addEventListener("click", async (ev) => {
  const el = ev.target.closest("[data-action]");
  if (!el || !actions[el.dataset.action]) return;
  ev.preventDefault();
  el.disabled = true;
  try {
    flash("");
    await actions[el.dataset.action](el);
  } catch (e) {
    if (e.message !== "signed out") flash(e.message, true);
  } finally {
    el.disabled = false;
  }
});

document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  // Not form.id: the search form has a field named "id", which that property would name.
  const which = form.getAttribute("id");
  ev.preventDefault();
  if (which === "sign-in-form") {
    sessionStorage.setItem(KEY, form.token.value.trim());
    form.reset();
    await route();
  } else if (which === "search") {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    if ([...q.keys()].length === 0) q.set("all", "1");
    location.hash = "#/orders?" + q;
  } else if (which === "notification-filter") {
    const id = form.dataset.order;
    const status = form.status.value;
    history.replaceState(null, "", `#/order/${id}` + (status ? `?status=${encodeURIComponent(status)}` : ""));
    await loadNotifications(id, status, null);
    const sel = $("#notification-filter select");
    if (sel) sel.focus();
  }
});

$("#sign-out").addEventListener("click", () => {
  showSignIn("Signed out.");
  location.hash = "#/overview";
});

window.addEventListener("hashchange", () => route());

// A one-time link (#signin=<code>, printed by `varsel dev`) is traded for its token once, and
// the code leaves the address bar.
(async function start() {
  const m = location.hash.match(/^#signin=([0-9a-f]+)$/);
  if (m) {
    history.replaceState(null, "", location.pathname + "#/overview");
    const res = await fetch("/console/signin", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: m[1] }),
    });
    if (!res.ok) return showSignIn(await problem(res));
    sessionStorage.setItem(KEY, (await res.json()).token);
  }
  await route();
})();
