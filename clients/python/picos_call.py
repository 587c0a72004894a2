#!/usr/bin/python3
"""picos_call.py: call a Remote Pico Service and print its reply.

    picos_call.py [--registry EP] [--secret-file F | --key-file F]
                  [--timeout S] [--wait S] [--type T] [-v] SERVICE DATA

DATA is the request's bytes: a literal, '-' for stdin, '@FILE' for a file.
The reply's bytes go to stdout (with a newline when they lack one). Exit
status, as `picos call`: 0 the reply; 3 not found; 1 anything else (timed
out, failed with the service's error text, refused, wrong key, unreachable),
with one line on stderr; 2 a bad command line.
"""

import argparse
import os
import sys

import picos_client as pc

PROG = "picos_call"


def request_bytes(data):
    if data == "-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        with open(data[1:], "rb") as f:
            return f.read()
    return data.encode()


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("--registry", metavar="EP", default=os.environ.get(
        "PICOS_REGISTRY", "tcp://127.0.0.1:9705").split(",")[0],
        help="the registry's endpoint (default $PICOS_REGISTRY, else "
             "tcp://127.0.0.1:9705)")
    ap.add_argument("--secret-file", metavar="FILE", help="the cluster secret (default "
                    "$PICOS_SECRET_FILE, then $PICOS_SECRET)")
    ap.add_argument("--key-file", metavar="FILE", help="the cluster's key pair (picos keygen)")
    ap.add_argument("--timeout", metavar="S", type=float, default=10.0,
                    help="the call's deadline, seconds, once the service is "
                         "located (default 10)")
    ap.add_argument("--wait", metavar="S", type=float, default=0.0,
                    help="seconds to wait for the service to appear "
                         "(default 0: not found at once)")
    ap.add_argument("--type", metavar="T", default="", help="the request's message type")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="say on stderr where the call goes")
    ap.add_argument("service", help="the service's name")
    ap.add_argument("data", help="the request: its bytes, '-' (stdin) or "
                    "'@FILE'")
    a = ap.parse_args(argv)

    def say(text):
        if a.verbose:
            print("%s: %s" % (PROG, text), file=sys.stderr, flush=True)

    try:
        req = request_bytes(a.data)
        keys = pc.load_keys(a.secret_file, a.key_file)
        with pc.Client(a.registry, keys, name=PROG) as c:
            say("registry %s, node %016x" % (a.registry, c.node))
            _, value = c.call(a.service, req, a.type, a.timeout, a.wait,
                              on_accepted=lambda t: say(
                                  "accepted: task %016x/%x" % (t.node, t.id)))
    except pc.NotFound as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 3
    except (pc.PicosError, OSError) as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(value if value.endswith(b"\n") else value + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
