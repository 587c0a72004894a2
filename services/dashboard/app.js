/* app.js — the picos dashboard (docs/monitoring.md, "The dashboard").
 *
 * Everything comes from one Server-Sent Events stream, /api/v1/events: a
 * `snapshot` (every node's latest NodeStatusEntry) when the stream opens,
 * then a `status` per status the registry receives and a `down` when a
 * node leaves the cluster. Nothing polls the whole state: the only other
 * requests are, once per (re)connection, /api/v1/cluster (the registry's
 * name) and /api/v1/series for each node's last minutes in the charts,
 * and /api/v1/nodes/{id} for the names of the node shown in the node view
 * (when it is opened, then at most every NAMES_EVERY_MS while its statuses
 * come). EventSource reconnects by itself; each new connection starts with
 * a snapshot that replaces the table's state.
 *
 * Counters are totals since a node started; rates are computed here from
 * two consecutive samples of the same incarnation (node clock: sampledUs),
 * so a restart or a lost sample never shows a negative or a spike. A down
 * event marks its row at once (data-state="down", "down: REASON"); the
 * 1 s tick only ages the "last status" cells and redraws the charts.
 *
 * Computations: a node started with --compute carries status.compute
 * (ComputeStatus); its jobs/s is the rate of compute.jobsDone like the
 * message rates, the summary adds up the compute nodes that are up, the
 * node view shows the panel, and the jobs/s chart (shown once any node
 * computes) has one line per compute node.
 *
 * Messages are proto3 JSON: fields that hold their default are omitted
 * (num() and str() give 0 and ""), 64-bit integers are strings, node ids
 * 16 hex digits. Text from nodes (names, reasons) only ever goes into
 * textContent, never into HTML.
 *
 * Stable hooks for tests and users: tr[data-node="<16 hex>"] in
 * #nodes tbody with data-state="up|down", its cells td.c-name, .c-status,
 * .c-cpu, .c-mem, .c-tasks, .c-rate, .c-jobs, .c-compute, .c-age;
 * #conn[data-state="open|connecting"]; #node[data-node] for the node view,
 * #node-compute (hidden on a node without computations).
 */
'use strict';

