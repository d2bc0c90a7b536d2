"""Starting actor processes from Python (PROTOCOL.md section 12): any
program that serves the protocol, Go actors built with package spawn among
them."""

import collections
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import uuid as uuidlib

from . import channel as chan
from . import tree as treelib
from .log import parse_line, level_name
from .wire import RemoteError

ROOT = treelib.ROOT
GRACE_PERIOD = 5.0
KILL_DELAY = 2.0
TAIL_LINES = 20


class StartError(Exception):
    """The actor could not be started; `output` holds its first lines."""

    def __init__(self, msg, output=()):
        super().__init__(msg + ("\n" + "\n".join(output) if output else ""))
        self.output = list(output)


class ExitError(Exception):
    """The actor's process ended with a failure; `tail` holds its last stderr lines."""

    def __init__(self, name, status, tail):
        what = "exited with status %d" % status if status >= 0 else "was killed by %s" % signal.Signals(-status).name
        super().__init__("actor %s %s" % (name, what) + ("\n" + "\n".join(tail) if tail else ""))
        self.status = status
        self.tail = list(tail)


def _high(fd):
    """Moves fd above the numbers the child's descriptors get."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Actor:
    """A child actor process: `channel` to call it, `stop()` to end it."""

    def __init__(self, name, pid, channel, stderr_fd, logger, tree=None, uuid=""):
        self.name = name
        self.uuid = uuid
        self.pid = pid
        self.channel = channel
        self.logger = logger
        self.entry = None  # its registry entry, once registered
        self._tree = tree
        # Registering and reaping exclude each other: an actor that ends
        # before it is registered is not registered after its end.
        self._tree_lock = threading.Lock()
        self._reaped = False
        self._status = None
        self._lock = threading.Lock()
        self._exited = threading.Event()
        self._tail = collections.deque(maxlen=TAIL_LINES)
        self._head = []
        self._logs = threading.Thread(target=self._forward, args=(stderr_fd,), daemon=True)
        self._logs.start()
        self._reaper = threading.Thread(target=self._reap, daemon=True)
        self._reaper.start()

    def _forward(self, fd):
        with os.fdopen(fd, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._tail.append(line)
                if len(self._head) < 5 and line:
                    self._head.append(line)
                level, msg, fields = parse_line(line)
                if self.logger is not None:
                    fields["actor"] = self.name
                    self.logger.log(level, msg, extra={"fields": fields})

    def _reap(self):
        _, status = os.waitpid(self.pid, 0)
        self._status = os.waitstatus_to_exitcode(status)
        # Out of the tree's registry, with its subtree, before its end is
        # reported (PROTOCOL.md section 13).
        with self._tree_lock:
            self._reaped = True
            if self.entry is not None:
                try:
                    self._tree.unregister(self.uuid)
                except Exception as e:  # noqa: BLE001 - a parent without a registry, or gone: nothing to undo
                    self._log_debug("could not unregister the actor from the tree: %s" % e)
        self._exited.set()

    def _log_debug(self, msg):
        if self.logger is not None:
            self.logger.debug(msg, extra={"fields": {"actor": self.name}})

    def wait(self, timeout=None):
        """Waits for the process to end; returns its exit code (negative: the
        signal that killed it) or None on timeout."""
        if not self._exited.wait(timeout):
            return None
        return self._status

    def signal_group(self, sig):
        if not self._exited.is_set():
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, grace=GRACE_PERIOD, kill_delay=KILL_DELAY):
        """Stops the actor: arbor.stop, then SIGTERM to its process group
        after `grace` seconds, then SIGKILL after `kill_delay` more. Returns
        when the process has exited and its logs are read; raises ExitError
        if it ended with a failure it did not owe to this stop."""
        with self._lock:
            escalated = False
            if not self._exited.is_set() and not self.channel.done():
                try:
                    self.channel.call("arbor.stop", None, timeout=grace)
                except Exception:
                    pass
            if self.wait(grace) is None:
                escalated = True
                self.signal_group(signal.SIGTERM)
                if self.wait(kill_delay) is None:
                    self.signal_group(signal.SIGKILL)
                    self.wait()
            self.channel.close()
            self._logs.join()
            status = self._status
        if status != 0 and not escalated:
            raise ExitError(self.name, status, list(self._tail))
        return status

    def kill(self):
        """SIGKILLs the actor's process group and waits for it."""
        self.signal_group(signal.SIGKILL)
        self.wait()
        self.channel.close()
        self._logs.join()


