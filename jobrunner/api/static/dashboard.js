// jobrunner dashboard: one EventSource for the live numbers, the API's own routes for the rest.
// No build step: plain ES2020 and uPlot (vendored). Every string from the server goes into the
// page as text, never as HTML.
"use strict";

(function () {
  const WINDOW_POINTS = 300;          // five minutes on the charts
  const DEAD_REFRESH_MS = 5000;       // the dead-letter table, at most this often unless it changed
  const SCHEDULES_REFRESH_MS = 5000;
  const FIELDS = ["t", "ready", "scheduled", "in_flight", "dead",
                  "enqueued_per_s", "processed_per_s", "failed_per_s"];

  const state = {
    points: Object.fromEntries(FIELDS.map((f) => [f, []])),
    latest: null,
    ticks: 0,
    deadQueue: null,
    deadSeen: null,          // "queue:count" the dead table was last loaded for
    deadLoadedAt: 0,
    deadLoading: false,
    drawMs: [],
  };
  const $ = (id) => document.getElementById(id);

  // Changes made with the session cookie carry the CSRF token only this page can read.
  let csrf = null;
  const session = fetch("dashboard/session").then((r) => (r.ok ? r.json() : {}))
    .then((s) => { csrf = s.csrf || null; return s; }).catch(() => ({}));
  async function post(url) {
    await session;
    return fetch(url, { method: "POST", headers: csrf ? { "X-CSRF-Token": csrf } : {} });
  }

  // ------------------------------------------------------------------ charts

  function makeChart(el, series) {
    const opts = {
      width: Math.max(300, el.clientWidth), height: 200,
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 1.5, points: { show: false } }))],
      axes: [{}, { size: 60 }],
      legend: { live: false },
    };
    return new uPlot(opts, [[], ...series.map(() => [])], el);
  }

  const charts = {
    depth: makeChart($("chart-depth"), [["ready", "#1565c0"], ["scheduled", "#8e24aa"], ["dead", "#c62828"]]),
    throughput: makeChart($("chart-throughput"),
      [["enqueued/s", "#6d6d6d"], ["processed/s", "#2e7d32"], ["failed/s", "#c62828"]]),
    inflight: makeChart($("chart-inflight"), [["in flight", "#ef6c00"]]),
  };

  function windowed(name) {
    return state.points[name].slice(-WINDOW_POINTS);
  }

  function drawCharts() {
    const t = windowed("t");
    charts.depth.setData([t, windowed("ready"), windowed("scheduled"), windowed("dead")]);
    charts.throughput.setData([t, windowed("enqueued_per_s"), windowed("processed_per_s"),
                               windowed("failed_per_s")]);
    charts.inflight.setData([t, windowed("in_flight")]);
  }

  window.addEventListener("resize", () => {
    for (const chart of Object.values(charts)) {
      chart.setSize({ width: Math.max(300, chart.root.parentElement.clientWidth), height: 200 });
    }
  });

  function addPoint(snapshot) {
    const totals = { t: snapshot.t };
    for (const f of FIELDS.slice(1)) {
      totals[f] = snapshot.queues.reduce((sum, q) => sum + q[f], 0);
    }
    for (const f of FIELDS) {
      const column = state.points[f];
      column.push(totals[f]);
      if (column.length > 2 * WINDOW_POINTS) column.splice(0, column.length - WINDOW_POINTS);
    }
    return totals;
  }

  // ------------------------------------------------------------------ tables

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function fillTable(tbody, rows) {
    const fragment = document.createDocumentFragment();
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const td of cells) tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
  }

  const number = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : n ?? "");

  function age(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function clock(epoch) {
    return epoch ? new Date(epoch * 1000).toLocaleTimeString() : "";
  }

  function renderQueues(snapshot) {
    fillTable($("queues").tBodies[0], snapshot.queues.map((q) => [
      cell(q.name), cell(number(q.ready), "num"), cell(number(q.scheduled), "num"),
      cell(number(q.in_flight), "num"), cell(number(q.dead), "num"),
      cell(number(q.enqueued_per_s), "num"), cell(number(q.processed_per_s), "num"),
      cell(number(q.failed_per_s), "num"), cell(number(q.counters.processed || 0), "num"),
    ]));
  }

  function renderWorkers(snapshot) {
    const workers = snapshot.workers;
    fillTable($("workers").tBodies[0], workers.map((w) => [
      cell(w.id), cell(w.host), cell(w.pid, "num"), cell(w.model), cell(w.concurrency, "num"),
      cell(w.queues), cell(number(w.in_flight), "num"), cell(number(w.completed), "num"),
      cell(number(w.failed), "num"), cell(age(w.heartbeat_age), w.heartbeat_age > 15 ? "stale" : ""),
    ]));
    $("no-workers").hidden = workers.length > 0;
  }

  function renderTiles(totals, snapshot) {
    for (const f of FIELDS.slice(1)) {
      const el = $(`total-${f}`);
      if (el) el.textContent = number(totals[f]);
    }
    $("total-workers").textContent = String(snapshot.workers.length);
  }

  // ------------------------------------------------------------------ dead letters

  function renderDeadQueues(snapshot) {
    const select = $("dead-queue");
    const names = snapshot.queues.map((q) => q.name);
    const current = Array.from(select.options).map((o) => o.value);
    if (names.join("\n") !== current.join("\n")) {
      const keep = state.deadQueue;
      select.replaceChildren(...names.map((n) => new Option(n, n)));
      const withDead = snapshot.queues.find((q) => q.dead > 0);
      state.deadQueue = names.includes(keep) ? keep : (withDead || snapshot.queues[0] || {}).name || null;
      if (state.deadQueue) select.value = state.deadQueue;
    }
  }

  async function loadDead(force) {
    const queue = state.deadQueue;
    if (!queue || state.deadLoading || !state.latest) return;
    const q = state.latest.queues.find((x) => x.name === queue);
    const seen = `${queue}:${q ? q.dead : 0}:${q ? q.counters.requeued || 0 : 0}`;
    const due = Date.now() - state.deadLoadedAt > DEAD_REFRESH_MS;
    if (!force && seen === state.deadSeen && !due) return;
    state.deadLoading = true;
    try {
      const response = await fetch(`failed?queue=${encodeURIComponent(queue)}&limit=50`);
      if (!response.ok) throw new Error(`GET /failed answered ${response.status}`);
      const page = await response.json();
      state.deadSeen = seen;
      state.deadLoadedAt = Date.now();
      renderDead(page);
    } catch (err) {
      $("dead-message").textContent = String(err);
    } finally {
      state.deadLoading = false;
    }
  }

  function renderDead(page) {
    const now = state.latest ? state.latest.t : Date.now() / 1000;
    fillTable($("dead").tBodies[0], page.jobs.map((job) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Requeue";
      button.className = "requeue";
      button.dataset.job = job.id;
      button.addEventListener("click", () => requeue(button, job.id, page.queue));
      const actions = document.createElement("td");
      actions.appendChild(button);
      const error = cell(job.last_error, "error");
      error.title = job.last_error || "";
      return [cell(job.id.slice(0, 12)), cell(job.type), cell(job.attempts, "num"), error,
              cell(age(job.finished_at ? now - job.finished_at : null)), actions];
    }));
    $("dead").tBodies[0].dataset.queue = page.queue;
    const shown = page.jobs.length;
    $("dead-summary").textContent = page.total
      ? `${number(page.total)} dead in ${page.queue}${page.total > shown ? `, newest ${shown} shown` : ""}`
      : "";
    $("dead-message").textContent = page.total ? "" : `no dead jobs in ${page.queue}`;
    $("requeue-all").disabled = page.total === 0;
  }

  async function requeue(button, jobId, queue) {
    button.disabled = true;
    const url = jobId
      ? `failed/${encodeURIComponent(jobId)}/requeue?queue=${encodeURIComponent(queue)}`
      : `failed/requeue?queue=${encodeURIComponent(queue)}`;
    try {
      const response = await post(url);
      const body = await response.json();
      $("dead-message").textContent = response.ok
        ? `requeued ${body.requeued} job${body.requeued === 1 ? "" : "s"}`
        : `requeue failed: ${body.detail || response.status}`;
    } catch (err) {
      $("dead-message").textContent = `requeue failed: ${err}`;
    }
    button.disabled = false;
    await loadDead(true);
  }

  $("requeue-all").addEventListener("click", (event) => {
    if (state.deadQueue) requeue(event.currentTarget, null, state.deadQueue);
  });
  $("dead-queue").addEventListener("change", (event) => {
    state.deadQueue = event.currentTarget.value;
    loadDead(true);
  });

  // ------------------------------------------------------------------ schedules

  async function loadSchedules() {
    let body = null;
    try {
      const response = await fetch("schedules");
      if (response.ok) body = await response.json();
    } catch (err) {
      body = null;
    }
    const schedules = body && Array.isArray(body.schedules) ? body.schedules : [];
    $("no-scheduler").hidden = schedules.length > 0;
    $("schedules").hidden = schedules.length === 0;
    const leader = body && body.leader;
    $("leader").textContent = leader
      ? `leader ${leader.id} (token ${leader.token}, lease ${Number(leader.ttl_seconds).toFixed(1)}s)`
      : "";
    fillTable($("schedules").tBodies[0], schedules.map((s) => [
      cell(s.name), cell(s.type), cell(s.queue),
      cell(s.cron ? s.cron : s.every_seconds ? `${s.every_seconds}s` : ""), cell(s.timezone),
      cell(s.misfire), cell(clock(s.next_fire)), cell(clock(s.last_fire)),
    ]));
  }

  // ------------------------------------------------------------------ the stream

  let pending = null;   // the newest snapshot not drawn yet: a slow tab skips, never queues up

  function onSnapshot(snapshot) {
    state.ticks += 1;
    if (snapshot.error || !snapshot.queues) {   // Redis does not answer: say so, keep the charts
      showStatus(snapshot.error || "no data yet");
      return;
    }
    state.latest = snapshot;
    const totals = addPoint(snapshot);
    if (pending === null) requestAnimationFrame(draw);
    pending = { snapshot, totals };
  }

  function showStatus(error) {
    const status = $("status");
    status.className = `status ${error ? "error" : "live"}`;
    status.textContent = error || "live";
  }

  function draw() {
    if (pending === null) return;
    const started = performance.now();
    const { snapshot, totals } = pending;
    pending = null;
    drawCharts();
    renderTiles(totals, snapshot);
    renderQueues(snapshot);
    renderWorkers(snapshot);
    renderDeadQueues(snapshot);
    loadDead(false);
    showStatus(null);
    $("updated").textContent = `updated ${clock(snapshot.t)}`;
    state.drawMs.push(performance.now() - started);   // what a tick costs the page
    if (state.drawMs.length > 600) state.drawMs.shift();
  }

  const events = new EventSource("dashboard/events");
  events.addEventListener("history", (event) => {
    const history = JSON.parse(event.data);
    for (const f of FIELDS) state.points[f] = history.points[f].slice(-WINDOW_POINTS);
    if (history.latest && history.latest.queues && !history.latest.error) {
      state.latest = history.latest;
      if (pending === null) requestAnimationFrame(draw);
      pending = { snapshot: history.latest, totals: lastTotals() };
    }
  });
  events.addEventListener("tick", (event) => onSnapshot(JSON.parse(event.data)));
  events.addEventListener("error", () => {
    const status = $("status");
    status.className = "status connecting";
    status.textContent = "reconnecting";
  });

  function lastTotals() {
    return Object.fromEntries(FIELDS.map((f) => [f, state.points[f].at(-1) ?? 0]));
  }

  loadSchedules();
  setInterval(loadSchedules, SCHEDULES_REFRESH_MS);

  // For tests and curious people: the charts' data and counters.
  window.jobrunnerDashboard = { state, charts };
})();
