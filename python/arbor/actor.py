"""Running this process as an actor its parent started (PROTOCOL.md section 12)."""

import json
import logging
import os
import signal
import socket
import sys
import threading

import msgpack

from . import channel as chan
from .relay import RelayTarget
from .tree import Tree, set_process_tree
from .log import JSONLineHandler, LEVELS

SPEC_ENV = "ARBOR_SPEC"
LIFELINE_GRACE = 0.9  # seconds an actor whose parent has gone spends stopping
TRANSPORTS = ("pipes", "socketpair", "stdio", "unix")


class SpecError(Exception):
    pass


def read_spec(raw):
    """Parses and checks an ARBOR_SPEC value. "handshake" (1.3) means the
    spec comes in the parent's hello, over stdio (PROTOCOL.md section 12.7):
    the result then has "from_hello" and only the transport."""
    if raw == "handshake":
        return {"from_hello": True, "transport": "stdio", "actor": {"name": "", "uuid": ""},
                "parent": {"name": "", "uuid": ""}, "log_level": ""}
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise SpecError("%s is not valid JSON: %s" % (SPEC_ENV, e))
    return check_spec(spec)


def check_spec(spec):
    """Checks a spec's fields, from ARBOR_SPEC's JSON or a hello's map."""
    if not isinstance(spec, dict):
        raise SpecError("%s is not a JSON object" % SPEC_ENV)
    for key in ("actor", "parent"):
        v = spec.get(key)
        if not isinstance(v, dict) or not isinstance(v.get("name", ""), str) or not isinstance(v.get("uuid", ""), str):
            raise SpecError("%s: %r must be {\"name\": ..., \"uuid\": ...}" % (SPEC_ENV, key))
        spec[key] = {"name": v.get("name", ""), "uuid": v.get("uuid", "")}
    transport = spec.get("transport")
    if transport not in TRANSPORTS:
        raise SpecError("%s: unknown transport %r" % (SPEC_ENV, transport))
    if transport == "unix" and not (isinstance(spec.get("addr"), str) and isinstance(spec.get("secret"), str)):
        raise SpecError("%s: the unix transport needs addr and secret" % SPEC_ENV)
    if not isinstance(spec.get("log_level", ""), str):
        raise SpecError("%s: log_level must be a string" % SPEC_ENV)
    if not isinstance(spec.get("heartbeat_ms", 0), int):
        raise SpecError("%s: heartbeat_ms must be an integer" % SPEC_ENV)
    return spec


def secret_line(spec):
    """What a child writes on connecting to the unix transport, before its
    hello (PROTOCOL.md section 12.2)."""
    return spec["secret"].encode("ascii") + b"\n"


def _inherit(fd):
    os.set_inheritable(fd, False)
    os.set_blocking(fd, True)
    return fd