(function () {
  const WINDOW_S = 300;        // the charts show the last 5 minutes
  const NAMES_EVERY_MS = 5000; // node view: names refreshed at most this often
  const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
                  '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

  // hex id -> {entry, last: {inc, t, sent, recv, jobs, svc}, inRate,
  //            outRate, jobRate, svcRate: {name: calls/s}, seen (Date.now()
  //            of its last event), color}
  const nodes = new Map();
  let selected = null;   // the hex id in the node view, or null
  let namesAt = 0;       // when the node view's names were last asked for

  /* ---- small helpers ---------------------------------------------------- */

  const $ = (id) => document.getElementById(id);
  const num = (v) => { const n = Number(v); return Number.isFinite(n) ? n : 0; };
  const str = (v) => (v === undefined || v === null ? '' : String(v));

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function fmtBytes(b) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    for (b = num(b); b >= 1024 && i < u.length - 1; i++) b /= 1024;
    return (i ? b.toFixed(1) : String(b)) + ' ' + u[i];
  }
  const fmtRate = (x) => (x === null || x === undefined ? '–'
                          : x >= 100 ? x.toFixed(0) : x.toFixed(1));
  const fmtPct = (x) => num(x).toFixed(0) + ' %';
  const fmtMs = (us) => (num(us) / 1000).toFixed(2);

  function fmtAge(ms) {
    const s = Math.max(0, ms) / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.floor(s % 60) + ' s';
    return (s / 3600).toFixed(1) + ' h';
  }

  // A node id as 16 hex digits: NodeStatus's node fields are already that;
  // a Ref's may come as a decimal string.
  function hexId(v) {
    const s = str(v);
    if (/^[0-9a-fA-F]{16}$/.test(s)) return s.toLowerCase();
    try { return BigInt(s).toString(16).padStart(16, '0'); } catch (e) { return s; }
  }

  // A ref as `picos ls` prints it (pc_ref_str()): NODE:SLOT.GEN, where
  // Ref.id is generation << 32 | slot (a 64-bit integer: a string, read
  // as a BigInt); Ref.incarnation is the node's, not part of the text.
  function fmtRef(r) {
    if (!r || typeof r !== 'object') return str(r);
    let id = 0n;
    try { id = BigInt(str(r.id) || '0'); } catch (e) { /* not an integer: 0 */ }
    return hexId(r.node).replace(/^0+(?=.)/, '') + ':' +
           (id & 0xffffffffn) + '.' + (id >> 32n);
  }

  // Replaces a table body's rows, one per item, cells from cells(item).
  function fillBody(table, items, cells) {
    const body = $(table).tBodies[0];
    body.replaceChildren();
    for (const it of items) {
      const tr = el('tr');
      for (const c of cells(it)) tr.appendChild(el('td', str(c)));
      body.appendChild(tr);
    }
  }

  /* ---- the state: samples and rates ------------------------------------- */

  // Rate between two samples of a counter, or null when there is no
  // comparable previous one.
  function rate(now, before, dt) {
    if (before === undefined || dt <= 0 || now < before) return null;
    return (now - before) / dt;
  }

  function take(entry) {
    const s = entry.status || {};
    const id = hexId(s.node);
    let n = nodes.get(id);
    if (!n) {
      n = {color: COLORS[nodes.size % COLORS.length], inRate: null,
           outRate: null, jobRate: null, svcRate: {}};
      nodes.set(id, n);
    }
    const t = num(s.sampledUs) / 1e6, inc = str(s.incarnation);
    const sent = num(s.msgsSent), recv = num(s.msgsReceived);
    const jobs = s.compute ? num(s.compute.jobsDone) : undefined;
    const svc = {};
    for (const v of s.services || []) svc[str(v.name)] = num(v.calls);
    const last = n.last;
    if (last && last.inc === inc && t > last.t && entry.up) {
      const dt = t - last.t;
      n.inRate = rate(recv, last.recv, dt);
      n.outRate = rate(sent, last.sent, dt);
      n.jobRate = jobs === undefined ? null : rate(jobs, last.jobs, dt);
      n.svcRate = {};
      for (const name in svc) n.svcRate[name] = rate(svc[name], last.svc[name], dt);
      sample(id, n, s);
    } else if (!last || last.inc !== inc) {
      n.inRate = n.outRate = n.jobRate = null;
      n.svcRate = {};
    }
    if (!last || t >= last.t || last.inc !== inc)
      n.last = {inc, t, sent, recv, jobs, svc};
    n.entry = entry;
    n.seen = Date.now();
    return id;
  }

  /* ---- the cluster table ------------------------------------------------ */

  function row(id) {
    const body = $('nodes').tBodies[0];
    let tr = body.querySelector('tr[data-node="' + id + '"]');
    if (tr) return tr;
    tr = el('tr');
    tr.dataset.node = id;
    for (const c of ['name', 'status', 'cpu', 'mem', 'tasks', 'rate', 'jobs',
                     'compute', 'age'])
      tr.appendChild(el('td', '', 'c-' + c));
    tr.addEventListener('click', () => select(id));
    // keep the rows sorted by node name, then id
    const key = (r) => (nodes.get(r.dataset.node)?.entry?.status?.name || '') +
                       ' ' + r.dataset.node;
    let before = null;
    for (const r of body.rows) if (key(r) > key(tr)) { before = r; break; }
    body.insertBefore(tr, before);
    $('no-nodes').hidden = true;
    return tr;
  }

  function drawRow(id) {
    const n = nodes.get(id), e = n.entry, s = e.status || {};
    const tr = row(id), up = !!e.up;
    const cell = (c) => tr.querySelector('.c-' + c);
    tr.dataset.state = up ? 'up' : 'down';
    const name = cell('name');
    name.textContent = str(s.name) || id;
    name.title = id + ' (' + str(s.host) + ', pid ' + num(s.pid) + ')';
    cell('status').textContent = up ? 'up'
        : 'down: ' + (str(e.downReason) || 'unknown');
    cell('cpu').textContent = fmtPct(s.cpuAvailablePct);
    cell('mem').textContent = fmtBytes(s.memAvailable) + ' / ' + fmtBytes(s.memTotal);
    cell('tasks').textContent = num(s.tasks) + (num(s.actors) ? ' + ' + num(s.actors) : '');
    cell('rate').textContent = up ? fmtRate(n.inRate) + ' · ' + fmtRate(n.outRate) : '–';
    const c = s.compute;
    cell('jobs').textContent = up && c ? fmtRate(n.jobRate) : '–';
    cell('compute').textContent = !c ? '–'
        : num(c.workersBusy) + ' / ' + num(c.cpus) + ' busy' +
          (c.suspended ? ', suspended' : '');
    cell('compute').classList.toggle('suspended', !!(c && c.suspended));
    drawAge(id);
  }

  // How long since the registry last heard from the node: the time since
  // this page got its last event, plus how old it already was then (from
  // the snapshot: receivedUs against this browser's clock, at least 0).
  function drawAge(id) {
    const n = nodes.get(id), tr = row(id);
    const ms = Date.now() - n.seen + (n.ageAtSeen || 0);
    const c = tr.querySelector('.c-age');
    c.textContent = fmtAge(ms);
    const every = num(n.entry.status?.intervalMs) || 1000;
    c.classList.toggle('late', n.entry.up && ms > 3 * every);
  }

  function drawSummary() {
    let up = 0, down = 0, total = 0;
    for (const n of nodes.values()) {
      if (n.entry.up) { up++; total += (n.inRate || 0); } else down++;
    }
    $('nodes-up').textContent = up;
    $('nodes-down').textContent = down;
    $('msgs-total').textContent = fmtRate(total);
    // the compute nodes that are up, added up
    const sum = {nodes: 0, cpus: 0, busy: 0, reserved: 0, jobs: 0, done: 0, failed: 0};
    let any = false;
    for (const n of nodes.values()) {
      const c = n.entry.status?.compute;
      if (!c) continue;
      any = true;
      if (!n.entry.up) continue;
      sum.nodes++;
      sum.cpus += num(c.cpus);
      sum.busy += num(c.workersBusy);
      sum.reserved += num(c.cpusReserved);
      sum.jobs += n.jobRate || 0;
      sum.done += num(c.jobsDone);
      sum.failed += num(c.jobsFailed);
    }
    $('compute-summary').hidden = !any;
    $('fig-jobs').hidden = !any;
    $('compute-nodes').textContent = sum.nodes;
    $('compute-cpus').textContent = sum.cpus;
    $('compute-busy').textContent = sum.busy;
    $('compute-reserved').textContent = sum.reserved;
    $('jobs-total').textContent = fmtRate(sum.jobs);
    $('compute-done').textContent = sum.done;
    $('compute-failed').textContent = sum.failed;
  }

  /* ---- the node view ---------------------------------------------------- */

  function select(id) {
    selected = id;
    namesAt = 0;
    for (const r of $('nodes').tBodies[0].rows)
      r.classList.toggle('selected', r.dataset.node === id);
    $('node').hidden = false;
    $('node').dataset.node = id;
    fillBody('node-names', [], () => []);
    drawNode();
  }

  function drawNode() {
    const n = nodes.get(selected);
    if (!n) return;
    const e = n.entry, s = e.status || {};
    $('node-name').textContent = str(s.name) || selected;
    $('node-id').textContent = selected;
    $('node-state').textContent = e.up ? 'up' : 'down: ' + (str(e.downReason) || 'unknown');
    $('node-state').dataset.state = e.up ? 'up' : 'down';
    const facts = [
      ['host', str(s.host) + ', pid ' + num(s.pid)],
      ['up for', fmtAge(num(s.sampledUs) / 1000 - num(s.startedUs) / 1000)],
      ['CPU free', fmtPct(s.cpuAvailablePct) + ' of ' + num(s.cpus) +
                   ' (this process ' + fmtPct(s.procCpuPct) + ')'],
      ['load', num(s.load1).toFixed(2)],
      ['memory free', fmtBytes(s.memAvailable) + ' / ' + fmtBytes(s.memTotal)],
      ['RSS', fmtBytes(s.rss)],
      ['disk free', fmtBytes(s.diskFree) + ' under ' + (str(s.dataDir) || '.')],
      ['swap free', fmtPct(s.swapAvailablePct)],
      ['tasks, actors', num(s.tasks) + ', ' + num(s.actors) + ' on ' +
                        num(s.workers) + ' workers'],
      ['messages', num(s.msgsSent) + ' sent, ' + num(s.msgsReceived) +
                   ' received, ' + num(s.msgsDropped) + ' dropped, ' +
                   num(s.msgsRefused) + ' refused'],
      ['links', num(s.envOut) + ' out, ' + num(s.envIn) + ' in, ' +
                num(s.nodesDown) + ' nodes down seen'],
    ];
    const dl = $('node-facts');
    dl.replaceChildren();
    for (const [k, v] of facts) { dl.appendChild(el('dt', k)); dl.appendChild(el('dd', v)); }
    const c = s.compute;
    $('node-compute').hidden = !c;
    const cl = $('node-compute-facts');
    cl.replaceChildren();
    if (c) {
      const cf = [
        ['CPUs', num(c.cpus) + ' (' + num(c.cpusReserved) + ' reserved)'],
        ['computations', num(c.sessions)],
        ['workers', num(c.workersBusy) + ' busy / ' + num(c.workers) + ' up'],
        ['jobs', num(c.jobsQueued) + ' queued, ' + num(c.jobsDone) + ' done, ' +
                 num(c.jobsFailed) + ' failed'],
        ['jobs/s', fmtRate(n.jobRate)],
        ['workers lost', num(c.workersLost)],
        ['state', c.suspended ? 'suspended' : 'running jobs'],
      ];
      for (const [k, v] of cf) { cl.appendChild(el('dt', k)); cl.appendChild(el('dd', String(v))); }
    }
    fillBody('node-services', s.services || [], (v) => [
      v.name, num(v.version), num(v.calls), fmtRate(n.svcRate[str(v.name)]),
      num(v.failures), num(v.refused), num(v.running), num(v.queued),
      fmtMs(v.latencyP50Us), fmtMs(v.latencyP90Us), fmtMs(v.latencyP99Us),
      fmtMs(v.latencyMaxUs), v.suspended ? 'suspended' : 'serving']);
    fillBody('node-channels', s.channels || [], (c) => [
      c.name, num(c.published), num(c.delivered), num(c.dropped), num(c.subscribers)]);
    fillBody('node-peers', s.peers || [], (p) => [
      p.name, hexId(p.node), p.endpoint, p.up ? 'up' : 'down',
      fmtAge(num(p.heartbeatAgeMs)), num(p.queue)]);
    fillBody('node-deepest', s.deepest || [], (d) => [fmtRef(d.task), d.name, num(d.depth)]);
    if (Date.now() - namesAt >= NAMES_EVERY_MS) fetchNames(selected);
  }

  function fetchNames(id) {
    namesAt = Date.now();
    fetch('/api/v1/nodes/' + id)
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
      .then((j) => {
        if (selected !== id) return;
        const names = (j.names || []).slice().sort((a, b) =>
          (str(a.kind) + a.name < str(b.kind) + b.name ? -1 : 1));
        fillBody('node-names', names, (x) =>
          [(str(x.kind) || 'TASK').toLowerCase(), x.name, fmtRef(x.ref)]);
      })
      .catch((err) => console.warn('names of', id, err));
  }

  /* ---- the charts ------------------------------------------------------- */

  const clock = (v) => new Date(v * 1000).toLocaleTimeString([], {hour12: false});

  function makeChart(canvas) {
    return new Chart($(canvas), {
      type: 'line',
      data: {datasets: []},
      options: {
        animation: false, parsing: false, normalized: true,
        responsive: true, maintainAspectRatio: false,
        elements: {point: {radius: 0}, line: {borderWidth: 1.5}},
        scales: {x: {type: 'linear', ticks: {callback: clock, maxTicksLimit: 6}},
                 y: {beginAtZero: true}},
        plugins: {legend: {labels: {boxWidth: 12}}},
      },
    });
  }
  const charts = {rates: makeChart('chart-rates'), jobs: makeChart('chart-jobs'),
                  latency: makeChart('chart-latency')};

  // The dataset `label` of a chart (made on first use), its points {x, y}.
  function series(chart, label, color, dashed) {
    let d = chart.data.datasets.find((x) => x.label === label);
    if (!d) {
      d = {label, data: [], borderColor: color, backgroundColor: color,
           borderDash: dashed ? [4, 3] : [], spanGaps: false};
      chart.data.datasets.push(d);
    }
    return d.data;
  }

  // Points are placed on the registry's clock (receivedUs, s): the live
  // ones and the history /api/v1/series gives alike. skew is how far this
  // browser's clock is ahead of it (the least seen: the stream's delay).
  let skew = null;
  const regNow = () => Date.now() / 1000 - (skew || 0);

  // One sample of node id into the charts.
  function sample(id, n, s) {
    const x = num(n.entry.receivedUs) / 1e6, name = str(s.name) || id;
    series(charts.rates, name + ' in', n.color, false).push({x, y: n.inRate});
    series(charts.rates, name + ' out', n.color, true).push({x, y: n.outRate});
    if (s.compute) series(charts.jobs, name, n.color, false).push({x, y: n.jobRate});
    for (const v of s.services || []) {
      const calls = n.svcRate[str(v.name)];
      const ms = (us) => (calls ? num(us) / 1000 : null); // no calls: a gap
      const label = name + '/' + str(v.name);
      series(charts.latency, label + ' p99', n.color, false).push({x, y: ms(v.latencyP99Us)});
      series(charts.latency, label + ' p50', n.color, true).push({x, y: ms(v.latencyP50Us)});
    }
  }

  // The last WINDOW_S of node id's history, once per stream connection,
  // merged with what the page already has (sorted by time, a sample that
  // is in both kept once). A latency of 0 is "no call ended": a gap.
  function history(id) {
    const n = nodes.get(id), s = n.entry.status || {}, name = str(s.name) || id;
    const since = Math.floor((regNow() - WINDOW_S) * 1e6);
    const want = [[charts.rates, name + ' in', false, 'msgs_received_rate', 1],
                  [charts.rates, name + ' out', true, 'msgs_sent_rate', 1]];
    if (s.compute) want.push([charts.jobs, name, false, 'jobs_done_rate', 1]);
    for (const v of s.services || []) {
      const label = name + '/' + str(v.name);
      want.push([charts.latency, label + ' p99', false, 'service_p99_us:' + v.name, 1e-3],
                [charts.latency, label + ' p50', true, 'service_p50_us:' + v.name, 1e-3]);
    }
    for (const [chart, label, dashed, what, scale] of want) {
      series(chart, label, n.color, dashed); // made now: the legend's order
      fetch('/api/v1/series?node=' + id + '&what=' + encodeURIComponent(what) +
            '&since=' + since)
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
        .then((j) => {
          const pts = series(chart, label, n.color, dashed);
          const t = j.t || [], v = j.v || [];
          for (let i = 0; i < t.length && i < v.length; i++) {
            const y = num(v[i]) * scale;
            pts.push({x: num(t[i]) / 1e6, y: scale !== 1 && !y ? null : y});
          }
          pts.sort((p, q) => p.x - q.x);
          for (let i = pts.length - 1; i > 0; i--) if (pts[i].x === pts[i - 1].x) pts.splice(i, 1);
        })
        .catch((err) => console.warn('history of', id, what, err));
    }
  }

  // The time axis (the registry's clock): from the oldest point, at least
  // the last minute, at most the last WINDOW_S.
  function drawCharts() {
    const now = regNow();
    let oldest = now;
    for (const c of Object.values(charts))
      for (const d of c.data.datasets) if (d.data.length) oldest = Math.min(oldest, d.data[0].x);
    const min = Math.min(now - 60, Math.max(now - WINDOW_S, oldest));
    for (const c of Object.values(charts)) {
      for (const d of c.data.datasets) {
        let i = 0;
        while (i < d.data.length && d.data[i].x < min) i++;
        if (i) d.data.splice(0, i);
      }
      c.options.scales.x.min = min;
      c.options.scales.x.max = now;
      c.update('none');
    }
  }

  /* ---- the event stream ------------------------------------------------- */

  function onEntry(entry, fromSnapshot) {
    const id = take(entry);
    const n = nodes.get(id);
    // from a snapshot, the status may already be old: how old, as far as
    // this browser's clock agrees with the registry's
    const ahead = Date.now() / 1000 - num(entry.receivedUs) / 1e6;
    if (!fromSnapshot && entry.up && (skew === null || ahead < skew)) skew = ahead;
    n.ageAtSeen = fromSnapshot ? Math.max(0, (ahead - (skew || 0)) * 1000) : 0;
    drawRow(id);
    if (id === selected) drawNode();
  }

  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (e) {
      console.warn('bad event', ev.type, e);
      return null;
    }
  }

  function setConn(state, text) {
    $('conn').dataset.state = state;
    $('conn').textContent = text;
  }

  function connect() {
    const es = new EventSource('/api/v1/events');
    es.addEventListener('open', () => {
      setConn('open', 'live');
      fetch('/api/v1/cluster').then((r) => (r.ok ? r.json() : null)).then((j) => {
        if (j && j.registry) $('registry').textContent = '— ' + str(j.registry.name);
      }).catch(() => {});
    });
    es.addEventListener('error', () => {
      // EventSource retries by itself (CONNECTING); CLOSED only when the
      // server refused the stream (e.g. 503, too many): retry ourselves.
      setConn('connecting', 'reconnecting…');
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    });
    es.addEventListener('snapshot', (ev) => {
      const j = parse(ev);
      if (!j) return;
      const ids = new Set();
      for (const e of j.nodes || []) { onEntry(e, true); ids.add(hexId(e.status?.node)); }
      for (const id of ids) history(id);
      for (const id of [...nodes.keys()]) {   // gone from the registry
        if (ids.has(id)) continue;
        nodes.delete(id);
        $('nodes').tBodies[0].querySelector('tr[data-node="' + id + '"]')?.remove();
      }
      $('no-nodes').hidden = nodes.size > 0;
      drawSummary();
    });
    for (const type of ['status', 'down']) {
      es.addEventListener(type, (ev) => {
        const e = parse(ev);
        if (!e) return;
        if (type === 'down') e.up = false;
        onEntry(e, false);
        drawSummary();
      });
    }
  }

  $('node-close').addEventListener('click', () => {
    selected = null;
    $('node').hidden = true;
    delete $('node').dataset.node;
    for (const r of $('nodes').tBodies[0].rows) r.classList.remove('selected');
  });

  setInterval(() => {
    for (const id of nodes.keys()) drawAge(id);
    drawCharts(); // the time axis moves on even without new samples
  }, 1000);

  connect();
})();
