// jobrunner dashboard: one EventSource for the live numbers, the API's own routes for the rest.
// No build step: plain ES2020 and uPlot (vendored). Every string from the server goes into the
// page as text, never as HTML.
"use strict";

(function () {
  const WINDOW_POINTS = 300;          // five minutes on the charts
  const DEAD_REFRESH_MS = 5000;       // the dead-letter table, at most this often unless it changed
  const SCHEDULES_REFRESH_MS = 5000;
  const LIST_REFRESH_MS = 3000;       // the scheduled / running table
  const FINAL = new Set(["done", "dead", "cancelled"]);
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
    queuePoints: {},         // per queue, from the ticks seen since the page opened
    chartQueue: null,
    listQueue: null,
    listLoadedAt: 0,
    listLoading: false,
    job: null,               // the job shown in the detail panel
  };
  const $ = (id) => document.getElementById(id);

  // Changes made with the session cookie carry the CSRF token only this page can read.
  let csrf = null;
  const session = fetch("dashboard/session").then((r) => (r.ok ? r.json() : {}))
    .then((s) => { csrf = s.csrf || null; return s; }).catch(() => ({}));
  async function send(method, url) {
    await session;
    return fetch(url, { method, headers: csrf ? { "X-CSRF-Token": csrf } : {} });
  }
  const post = (url) => send("POST", url);

  // An action's answer as one line: what it did, or why it was refused.
  async function act(method, url, describe) {
    try {
      const response = await send(method, url);
      const body = await response.json().catch(() => ({}));
      return response.ok ? describe(body) : `refused: ${body.detail || response.status}`;
    } catch (err) {
      return `failed: ${err}`;
    }
  }
  const enc = encodeURIComponent;

  // ------------------------------------------------------------------ charts

  function makeChart(el, series, sparse = false) {
    // sparse: a series with gaps (no job done in a tick has no latency) shows its points
    const opts = {
      width: Math.max(300, el.clientWidth), height: 200,
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 1.5,
        spanGaps: sparse, points: { show: sparse, size: 4 } }))],
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
    queueThroughput: makeChart($("chart-queue-throughput"),
      [["processed/s", "#2e7d32"], ["failed/s", "#c62828"]]),
    queueLatency: makeChart($("chart-queue-latency"),
      [["run ms", "#1565c0"], ["turnaround ms", "#8e24aa"]], true),
  };

  const QUEUE_SERIES = ["t", "processed_per_s", "failed_per_s", "run_ms_avg", "turnaround_ms_avg"];

  function addQueuePoints(snapshot) {
    for (const q of snapshot.queues) {
      const points = state.queuePoints[q.name] ||= Object.fromEntries(QUEUE_SERIES.map((f) => [f, []]));
      for (const f of QUEUE_SERIES) {
        const column = points[f];
        column.push(f === "t" ? snapshot.t : q[f] ?? null);
        if (column.length > 2 * WINDOW_POINTS) column.splice(0, column.length - WINDOW_POINTS);
      }
    }
  }

  function drawQueueCharts() {
    const points = state.queuePoints[state.chartQueue];
    if (!points) return;
    const w = (f) => points[f].slice(-WINDOW_POINTS);
    charts.queueThroughput.setData([w("t"), w("processed_per_s"), w("failed_per_s")]);
    charts.queueLatency.setData([w("t"), w("run_ms_avg"), w("turnaround_ms_avg")]);
    $("caption-queue-throughput").textContent = `Throughput of ${state.chartQueue} (jobs/s)`;
    $("caption-queue-latency").textContent =
      `Latency of ${state.chartQueue} (ms: run, and enqueued to done; average per tick)`;
  }

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
      cell(number(q.run_ms_avg), "num"), cell(number(q.turnaround_ms_avg), "num"),
      cell(q.paused ? "paused" : "running", q.paused ? "paused" : ""), pauseButton(q),
    ]));
  }

  function pauseButton(q) {
    const td = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = q.paused ? "resume" : "pause";
    button.dataset.queue = q.name;
    button.textContent = q.paused ? "Resume" : "Pause";
    button.addEventListener("click", async () => {
      button.disabled = true;
      const verb = q.paused ? "resume" : "pause";
      $("updated").textContent = await act("POST", `queues/${enc(q.name)}/${verb}`,
        (b) => `${b.queue} ${b.paused ? "paused" : "resumed"}`);
    });
    td.appendChild(button);
    return td;
  }

  // Every select of queue names follows the declared queues; a choice already made is kept.
  function fillQueueSelect(select, names, keep, fallback) {
    const current = Array.from(select.options).map((o) => o.value);
    if (names.join("\n") !== current.join("\n")) {
      select.replaceChildren(...names.map((n) => new Option(n, n)));
    }
    const chosen = names.includes(keep) ? keep : fallback;
    if (chosen && select.value !== chosen) select.value = chosen;
    return chosen || null;
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

  function renderQueueSelects(snapshot) {
    const names = snapshot.queues.map((q) => q.name);
    const first = names[0];
    const withDead = (snapshot.queues.find((q) => q.dead > 0) || {}).name;
    state.deadQueue = fillQueueSelect($("dead-queue"), names, state.deadQueue, withDead || first);
    const busy = (snapshot.queues.find((q) => q.processed_per_s > 0 || q.ready > 0) || {}).name;
    state.chartQueue = fillQueueSelect($("chart-queue"), names, state.chartQueue, busy || first);
    state.listQueue = fillQueueSelect($("list-queue"), names, state.listQueue, first);
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
      const remove = actionButton("Delete", "delete", job.id, async () => {
        $("dead-message").textContent = await act("DELETE",
          `failed/${enc(job.id)}?queue=${enc(page.queue)}`, () => `deleted ${job.id}`);
        await loadDead(true);
      });
      const actions = document.createElement("td");
      actions.append(button, " ", remove);
      const error = cell(job.last_error, "error");
      error.title = job.last_error || "";
      return [jobLink(job.id), cell(job.type), cell(job.attempts, "num"), error,
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

  function actionButton(label, className, jobId, onClick) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.className = className;
    button.dataset.job = jobId;
    button.addEventListener("click", async () => { button.disabled = true; await onClick(); });
    return button;
  }

  // A job id cell that opens the job's detail.
  function jobLink(jobId) {
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.href = `#job=${enc(jobId)}`;
    a.className = "job-link";
    a.textContent = jobId.length > 14 ? `${jobId.slice(0, 12)}…` : jobId;
    a.title = jobId;
    td.appendChild(a);
    return td;
  }

  // ------------------------------------------------------------------ scheduled and running

  async function loadList(force) {
    const queue = state.listQueue;
    if (!queue || state.listLoading) return;
    if (!force && Date.now() - state.listLoadedAt < LIST_REFRESH_MS) return;
    state.listLoading = true;
    const kind = $("list-kind").value;
    try {
      const response = await fetch(`${kind}?queue=${enc(queue)}&limit=50`);
      if (!response.ok) throw new Error(`GET /${kind} answered ${response.status}`);
      renderList(await response.json());
      state.listLoadedAt = Date.now();
    } catch (err) {
      $("list-message").textContent = String(err);
    } finally {
      state.listLoading = false;
    }
  }

  function renderList(page) {
    const now = state.latest ? state.latest.t : Date.now() / 1000;
    fillTable($("list").tBodies[0], page.jobs.map((job) => {
      const why = page.state === "running" ? "running"
        : job.attempts > 0 ? `retry ${job.attempts + 1}` : "delayed";
      const cancel = actionButton("Cancel", "cancel", job.id, async () => {
        $("list-message").textContent = await act("POST",
          `jobs/${enc(job.id)}/cancel?queue=${enc(page.queue)}`, (b) => `${b.id}: ${b.state}`);
        await loadList(true);
      });
      const actions = document.createElement("td");
      actions.appendChild(cancel);
      const due = job.due_at ? `${job.due_at >= now ? "in " : ""}${age(Math.abs(job.due_at - now))}${job.due_at < now ? " ago" : ""}` : "";
      return [jobLink(job.id), cell(job.type), cell(why), cell(job.attempts, "num"), cell(due),
              cell(job.last_error, "error"), actions];
    }));
    const what = page.state === "running" ? "running" : "scheduled";
    $("list-summary").textContent = `${number(page.total)} ${what} in ${page.queue}`;
    if (!$("list-message").textContent.includes(":")) {
      $("list-message").textContent = page.total ? "" : `no ${what} jobs in ${page.queue}`;
    }
  }

  $("list-queue").addEventListener("change", (event) => {
    state.listQueue = event.currentTarget.value;
    $("list-message").textContent = "";
    loadList(true);
  });
  $("list-kind").addEventListener("change", () => { $("list-message").textContent = ""; loadList(true); });
  $("chart-queue").addEventListener("change", (event) => {
    state.chartQueue = event.currentTarget.value;
    drawQueueCharts();
  });

  // ------------------------------------------------------------------ one job

  async function showJob(jobId, keepMessage = false) {
    jobId = jobId.trim();
    if (!jobId) return;
    state.job = jobId;
    $("job").hidden = false;
    const message = $("job-message").textContent;
    const response = await fetch(`jobs/${enc(jobId)}`).catch((err) => ({ ok: false, status: err }));
    if (!response.ok) {
      renderJob(null, jobId, response.status === 404 ? "no such job (or its record expired)"
        : `GET /jobs answered ${response.status}`);
      return;
    }
    renderJob(await response.json(), jobId, keepMessage ? message : "");
  }

  // While a shown job has not ended, it is read again with every tick: its state stays true.
  function followJob() {
    const job = state.shownJob;
    if (!$("job").hidden && job && job.id === state.job && !FINAL.has(job.state)) {
      showJob(job.id, true);
    }
  }

  function renderJob(job, jobId, problem) {
    $("job-title").textContent = jobId;
    $("job-state").textContent = job ? job.state : "unknown";
    $("job-state").className = `badge ${job ? job.state : ""}`;
    $("job-message").textContent = problem;
    $("job-cancel").hidden = !job || FINAL.has(job.state);
    $("job-requeue").hidden = !job || job.state !== "dead";
    $("job-delete").hidden = !job || job.state !== "dead";
    const fields = job ? [["type", job.type], ["queue", job.queue],
      ["attempts", `${job.attempts} (retries allowed: ${job.max_retries === null ? "the type's" : job.max_retries})`],
      ["timeout", job.timeout === null ? "the type's" : `${job.timeout}s`]] : [];
    $("job-fields").replaceChildren(...fields.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      return [dt, dd];
    }));
    const steps = job ? [["enqueued", job.enqueued_at], ["started", job.started_at],
      [job.state === "done" ? "done" : "ended", job.finished_at]].filter(([, t]) => t) : [];
    $("job-timeline").replaceChildren(...steps.map(([label, t], i) => {
      const li = document.createElement("li");
      const after = i > 0 ? ` (+${(t - steps[i - 1][1]).toFixed(3)}s)` : "";
      li.textContent = `${label} ${new Date(t * 1000).toLocaleTimeString()}${after}`;
      return li;
    }));
    const json = (v) => JSON.stringify(v, null, 2);
    $("job-payload").textContent = job ? json(job.data) : "";
    $("job-result").textContent = job && job.has_result ? json(job.result) : "";
    $("job-error").textContent = job ? job.last_error || "" : "";
    state.shownJob = job;
  }

  async function jobAction(method, path, describe) {
    const job = state.shownJob;
    if (!job) return;
    $("job-message").textContent = await act(method, path(job), describe);
    await showJob(job.id, true);
  }

  $("find").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `job=${enc($("find-id").value.trim())}`;
  });
  $("job-close").addEventListener("click", () => { $("job").hidden = true; history.replaceState(null, "", location.pathname + location.search); });
  $("job-cancel").addEventListener("click", () => jobAction("POST",
    (j) => `jobs/${enc(j.id)}/cancel?queue=${enc(j.queue)}`, (b) => `cancel: ${b.state}`));
  $("job-requeue").addEventListener("click", () => jobAction("POST",
    (j) => `failed/${enc(j.id)}/requeue?queue=${enc(j.queue)}`, () => "requeued"));
  $("job-delete").addEventListener("click", () => jobAction("DELETE",
    (j) => `failed/${enc(j.id)}?queue=${enc(j.queue)}`, () => "deleted"));
  function fromHash() {
    const match = location.hash.match(/^#job=(.+)$/);
    if (match) showJob(decodeURIComponent(match[1]));
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();

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
    addQueuePoints(snapshot);
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
    renderQueueSelects(snapshot);
    drawQueueCharts();
    loadDead(false);
    loadList(false);
    followJob();
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
      addQueuePoints(history.latest);
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