def connect(spec):
    """The child's end of the transport: (reader, write, close)."""
    t = spec["transport"]
    if t == "pipes":
        return _pipe_stream(_inherit(3), _inherit(4))
    if t == "stdio":
        rfd, wfd = os.dup(0), os.dup(1)
        _inherit(rfd), _inherit(wfd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # what the program prints goes to its log, not the channel
        sys.stdout = sys.stderr
        return _pipe_stream(rfd, wfd)
    if t == "socketpair":
        sock = socket.socket(fileno=_inherit(3))
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(spec["addr"])
        sock.settimeout(None)
        sock.sendall(secret_line(spec))
    return _socket_stream(sock)


def _pipe_stream(rfd, wfd):
    closed = []

    def close():
        if not closed:
            closed.append(True)
            os.close(wfd)
    return chan.fd_reader(rfd), chan._write_all(wfd), close


def _socket_stream(sock):
    def close():
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    return chan.BufferedReader(sock.recv, sock.close), sock.sendall, close


def main(functions, on_stop=None):
    """Runs this process as an actor if its parent started it as one, and
    otherwise returns at once. As an actor it serves `functions` until its
    parent stops it, it gets SIGTERM or SIGINT, or the parent goes; it then
    cancels what it serves, waits for it, and exits with status 0. It never
    returns then; if it cannot start, it prints why and exits with status 2.
    Call it from the main thread."""
    raw = os.environ.get(SPEC_ENV)
    if raw is None:
        return
    del os.environ[SPEC_ENV]  # programs it runs are not actors unless it spawns them
    try:
        spec = read_spec(raw)
        _serve(spec, functions, on_stop)
    except (SpecError, OSError, chan.HandshakeError) as e:
        print("arbor actor: %s" % e, file=sys.stderr, flush=True)
        os._exit(2)
    sys.stderr.flush()
    os._exit(0)


def actor_logger(spec):
    logger = logging.getLogger("arbor.actor")
    logger.handlers[:] = [JSONLineHandler(sys.stderr)]
    logger.propagate = False
    logger.setLevel(LEVELS.get(spec.get("log_level") or "info", logging.INFO))
    return logger


def _serve(spec, functions, on_stop):
    logger = actor_logger(spec)
    stop = threading.Event()
    why = {}

    def on_signal(signum, frame):
        if stop.is_set():
            sys.stderr.flush()
            os._exit(0)  # a second signal while stopping means now
        why["signal"] = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def serve_stop(ctx, args):
        # (1.2) {"by": actor}: the parent stops this actor on behalf of
        # an actor further up, whom the cancelled calls name; a peer on a
        # relayed channel (1.5) names itself, or is named when it does not.
        by = args.get("by") if isinstance(args, dict) else None
        why.setdefault("stopped", by if isinstance(by, dict) and by.get("uuid") else ctx.peer)
        stop.set()
        return None
    serve_stop._arbor_runtime = True

    def serve_peer_addr(ctx, args):
        return ""  # (1.4) no peer socket: dialers come through the tree
    serve_peer_addr._arbor_runtime = True

    # What relayed channels serve (PROTOCOL.md section 13.3): the actor's
    # functions and arbor.stop, for a peer that stops it by name.
    relayed = chan.Functions()
    relayed.table = dict(functions.table if functions else {})
    relayed.add("arbor.stop", "func", serve_stop)
    base = {"logger": logger, "spec": spec}
    relays = RelayTarget(relayed, logger, base)
    # This process's node of the tree (PROTOCOL.md section 13): the
    # actors it starts are registered through it, and the relays that
    # are not for it pass through it.
    tree = Tree(spec["actor"], target=relays, secret=spec.get("peer_secret"))
    table = chan.Functions()
    table.table = dict(relayed.table)
    table.add("arbor.peer_addr", "func", serve_peer_addr)
    table.add("arbor.relay", "context", tree.serve_relay)
    reader, write, close = connect(spec)
    ch = chan.Channel(reader, write, close, spec["actor"], initiator=False, functions=table, logger=logger,
                      base=base)
    tree.up = ch  # before the handshake: nothing is served until it is done
    set_process_tree(tree)

    def from_hello(raw):
        given = check_spec(msgpack.unpackb(raw, raw=False))
        spec.update(given)
        spec.pop("from_hello", None)
        ch.logger = base["logger"] = actor_logger(spec)
        tree.actor = dict(spec["actor"])
        tree.secret = spec.get("peer_secret") or tree.secret
        return spec["actor"]

    ch.handshake(spec_from_hello=from_hello if spec.get("from_hello") else None)
    logger = ch.logger
    ch.start_heartbeat(spec.get("heartbeat_ms", 0) / 1000.0)
    watcher = threading.Thread(target=lambda: (ch.wait(), stop.set()), daemon=True)
    watcher.start()
    while not stop.wait(3600):
        pass
    if "signal" in why:
        by, reason, grace = spec["actor"], "actor received %s" % why["signal"], None
    elif why.get("stopped"):
        by = why["stopped"] if isinstance(why["stopped"], dict) else ch.peer
        reason, grace = "actor stopped by its parent", None
        name = by.get("name", "")
        if by.get("uuid") != ch.peer.get("uuid") and not spec["actor"]["name"].startswith(name + "."):
            reason = "actor stopped by %s" % name  # a peer, not an actor above (Go's StopActor)
    else:
        by, reason, grace = ch.peer, "actor's parent went away", LIFELINE_GRACE
    logger.debug("stopping", extra={"fields": {"reason": reason}})
    # Relayed channels first, so that their answers go back before the
    # relays' own calls on the parent's channel end (section 13.3).
    relayed_done = relays.close(by, reason, grace)
    # Relays through this actor go on while it stops the actors below,
    # whose answers they carry; they end with those actors' channels.
    if not ch.cancel_served(by, reason, grace, spare=("arbor.relay",)) or not relayed_done:
        return  # calls ignore their cancellation; with the parent gone nobody waits
    if on_stop is not None:
        on_stop()
    ch.close(wait=False)  # the process exits next: the parent sees the end