def start_actor(binary, name, args=(), parent=None, env=None, log_level="info", functions=None,
                logger=None, handshake_timeout=10.0, aliases=None, tree=None):
    """Starts `binary` as an actor named `name` below this process's node
    of the tree (tree; the default is process_tree(): the actor this
    process is under arbor.main, otherwise a root of this process) over
    pipes, and returns once the handshake is done and the child is in the
    tree's registry (under `aliases` too). The child runs in a process
    group of its own. `functions` are what this side serves to the child,
    besides the registry and arbor.relay. `parent` overrides the identity
    it is started below, for tests."""
    tree = tree or treelib.process_tree()
    parent = parent or tree.actor
    me = {"name": parent["name"] + "." + name, "uuid": str(uuidlib.uuid4())}
    spec = {"actor": me, "parent": dict(parent), "log_level": log_level, "transport": "pipes",
            "peer_secret": tree.secret}
    down_r, down_w = map(_high, os.pipe())
    up_r, up_w = map(_high, os.pipe())
    err_r, err_w = map(_high, os.pipe())
    environ = dict(os.environ if env is None else env)
    environ["ARBOR_SPEC"] = json.dumps(spec)
    actions = [(os.POSIX_SPAWN_DUP2, down_r, 3), (os.POSIX_SPAWN_DUP2, up_w, 4), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    argv = [binary] + list(args)
    try:
        pid = os.posix_spawnp(binary, argv, environ, file_actions=actions, setpgroup=0)
    except OSError as e:
        for fd in (down_r, down_w, up_r, up_w, err_r, err_w):
            os.close(fd)
        raise StartError("starting %s: %s" % (binary, e))
    for fd in (down_r, up_w, err_w):
        os.close(fd)
    closed = []

    def close():
        if not closed:
            closed.append(True)
            os.close(down_w)
    ch = chan.Channel(chan.fd_reader(up_r), chan._write_all(down_w), close, parent, initiator=True,
                      functions=tree.functions(functions), logger=logger)
    actor = Actor(me["name"], pid, ch, err_r, logger, tree, me["uuid"])
    try:
        ch.handshake(handshake_timeout)
        if ch.peer.get("uuid") != me["uuid"]:
            raise chan.HandshakeError("the child introduced itself with uuid %s, not the %s it was given"
                                      % (ch.peer.get("uuid"), me["uuid"]))
    except chan.HandshakeError as e:
        actor.kill()
        raise StartError("actor %s: %s" % (me["name"], e), actor._head)
    _enter(actor, tree, me, parent, aliases)
    return actor


def _enter(actor, tree, me, parent, aliases):
    """Registers a started actor in the tree, with where it takes peers; a
    registry that is not there (a parent above that keeps none) is no
    error."""
    try:
        addr = actor.channel.call("arbor.peer_addr", None, timeout=treelib.REGISTRY_TIMEOUT)
    except RemoteError as e:
        if e.code != "unknown_function":
            actor._log_debug("the actor does not say where it takes peers: %s" % e)
        addr = ""
    except (chan.PeerGone, TimeoutError) as e:
        actor._log_debug("the actor does not say where it takes peers: %s" % e)
        addr = ""
    entry = {"name": me["name"], "aliases": list(aliases) if aliases else None, "uuid": me["uuid"],
             "parent": parent["uuid"], "pid": actor.pid, "host": socket.gethostname(),
             "addr": addr if isinstance(addr, str) else "", "seq": 0}
    try:
        with actor._tree_lock:
            if actor._reaped:
                return
            actor.entry = entry  # first: a registration that fails up the tree is still undone here at the reap
            tree.register(entry, actor.channel)
    except Exception as e:  # noqa: BLE001 - the actor runs, unregistered: Find will not find it
        if not (isinstance(e, RemoteError) and e.code == "unknown_function") and actor.logger is not None:
            actor.logger.warning("the actor is not in the tree's registry: Find will not find it: %s" % e,
                                 extra={"fields": {"actor": actor.name}})


def stderr_logger(name="arbor"):
    """A logger that prints what actors log, for programs and tests."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
        logger.addHandler(h)
    return logger


__all__ = ["start_actor", "Actor", "StartError", "ExitError", "level_name"]
