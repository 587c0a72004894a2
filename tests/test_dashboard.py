#!/usr/bin/env python3
"""tests/test_dashboard.py — the dashboard in a real headless Chromium.

    test_dashboard.py --registry BIN --peer BIN --node BIN --cli BIN
                      --compute-lib SO --chromium BIN --out DIR
                      [--png-copy FILE]

A real picos-registry with --http 127.0.0.1:0, two member nodes
(tests/cluster_peer.c) and a compute node (`picos-node --compute --cpus 2`,
docs/computations.md), then headless Chromium (--headless=new, its own
--user-data-dir, --remote-debugging-port=0: the port is read from its
"DevTools listening on ws://..." line) driven over the DevTools protocol
with python3-websocket. Runtime.evaluate queries the DOM by the page's
stable hooks (services/dashboard/app.js's opening comment):

  - the page loads from the registry and shows both nodes up
    (tr[data-node=HEX][data-state=up]), with the stream live;
  - a node view opens on a click and names the node;
  - one node is killed with SIGKILL; its row turns down ("down: REASON")
    by itself, through the event stream. How long that took (from the
    kill to the DOM change, timed in the page by a MutationObserver on
    the same machine's clock) is printed as "down marked in X s"; the
    only bound asserted is a generous safety one (the issue's target is
    2 s; the registry's failure detection takes ~1 s);
  - every request the page made went to the registry (nothing from a CDN
    or anywhere else) and no script error was thrown;
  - Page.captureScreenshot is saved as DIR/dashboard.png (and copied to
    --png-copy when given: docs/dashboard.png, made once for the README);
  - computations: the compute node's row says "N / 2 busy" and the
    compute summary line appears with its 2 CPUs; then a stream of jobs
    (`picos submit COMPUTE_LIB sleep --data 50 --count 200`, run again
    each time it ends until the page's checks are done) makes the row's
    jobs/s and the summary's go above 0 and the jobs/s chart get a point
    above 0; a click opens the node view, whose computations panel
    (#node-compute) shows its CPUs and jobs done growing. The whole page
    then is DIR/compute.png. The view's names show the node's compute task
    with the ref `picos ls tasks` prints (NODE:SLOT.GEN). When the last stream has ended (every job
    "ok" on picos submit's stdout), the panel's jobs done must reach the
    number of jobs submitted, none failed, and the row's jobs/s go back
    to 0.

Without chromium or python3-websocket it prints one "SKIP: ..." line and
exits 77 (ctest: skipped; `make deps` installs both). Every child — the
registry, the nodes, Chromium and all its processes — runs in a process
group of its own, with SIGKILL as its parent-death signal, and the groups
are killed on every way out (normal end, failure, exception, SIGTERM or
SIGINT from ctest).
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

WAIT = 60.0   # bound on each wait that must end (a loaded sanitizer run)
SAFETY = 20.0  # bound on the down mark: failure detection ~1 s, target 2 s

COMPUTE_NAME = "dashcompute"  # the compute node's name
children = []  # Popen objects, each the leader of its own process group


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def own_group():
    """preexec_fn: a process group of its own, killed if we die."""
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(argv, out, err):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=err, preexec_fn=own_group)
    children.append(p)
    return p


def kill_all():
    for p in children:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in children:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    children.clear()


def on_signal(sig, _frame):
    raise SystemExit(128 + sig)


def wait_for(what, fn, bound=WAIT, every=0.02, seen=None):
    """Calls fn() until it returns something true; fails after bound s
    (saying what seen() returns then, when given)."""
    end = time.monotonic() + bound
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            fail("timed out (%.0f s) waiting for %s%s" % (
                bound, what, "; the page shows %s" % seen() if seen else ""))
        time.sleep(every)


def file_match(path, regex, proc, what):
    """Waits for a line of file `path` (a child's output) matching regex."""
    def look():
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        m = re.search(regex, text, re.M)
        if m:
            return m
        if proc.poll() is not None:
            fail("%s exited (%s) before it was ready: %s"
                 % (what, proc.returncode, text.strip()[-2000:]))
        return None
    return wait_for(what, look)


class Cdp:
    """A DevTools protocol session on one page target's websocket."""

    def __init__(self, url):
        import websocket
        self.ws = websocket.create_connection(url, timeout=WAIT,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method,
                                 "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    fail("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            fail("page script %r: %s" % (expr, r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def start_chromium(exe, tmp, out):
    """Headless Chromium on about:blank; returns (proc, DevTools port)."""
    err = os.path.join(out, "chromium.stderr")
    argv = [exe, "--headless=new", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--user-data-dir=" + os.path.join(tmp, "chromium"),
            "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--disable-extensions",
            "--disable-gpu", "--mute-audio", "--hide-scrollbars",
            "--window-size=1280,1100", "about:blank"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses root otherwise
    with open(err, "w") as e:
        p = spawn(argv, subprocess.DEVNULL, e)
    m = file_match(err, r"DevTools listening on ws://[^:]+:(\d+)/", p,
                   "chromium")
    return p, int(m.group(1))


def page_ws(port):
    def find():
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port,
                                    timeout=5) as r:
            for t in json.load(r):
                if t.get("type") == "page":
                    return t["webSocketDebuggerUrl"]
        return None
    return wait_for("chromium's page target", find)


# The page's state, read through its stable hooks.
ROWS_JS = """JSON.stringify([...document.querySelectorAll('#nodes tbody tr')]
  .map(r => ({node: r.dataset.node, state: r.dataset.state,
              status: r.querySelector('.c-status').textContent,
              name: r.querySelector('.c-name').textContent,
              rate: r.querySelector('.c-rate').textContent,
              jobs: r.querySelector('.c-jobs').textContent,
              compute: r.querySelector('.c-compute').textContent})))"""
# An element is seen when it takes room on the page (not hidden, by its
# attribute or by a style).
SEEN_JS = "(e => !!e && e.getClientRects().length > 0)"
# The compute summary line and the jobs/s chart.
SUMMARY_JS = """JSON.stringify((() => { const t = (i) =>
    document.getElementById(i).textContent; const seen = %s;
  const ch = Chart.getChart('chart-jobs');
  return {seen: seen(document.getElementById('compute-summary')),
          nodes: t('compute-nodes'), cpus: t('compute-cpus'),
          busy: t('compute-busy'), jobs: t('jobs-total'),
          done: t('compute-done'), failed: t('compute-failed'),
          chart: seen(document.getElementById('fig-jobs')),
          series: ch ? ch.data.datasets.map(d => ({label: d.label,
              max: Math.max(0, ...d.data.map(p => p.y || 0))})) : null}; })())
""" % SEEN_JS
# The node view and its computations panel: facts by their <dt>.
PANEL_JS = """JSON.stringify((() => { const v = document.getElementById('node');
  const seen = %s;
  return {seen: seen(v), node: v.dataset.node || '',
          panel: seen(document.getElementById('node-compute')),
          facts: Object.fromEntries([...document.querySelectorAll(
              '#node-compute-facts dt')].map(dt => [dt.textContent,
              dt.nextElementSibling ? dt.nextElementSibling.textContent
                                    : ''])) }; })())""" % SEEN_JS
OBSERVE_JS = """(() => { window.__downAt = {};
  new MutationObserver((ms) => { for (const m of ms) { const t = m.target;
      if (t.dataset.state === 'down' && !(t.dataset.node in __downAt))
        __downAt[t.dataset.node] = Date.now(); } })
    .observe(document.getElementById('nodes'),
             {subtree: true, attributes: true, attributeFilter: ['data-state']});
  return true; })()"""


def rows(cdp):
    return {r["node"]: r for r in json.loads(cdp.js(ROWS_JS))}


def save_png(cdp, path, full_page=False):
    """Page.captureScreenshot into path: the window, or the whole page."""
    import base64
    params = {"format": "png", "captureBeyondViewport": True}
    if full_page:
        size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
        params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                          "height": size["height"], "scale": 1}
    shot = cdp.call("Page.captureScreenshot", **params)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print("screenshot %s" % path, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--compute-lib", required=True)
    ap.add_argument("--chromium", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--png-copy", default="")
    a = ap.parse_args()

    exe = a.chromium or shutil.which("chromium") or ""
    if not exe or not os.access(exe, os.X_OK):
        print("SKIP: chromium not found (Debian package chromium; make deps)")
        return 77
    try:
        import websocket  # noqa: F401
    except ImportError:
        print("SKIP: python3 has no websocket module (python3-websocket; "
              "make deps)")
        return 77

    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="picos-dash-")
    try:
        return run(a, exe, tmp)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, exe, tmp):
    secret = os.path.join(tmp, "secret")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"the picos dashboard test secret, 1\n")
    os.close(fd)

    # the registry, its HTTP server on a port the kernel picks
    reg_dir = os.path.join(tmp, "reg")
    os.mkdir(reg_dir)
    reg_out, reg_err = (os.path.join(a.out, "registry." + s)
                        for s in ("stdout", "stderr"))
    with open(reg_out, "w") as o, open(reg_err, "w") as e:
        reg = spawn([a.registry, "--listen", "tcp://127.0.0.1:0",
                     "--data-dir", reg_dir, "--secret-file", secret,
                     "--name", "dashreg", "--http", "127.0.0.1:0"], o, e)
    m = file_match(reg_out, r"listening on (tcp://\S+)", reg, "picos-registry")
    reg_ep = m.group(1)
    # "..., http http://127.0.0.1:PORT/" on the same line
    m = file_match(reg_out, r"listening on .*\bhttp (http://[^/\s]+)/", reg,
                   "picos-registry's http address")
    base = m.group(1)
    print("registry %s, dashboard %s" % (reg_ep, base), flush=True)

    # two member nodes
    peers = []
    for i in range(2):
        po = os.path.join(a.out, "peer%d.stdout" % i)
        with open(po, "w") as o, \
                open(os.path.join(a.out, "peer%d.stderr" % i), "w") as e:
            p = spawn([a.peer, "--registries", reg_ep, "--secret-file",
                       secret], o, e)
        m = file_match(po, r"^READY (\S+) ([0-9a-f]+)$", p, "cluster_peer")
        peers.append((p, "%016x" % int(m.group(2), 16)))
    ids = [h for _, h in peers]
    print("nodes %s" % " ".join(ids), flush=True)

    # the compute node: 2 worker processes; as root its computations run
    # as uids from a base of this test's own (apart from other tests')
    cdir = os.path.join(tmp, "compute")
    os.mkdir(cdir, 0o700)
    co = os.path.join(a.out, "compute.stdout")
    with open(co, "w") as o, \
            open(os.path.join(a.out, "compute.stderr"), "w") as e:
        cn = spawn([a.node, "--registry", reg_ep, "--secret-file", secret,
                    "--name", COMPUTE_NAME, "--compute", "--cpus", "2",
                    "--data-dir", cdir, "--compute-uid-base",
                    str(300000 + (os.getpid() % 10000) * 16)], o, e)
    file_match(co, r" listening on ", cn, "picos-node --compute")
    cluster = {"registry": reg_ep, "secret": secret, "node": cn}

    _, port = start_chromium(exe, tmp, a.out)
    cdp = Cdp(page_ws(port))
    try:
        drive(a, cdp, base, peers, ids)
        compute(a, cdp, cluster)
        check_requests(cdp, base)
        print("OK", flush=True)
        return 0
    finally:
        cdp.close()


def drive(a, cdp, base, peers, ids):
    cdp.call("Runtime.enable")
    cdp.call("Network.enable")
    cdp.call("Page.enable")
    cdp.call("Page.navigate", url=base + "/")
    wait_for("the page's script", lambda: cdp.js(
        "document.readyState === 'complete' && !!document.getElementById('conn')"))
    wait_for("the event stream", lambda: cdp.js(
        "document.getElementById('conn').dataset.state === 'open'"))

    # both nodes up, each with a rate from two samples
    def both_up():
        r = rows(cdp)
        return all(i in r and r[i]["state"] == "up" and r[i]["status"] == "up"
                   and not r[i]["rate"].startswith("–") for i in ids)
    t0 = time.monotonic()
    wait_for("both nodes up on the page", both_up, seen=lambda: rows(cdp))
    print("both nodes up on the page after %.1f s" % (time.monotonic() - t0),
          flush=True)
    cdp.js(OBSERVE_JS)

    # the node view of the node that stays
    keep, gone = ids
    cdp.js("document.querySelector('tr[data-node=\"%s\"]').click(), true" % keep)
    wait_for("the node view", lambda: cdp.js(
        "!document.getElementById('node').hidden && "
        "document.getElementById('node').dataset.node === '%s' && "
        "document.getElementById('node-id').textContent === '%s'" % (keep, keep)))

    # kill one node; its row must turn down by itself
    killed_at = time.time()
    os.killpg(peers[1][0].pid, signal.SIGKILL)
    peers[1][0].wait()
    wait_for("the killed node marked down", lambda: rows(cdp)[gone]["state"]
             == "down", bound=SAFETY, every=0.01, seen=lambda: rows(cdp))
    marked = cdp.js("window.__downAt['%s']" % gone)
    r = rows(cdp)
    print("down marked in %.2f s (status: %r)"
          % (marked / 1000.0 - killed_at, r[gone]["status"]), flush=True)
    if not r[gone]["status"].startswith("down: "):
        fail("the down row says %r, not 'down: REASON'" % r[gone]["status"])
    if r[keep]["state"] != "up":
        fail("the node that stays is shown %r" % r[keep]["state"])

    # a little more history in the charts for the picture, then the picture
    time.sleep(2)
    png = os.path.join(a.out, "dashboard.png")
    save_png(cdp, png)
    if a.png_copy:
        shutil.copyfile(png, a.png_copy)


class JobStream:
    """`picos submit LIB sleep --data 50 --count 200` in the background, run
    again each time it ends (ok) while keep() is called: jobs keep running
    for as long as the page is being checked, however slow it is."""

    COUNT = 200

    def __init__(self, a, cluster):
        self.a, self.cluster = a, cluster
        self.runs = []  # (Popen, stdout path), the last one running or not

    def start(self):
        k = len(self.runs)
        out = os.path.join(self.a.out, "submit%d.stdout" % k)
        with open(out, "w") as o, \
                open(os.path.join(self.a.out, "submit%d.stderr" % k), "w") as e:
            p = spawn([self.a.cli, "--registry", self.cluster["registry"],
                       "--secret-file", self.cluster["secret"],
                       "--timeout", "%.0f" % WAIT, "submit",
                       self.a.compute_lib, "sleep", "--data", "50",
                       "--count", str(self.COUNT)], o, e)
        self.runs.append((p, out))

    def check(self, k):
        """Run k ended: every job ok, one line each."""
        p, out = self.runs[k]
        with open(out, errors="replace") as f:
            text = f.read()
        if p.returncode != 0:
            with open(out.replace(".stdout", ".stderr"), errors="replace") as f:
                fail("picos submit exited %s: %s" % (p.returncode,
                                                     f.read().strip()[-2000:]))
        ok = len(re.findall(r"^job \d+ ok \S+ [0-9.]+ s: slept$", text, re.M))
        if ok != self.COUNT:
            fail("picos submit printed %d 'job N ok ... slept' lines, not %d"
                 % (ok, self.COUNT))

    def keep(self):
        if self.runs[-1][0].poll() is not None:
            self.check(len(self.runs) - 1)
            self.start()

    def finish(self):
        """Waits for the last run's end; returns the jobs run in all."""
        p = self.runs[-1][0]
        wait_for("picos submit's end", lambda: p.poll() is not None)
        self.check(len(self.runs) - 1)
        return self.COUNT * len(self.runs)


def number(text):
    """The number a cell shows, or None ("–", empty)."""
    try:
        return float(text)
    except ValueError:
        return None


def compute(a, cdp, cluster):
    """The compute node in the table, the summary, the chart and its view."""
    def me():
        for r in rows(cdp).values():
            if r["name"] == COMPUTE_NAME:
                return r
        return None
    summary = lambda: json.loads(cdp.js(SUMMARY_JS))
    panel = lambda: json.loads(cdp.js(PANEL_JS))

    # its row, up, with its 2 CPUs, and the summary line with them
    r = wait_for("the compute node's row", lambda: (
        lambda r: r if r and r["state"] == "up" and
        re.fullmatch(r"\d+ / 2 busy", r["compute"]) else None)(me()),
        seen=lambda: rows(cdp))
    node = r["node"]
    print("compute node %s: %r" % (node, r["compute"]), flush=True)
    wait_for("the compute summary line with 1 node and 2 CPUs", lambda: (
        lambda s: s["seen"] and s["nodes"] == "1" and s["cpus"] == "2")(
        summary()), seen=summary)

    # a stream of jobs: the row's jobs/s goes above 0, the summary's too
    jobs = JobStream(a, cluster)
    jobs.start()
    t0 = time.monotonic()

    def rate_up():
        jobs.keep()
        r = me()
        x = number(r["jobs"]) if r else None
        return r if x and x > 0 else None
    r = wait_for("jobs/s above 0 in the compute node's row", rate_up,
                 every=0.1, seen=me)
    print("row jobs/s %s after %.1f s (compute %r)"
          % (r["jobs"], time.monotonic() - t0, r["compute"]), flush=True)

    def summary_up():
        jobs.keep()
        s = summary()
        x = number(s["jobs"])
        mine = [d for d in s["series"] or [] if d["label"] == COMPUTE_NAME]
        return s if (s["seen"] and s["cpus"] == "2" and x and x > 0 and
                     s["chart"] and mine and mine[0]["max"] > 0) else None
    s = wait_for("jobs/s above 0 in the summary and the jobs/s chart",
                 summary_up, every=0.1, seen=summary)
    print("summary: %s jobs/s, %s / %s CPUs busy, %s done; chart %s"
          % (s["jobs"], s["busy"], s["cpus"], s["done"], s["series"]),
          flush=True)

    # the node view: the computations panel, its jobs done growing
    cdp.js("document.querySelector('tr[data-node=\"%s\"]').click(), true"
           % node)
    done_re = re.compile(r"^(\d+) queued, (\d+) done, (\d+) failed$")

    def shown():
        jobs.keep()
        v = panel()
        f = v["facts"]
        m = done_re.match(f.get("jobs", ""))
        return (v, int(m.group(2))) if (
            v["seen"] and v["node"] == node and v["panel"] and m and
            f.get("CPUs", "").startswith("2 (")) else None
    v, done0 = wait_for("the node view's computations panel", shown,
                        seen=panel)
    print("panel: %s" % v["facts"], flush=True)

    def grown():
        x = shown()
        return x if x and x[1] > done0 and \
            int(x[0]["facts"].get("computations", "0")) >= 1 else None
    v, done1 = wait_for("jobs done growing in the panel (from %d)" % done0,
                        grown, every=0.1, seen=panel)
    print("panel jobs done %d -> %d: %s" % (done0, done1, v["facts"]),
          flush=True)
    save_png(cdp, os.path.join(a.out, "compute.png"), full_page=True)
    check_names(a, cdp, cluster, node)

    # the stream's end: every job counted on the node, none failed, and the
    # row's jobs/s back to 0
    total = jobs.finish()

    def all_done():
        v = panel()
        m = done_re.match(v["facts"].get("jobs", ""))
        return v if m and int(m.group(2)) >= total else None
    v = wait_for("the panel's jobs done at %d" % total, all_done, seen=panel)
    m = done_re.match(v["facts"]["jobs"])
    if int(m.group(2)) != total or m.group(3) != "0":
        fail("after %d jobs ok the panel says %r" % (total, v["facts"]["jobs"]))
    r = wait_for("jobs/s back to 0 in the row", lambda: (
        lambda r: r if number(r["jobs"]) == 0 else None)(me()), seen=me)
    print("%d jobs (%d runs of picos submit): panel %r, row jobs/s %s"
          % (total, len(jobs.runs), v["facts"]["jobs"], r["jobs"]), flush=True)


NAMES_JS = """JSON.stringify([...document.querySelectorAll(
    '#node-names tbody tr')].map(r => [...r.cells].map(c => c.textContent)))"""


def check_names(a, cdp, cluster, node):
    """The node view's names: the compute node's task with its ref as
    `picos ls tasks` prints it (pc_ref_str: NODE:SLOT.GEN)."""
    task = "picos.compute/" + COMPUTE_NAME
    out = os.path.join(a.out, "ls.stdout")
    with open(out, "w") as o, \
            open(os.path.join(a.out, "ls.stderr"), "w") as e:
        p = spawn([a.cli, "--registry", cluster["registry"], "--secret-file",
                   cluster["secret"], "--timeout", "%.0f" % WAIT, "ls",
                   "tasks", task], o, e)
    wait_for("picos ls tasks", lambda: p.poll() is not None)
    with open(out, errors="replace") as f:
        text = f.read()
    want = [ln.split()[2] for ln in text.splitlines()
            if len(ln.split()) >= 3 and ln.split()[1] == task]
    if p.returncode != 0 or len(want) != 1:
        fail("picos ls tasks %s (exit %s) printed %r"
             % (task, p.returncode, text))
    if not re.fullmatch(r"%s:\d+\.\d+" % node.lstrip("0"), want[0]):
        fail("picos ls tasks gives %s the ref %r" % (task, want[0]))
    shown = lambda: [r for r in json.loads(cdp.js(NAMES_JS)) if r[1] == task]
    r = wait_for("%s in the node view's names" % task, shown,
                 seen=lambda: cdp.js(NAMES_JS))
    if r[0][0] != "task" or r[0][2] != want[0]:
        fail("the node view shows %s as %r; picos ls tasks: %s"
             % (task, r[0], want[0]))
    print("names: %s %s" % (task, r[0][2]), flush=True)


def check_requests(cdp, base):
    """Only the registry's own routes, and no script error."""
    cdp.js("1")  # collects the events that came meanwhile
    for ev in cdp.events:
        if ev["method"] == "Network.requestWillBeSent":
            url = ev["params"]["request"]["url"]
            if not url.startswith(base + "/"):
                fail("the page fetched %s (not the registry)" % url)
        elif ev["method"] == "Runtime.exceptionThrown":
            fail("script error: %s" % ev["params"]["exceptionDetails"])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.exit(main())
