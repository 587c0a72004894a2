"""picos_client: call a Remote Pico Service from Python.

A small client of the picos wire protocol, version 1, written from
docs/PROTOCOL.md and proto/ only: it is the proof that the wire is open.
It is one picos *node* that never listens (a pure client, PROTOCOL.md §1):

1. the cluster's CURVE key pair, from a key file made by `picos keygen` or
   derived from the cluster secret (§2);
2. a DEALER per picos node it talks to, a Hello each way (§7), heartbeats
   while it waits (§8);
3. a LOOKUP of the task "picos.registry" on the registry node, then a
   RegRequest LOCATE of the service's name (§18.1);
4. a link to the service's node, an RpsCall to its acceptor task, then
   RpsAccepted and RpsDone (or RpsRefused) back (§18.2).

Everything is synchronous and single-threaded: one poll loop (Client._wait)
reads every link, answers what must be answered and sends the heartbeats,
and every wait in it has a deadline. Errors are exceptions, subclasses of
PicosError, with one line of text each.

The protobuf modules (control_pb2, envelope_pb2, registry_pb2, rps_pb2) are
generated from proto/ by protoc: put them on sys.path (or in $PICOS_PB_DIR);
when they are not there and protoc is, they are generated into a temporary
directory at import.
"""

import atexit
import hashlib
import itertools
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

# ---- the schema ---------------------------------------------------------------

_PB = ("control_pb2", "envelope_pb2", "registry_pb2", "rps_pb2")
_PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "..", "..", "proto")


def _generate_pb():
    """protoc the repository's proto/ into a temporary directory."""
    protoc = shutil.which("protoc")
    if not protoc or not os.path.isdir(_PROTO_DIR):
        raise ImportError("picos_client: the modules generated from proto/ "
                          "are missing: run protoc -I proto --python_out=DIR "
                          "proto/*.proto and put DIR in PICOS_PB_DIR")
    out = tempfile.mkdtemp(prefix="picos-pb-")
    atexit.register(shutil.rmtree, out, True)
    protos = [os.path.join(_PROTO_DIR, m[:-4] + ".proto") for m in _PB]
    if subprocess.run([protoc, "-I", _PROTO_DIR, "--python_out=" + out] +
                      protos).returncode:
        raise ImportError("picos_client: protoc failed on " + _PROTO_DIR)
    return out


def _load_pb():
    if os.environ.get("PICOS_PB_DIR"):
        sys.path.insert(0, os.environ["PICOS_PB_DIR"])
    try:
        return [__import__(m) for m in _PB]
    except ImportError:
        sys.path.insert(0, _generate_pb())
        return [__import__(m) for m in _PB]


C, E, R, S = _load_pb()    # control, envelope, registry, rps

# ---- errors -----------------------------------------------------------------


class PicosError(Exception):
    """Anything that went wrong; str() is one line."""


class AuthError(PicosError):
    """A node refused our CURVE key: not the cluster's secret or key file."""


class Unreachable(PicosError):
    """Nothing answered, or a link went silent (its node is down)."""


class Timeout(PicosError):
    """The call's deadline passed."""


class NotFound(PicosError):
    """No such service in the registry."""


class Refused(PicosError):
    """The service refused the call (RpsRefused): .code, and the text."""

    def __init__(self, code, text):
        super().__init__("refused (%s): %s" % (S.RpsRefusal.Name(code), text))
        self.code = code


class Failed(PicosError):
    """The call's task did not end normally (RpsDone): .outcome, the text."""

    def __init__(self, outcome, text):
        super().__init__(text)
        self.outcome = outcome


# ---- keys (PROTOCOL.md §2) ---------------------------------------------------

SECRET_MIN, SECRET_MAX = 16, 4096


def keys_from_secret(secret):
    """The cluster's (public, secret) key pair, Z85, from a shared secret."""
    if not SECRET_MIN <= len(secret) <= SECRET_MAX or b"\0" in secret:
        raise PicosError("a cluster secret is 16 to 4096 bytes, without NUL")
    seed = hashlib.blake2b(secret, digest_size=32,
                           key=b"picos-curve-v1/cluster-key-seed").digest()
    sec = z85.encode(hashlib.sha512(seed).digest()[:32])
    return zmq.curve_public(sec), sec


def _read_private(path, what, limit):
    """A file holding key material: regular, mode 0600 or stricter."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise PicosError("%s %s: not a regular file" % (what, path))
        if st.st_mode & 0o077:
            raise PicosError("%s %s: readable by others (chmod 600 it)"
                             % (what, path))
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise PicosError("%s %s: %s" % (what, path, e.strerror)) from None
    if len(data) > limit:
        raise PicosError("%s %s: longer than %d bytes" % (what, path, limit))
    return data


def read_secret_file(path):
    """The secret in a secret file (one trailing newline is not part of it)."""
    data = _read_private(path, "secret file", SECRET_MAX + 2)
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    return data


def read_key_file(path):
    """The (public, secret) pair, Z85, of a key file made by `picos keygen`:
    two lines, "public <Z85>" and "secret <Z85>"."""
    lines = _read_private(path, "key file", 256).splitlines()
    words = [ln.split(b" ") for ln in lines]
    if (len(words) != 2 or [w[0] for w in words] != [b"public", b"secret"] or
            any(len(w) != 2 or len(w[1]) != 40 for w in words)):
        raise PicosError("key file %s: not two lines 'public Z85' and "
                         "'secret Z85'" % path)
    pub, sec = words[0][1], words[1][1]
    try:
        ok = zmq.curve_public(sec) == pub
    except (zmq.ZMQError, ValueError):
        ok = False
    if not ok:
        raise PicosError("key file %s: the public key is not the secret "
                         "key's" % path)
    return pub, sec


def load_keys(secret_file=None, key_file=None):
    """The key pair as the picos CLI finds it: --key-file, --secret-file,
    then $PICOS_SECRET_FILE, then $PICOS_SECRET."""
    if key_file:
        return read_key_file(key_file)
    secret_file = secret_file or os.environ.get("PICOS_SECRET_FILE")
    if secret_file:
        return keys_from_secret(read_secret_file(secret_file))
    if os.environ.get("PICOS_SECRET") is not None:
        return keys_from_secret(os.environ["PICOS_SECRET"].encode())
    raise PicosError("no cluster secret: give --secret-file FILE or "
                     "--key-file FILE, or set PICOS_SECRET_FILE or "
                     "PICOS_SECRET")


# ---- one link: a DEALER to one picos node ---------------------------------------

ME = 1                 # the id of our one "task" (slot 1): replies come to it
MAX_FRAME = 1 << 20    # what we accept, announced in our Hello
HEARTBEAT = 0.2        # our heartbeat and timeout, announced in our Hello
TIMEOUT = 1.0
_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED |
           zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH |
           zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
           zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_dealers = itertools.count()


class Link:
    """One connection (§1): a CURVE-client DEALER, its socket monitor, the
    peer's Hello once it came, and when we last sent and heard anything."""

    def __init__(self, client, endpoint):
        self.client, self.endpoint = client, endpoint
        self.hello = None          # the peer's Hello: the link is up
        self.connected = self.handshook = False
        self.last_in = self.last_out = time.monotonic()
        s = client.ctx.socket(zmq.DEALER)
        s.linger = 0
        s.maxmsgsize = MAX_FRAME
        s.reconnect_ivl, s.reconnect_ivl_max = 100, 1000
        # our own routing id (node, incarnation, n): after a reconnect the
        # ROUTER hands the same id over, so the link goes on (§19 item 9)
        s.routing_id = (client.node.to_bytes(8, "little") +
                        client.incarnation.to_bytes(8, "little") +
                        next(_dealers).to_bytes(4, "little"))
        pub, sec = client.keys
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = pub, pub, sec
        self.mon = s.get_monitor_socket(_EVENTS)
        s.connect(endpoint)
        self.sock = s
        self.send_hello()   # queued until the connection is made

    def ref(self, id_):
        """A ref of the peer's (its incarnation as its Hello said)."""
        return C.Ref(node=self.hello.node, incarnation=self.hello.incarnation,
                     id=id_)

    def send(self, *envs):
        frame = E.Frame()
        for e in envs:
            e.version = 1
            frame.env.append(e)
        self.sock.send(frame.SerializeToString())
        self.last_out = time.monotonic()

    def send_hello(self):
        c = self.client
        self.send(E.Envelope(kind=E.HELLO, hello=C.Hello(
            node=c.node, incarnation=c.incarnation, name=c.name, versions=[1],
            heartbeat_ms=int(HEARTBEAT * 1000), timeout_ms=int(TIMEOUT * 1000),
            max_frame=MAX_FRAME, host=socket.gethostname(), pid=os.getpid())))

    def envelope(self, kind, to_id, from_id=ME, **fields):
        """An envelope from our task `from_id` to the peer's task `to_id`."""
        c = self.client
        me = C.Ref(node=c.node, incarnation=c.incarnation, id=from_id)
        return E.Envelope(kind=kind, to=self.ref(to_id), **{"from": me},
                          **fields)

    def close(self):
        if self.hello:
            self.send(E.Envelope(kind=E.GOODBYE))  # "it left": no timeout
        self.sock.disable_monitor()
        self.mon.close(0)
        self.sock.close(200 if self.hello else 0)

    # -- what the poll loop calls

    def on_monitor(self):
        """Socket events: a CURVE handshake that fails is a wrong key."""
        ev = recv_monitor_message(self.mon)
        e = ev["event"]
        if e == zmq.EVENT_CONNECTED:
            self.connected, self.handshook = True, False
        elif e == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshook = True
        elif e == zmq.EVENT_DISCONNECTED:
            if self.connected and not self.handshook:
                self.handshake_failed("closed the connection")
            self.connected = False
        elif e == zmq.EVENT_HANDSHAKE_FAILED_AUTH:   # ZAP said no (§2)
            raise AuthError("%s refused our key (ZAP status %d): wrong "
                            "cluster secret or key file?"
                            % (self.endpoint, ev["value"]))
        elif e & (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                  zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            self.handshake_failed("hung up")

    def handshake_failed(self, how):
        """A server that can't open our CURVE HELLO (another server key:
        another cluster) just hangs up (§2)."""
        raise AuthError("%s %s during the CURVE handshake: it does not hold "
                        "our key (wrong cluster secret or key file?)"
                        % (self.endpoint, how))

    def on_frame(self):
        """One ZeroMQ message: a Frame of envelopes, each handled in order."""
        parts = self.sock.recv_multipart()
        self.last_in = time.monotonic()
        if len(parts) != 1:
            return   # a frame is one part (§1)
        for e in E.Frame.FromString(parts[0]).env:
            self.on_envelope(e)

    def on_envelope(self, e):
        if e.kind == E.HELLO:
            if self.hello and e.hello.incarnation != self.hello.incarnation:
                raise Unreachable("%s started again" % self.endpoint)
            self.hello = e.hello
        elif e.kind == E.HEARTBEAT:
            pass
        elif e.kind == E.GOODBYE:
            raise Unreachable("the node at %s left" % self.endpoint)
        elif e.kind == E.REFUSED:
            if e.refusal.code == C.NOT_HELLO:   # it forgot the connection
                self.send_hello()
            else:
                raise PicosError("%s refused what we sent (%s): %s" % (
                    self.endpoint, C.RefusalCode.Name(e.refusal.code),
                    e.refusal.text))
        elif self.hello:
            if e.kind == E.DELIVER:   # a DELIVER wants the mailbox's verdict
                self.send(E.Envelope(kind=E.DELIVER_ACK, corr=e.corr,
                                     to=getattr(e, "from"), **{"from": e.to}))
            self.client.inbox.append(e)

    def tick(self, now):
        """Heartbeat when due; the peer silent past its timeout is down."""
        if not self.hello:
            return
        hb = min(HEARTBEAT, self.hello.heartbeat_ms / 1000 or HEARTBEAT) / 2
        if now - self.last_out >= hb:
            self.send(E.Envelope(kind=E.HEARTBEAT))
        limit = max(TIMEOUT, self.hello.timeout_ms / 1000)
        if now - self.last_in > limit:
            raise Unreachable("%s silent for %.1f s: its node is down"
                              % (self.endpoint, now - self.last_in))

    def stale(self, now):
        """Silent from our side so long that the peer may have declared
        this incarnation down (we heartbeat only inside _wait)."""
        limit = (self.hello.timeout_ms / 1000 or TIMEOUT) if self.hello else 1
        return now - self.last_out > limit / 2


# ---- the client --------------------------------------------------------------


def _rand64():
    return int.from_bytes(os.urandom(8), "little") or 1


class Client:
    """A picos node that calls services located through one registry.

        with Client("tcp://127.0.0.1:9705", load_keys("secret")) as c:
            value_type, value = c.call("echo", b"hello", timeout=5)
    """

    def __init__(self, registry, keys, name="picos-python"):
        self.registry, self.keys, self.name = registry, keys, name
        self.ctx = zmq.Context()
        self.node = _rand64()
        self.links = {}            # endpoint -> Link
        self.inbox = []            # envelopes for our task, in order
        self.corr = itertools.count(1)
        self.call_ids = itertools.count(1)
        self.registry_task = None
        self._new_incarnation()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.ctx.term()

    def _new_incarnation(self):
        """A fresh start of this node: new incarnation, no links (a node
        that declared the old one down would refuse it forever, §8)."""
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.inbox.clear()
        self.registry_task = None
        self.incarnation = _rand64()

    # -- the poll loop

    def _wait(self, what, deadline, found, link):
        """Pump every link until found() returns something (returned), or
        raise Timeout at `deadline` (time.monotonic()) naming `what`. What
        goes wrong on `link`, the one we wait on, is raised; another link
        that fails (a registry down during a call) is only forgotten."""
        while True:
            r = found()
            if r is not None:
                return r
            now = time.monotonic()
            if now >= deadline:
                raise Timeout("%s: no answer in time" % what)
            poller, handlers = zmq.Poller(), {}
            for other in list(self.links.values()):
                self._guard(other, link, other.tick, now)
            for other in self.links.values():
                handlers[other.sock] = (other, other.on_frame)
                handlers[other.mon] = (other, other.on_monitor)
                poller.register(other.sock, zmq.POLLIN)
                poller.register(other.mon, zmq.POLLIN)
            step = min(deadline - now, HEARTBEAT / 4)
            for sock, _ in poller.poll(max(1, int(step * 1000))):
                other, handler = handlers[sock]
                if other.endpoint in self.links:
                    self._guard(other, link, handler)

    def _guard(self, other, link, fn, *args):
        """fn(*args) of link `other`: its errors are raised when it is the
        link waited on, else it is dropped."""
        try:
            fn(*args)
        except PicosError:
            if other is link:
                raise
            del self.links[other.endpoint]
            other.close()
            if other.endpoint == self.registry:
                self.registry_task = None

    def _take(self, match):
        """The first envelope of the inbox that match() accepts, or None."""
        for i, e in enumerate(self.inbox):
            if match(e):
                return self.inbox.pop(i)
        return None

    def _link(self, endpoint, deadline):
        """The link to the node at endpoint, up (its Hello came)."""
        now = time.monotonic()
        if any(link.stale(now) for link in self.links.values()):
            self._new_incarnation()
        link = self.links.get(endpoint)
        if not link:
            link = self.links[endpoint] = Link(self, endpoint)
        try:
            self._wait("connecting to " + endpoint, deadline,
                       lambda: link.hello, link)
        except Timeout:
            if not link.connected:
                raise Unreachable("%s: unreachable (nothing accepts "
                                  "connections there)" % endpoint) from None
            raise Timeout("%s: connected, but no picos Hello came"
                          % endpoint) from None
        return link

    def _lookup(self, link, name, deadline):
        """LOOKUP (§9): the id of the task registered as name on link's node."""
        corr = next(self.corr)
        link.send(link.envelope(E.LOOKUP, 0, from_id=0, corr=corr,
                                lookup=C.Lookup(name=name)))
        r = self._wait("lookup of %s at %s" % (name, link.endpoint), deadline,
                       lambda: self._take(lambda e: e.kind == E.LOOKUP_REPLY
                                          and e.corr == corr), link)
        if r.status != 0:
            raise PicosError("%s: no task '%s' there (status %d): not a picos "
                             "registry?" % (link.endpoint, name, r.status))
        return getattr(r, "from").id

    def _send_msg(self, link, to_id, pb):
        """A picos message (SEND, §10): type = the protobuf's full name,
        payload = its bytes, from our task to link's task to_id."""
        link.send(link.envelope(E.SEND, to_id, type=pb.DESCRIPTOR.full_name,
                                payload=pb.SerializeToString()))

    def _msg(self, link, classes, match):
        """found() for _wait: the first message from link's node whose type
        is one of `classes` and that match()es once decoded (it leaves the
        inbox)."""
        types = {c.DESCRIPTOR.full_name: c for c in classes}

        def found():
            for e in self.inbox:
                if (e.kind in (E.SEND, E.DELIVER) and e.type in types and
                        getattr(e, "from").node == link.hello.node):
                    pb = types[e.type].FromString(e.payload)
                    if match(pb):
                        self.inbox.remove(e)
                        return pb
            return None
        return found

    # -- the registry (§18.1)

    def locate(self, service, timeout=5.0, wait=0.0):
        """The registry's NameEntry of `service` (kind SERVICE): its ref
        (the acceptor) and its node's endpoint. wait: how long the registry
        waits for the name to appear (0: NotFound at once when absent);
        timeout: for the rest (the link, the registry's answer)."""
        deadline = time.monotonic() + wait + timeout
        reg = self._link(self.registry, deadline)
        if not self.registry_task:
            self.registry_task = self._lookup(reg, "picos.registry", deadline)
        rid = next(self.corr)
        self._send_msg(reg, self.registry_task, R.RegRequest(
            id=rid, op=R.LOCATE, timeout_ms=int(wait * 1000),
            names=[R.NameEntry(kind=R.SERVICE, name=service)]))
        r = self._wait("locating " + service, deadline, self._msg(
            reg, [R.RegReply], lambda r: r.id == rid), reg)
        if r.status in (R.NOT_FOUND, R.TIMED_OUT):
            raise NotFound("service %s: not found (%s)" % (service, r.text))
        if r.status != R.OK or not r.names:
            raise PicosError("locating %s: %s: %s"
                             % (service, R.RegStatus.Name(r.status), r.text))
        return r.names[0]

    # -- a call (§18.2)

    def call(self, service, request=b"", request_type="", timeout=10.0,
             wait=0.0, on_accepted=None):
        """Call `service` with the bytes `request` (a picos message of type
        request_type) and return its result: (value_type, value bytes).
        locate(service, timeout, wait) finds it; then `timeout` seconds are
        the call's deadline, carried in the RpsCall: the service ends the
        call's task if it still runs then. Raises NotFound, Refused, Failed
        (error with its text, killed, closed), Timeout, Unreachable,
        AuthError. on_accepted(task_ref) is called when the task runs."""
        entry = self.locate(service, timeout, wait)
        deadline = time.monotonic() + timeout
        if not entry.endpoint:
            raise Unreachable("service %s: its node does not listen" % service)
        link = self._link(entry.endpoint, deadline)
        if (link.hello.node, link.hello.incarnation) != (
                entry.ref.node, entry.ref.incarnation):
            raise Unreachable("service %s: another node answers at %s (it "
                              "started again?)" % (service, entry.endpoint))
        acceptor, cid = entry.ref.id, next(self.call_ids)
        # a DOWN comes if the acceptor is gone (or goes) before it answers
        link.send(link.envelope(E.MONITOR, acceptor))
        left_ms = int((deadline - time.monotonic()) * 1000)
        self._send_msg(link, acceptor, S.RpsCall(
            id=cid, deadline_ms=max(1, left_ms), request_type=request_type,
            request=request))

        def answer(*classes):
            mine = self._msg(link, classes, lambda pb: pb.id == cid)

            def found():
                if self._take(lambda e: e.kind == E.DOWN and
                              getattr(e, "from").id == acceptor and
                              getattr(e, "from").node == link.hello.node):
                    raise Failed(S.RPS_CLOSED_DONE, "service %s: its acceptor "
                                 "ended (the service closed)" % service)
                return mine()
            return found

        try:
            a = self._wait("call of " + service, deadline,
                           answer(S.RpsAccepted, S.RpsRefused), link)
            if isinstance(a, S.RpsRefused):
                raise Refused(a.code, a.text)
            if on_accepted:
                on_accepted(a.task)
            # the server ends the task at the deadline and says so: wait a
            # little longer than the deadline for that RpsDone
            d = self._wait("call of " + service, deadline + 1.0,
                           answer(S.RpsDone), link)
        finally:
            if link.hello:
                link.send(link.envelope(E.DEMONITOR, acceptor))
        if d.outcome == S.RPS_NORMAL:
            return d.value_type, d.value
        if d.outcome == S.RPS_TIMED_OUT:
            raise Timeout("service %s: timed out (the service ended the call "
                          "at its deadline)" % service)
        text = {S.RPS_ERROR: "failed: " + d.error, S.RPS_KILLED: "killed",
                S.RPS_CLOSED_DONE: "the service closed"}.get(
                    d.outcome, "outcome %d" % d.outcome)
        raise Failed(d.outcome, "service %s: %s" % (service, text))
