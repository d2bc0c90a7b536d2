"""The tree's registry and relays in a Python parent (PROTOCOL.md sections
13 and 13.3).

Each process of a tree is one node of it: a Tree is this process's. In an
actor (arbor.main) it has the channel to its parent, `up`, and passes the
registry's calls up it, one hop at a time; in a program that is not an
actor it is the root, and holds the registry itself. Either way it keeps
the route to each actor below it, the child channel its registration came
up on, and relays hop by hop: arbor.relay that is not for this actor goes
down a route or up to the parent, its bytes passed on both ways with each
hop's credit.

One Tree per process (process_tree), as the process is one node of one
tree: start_actor registers what it starts in it, and arbor.main makes it
the actor's. The functions it serves run on the threads of the channels
that call them; a relay passing through runs one more thread, for the
direction toward the far end, which its call waits for.
"""

import os
import secrets
import socket
import threading
import time
import uuid as uuidlib

from .channel import BadArgument, CANCEL_WAIT, Channel, DeadlineExceeded, Functions, HandshakeError, PeerGone
from .relay import (HANDSHAKE_TIMEOUT, MAX_HOPS, RELAY_CHUNK, RELAY_LINGER, NoRelay, NotFound, RelayBroken,
                    RelayStream, _relay_args)

REGISTRY_TIMEOUT = 5.0  # bounds a registration sent up: a parent that does not answer holds no start or reap
MAX_GONE = 4096  # the removed uuids remembered, to drop registrations that crossed their removal

ROOT = {"name": "root", "uuid": str(uuidlib.uuid4())}

REGISTRY_FUNCTIONS = ("arbor.register", "arbor.unregister", "arbor.find", "arbor.wait_for", "arbor.list")


def entry_of(v):
    """Checks a registry entry from the wire and returns a copy with every
    key; raises BadArgument."""
    if not isinstance(v, dict):
        raise BadArgument("an entry is a map")
    out = {}
    for key in ("name", "uuid", "parent", "host", "addr"):
        x = v.get(key, "") or ""
        if not isinstance(x, str):
            raise BadArgument("entry.%s must be a string" % key)
        out[key] = x
    aliases = v.get("aliases")
    if aliases is not None and (not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases)):
        raise BadArgument("entry.aliases must be an array of strings")
    out["aliases"] = list(aliases) if aliases else None
    for key in ("pid", "seq"):
        x = v.get(key, 0) or 0
        if not isinstance(x, int) or isinstance(x, bool):
            raise BadArgument("entry.%s must be an integer" % key)
        out[key] = x
    if not out["uuid"]:
        raise BadArgument("an entry needs a uuid")
    return out


def _name_arg(v, fn):
    if not isinstance(v, str):
        raise BadArgument("%s takes a string" % fn)
    return v


class Tree:
    """This process's node of the tree: actor is its identity; up the
    channel to its parent (None: the root, which holds the registry);
    target, a RelayTarget, serves the relays that end here (None: the
    root, which takes none); secret, the tree's, which the specs of the
    actors it starts carry."""

    def __init__(self, actor, up=None, target=None, secret=None):
        self.actor = {"name": actor["name"], "uuid": actor["uuid"]}
        self.up = up
        self.target = target
        self.secret = secret or secrets.token_hex(32)
        self._cond = threading.Condition()
        self._seq = 0
        self._entries = {}  # uuid -> entry, of the actors below (in the root: the registry)
        self._via = {}  # uuid -> the child channel it is, or is below
        self._gone = {}  # uuid -> None: removed lately, in order

    @property
    def is_root(self):
        return self.up is None

    # --- the registry ---

    def root_entry(self):
        return {"name": self.actor["name"], "aliases": None, "uuid": self.actor["uuid"], "parent": "",
                "pid": os.getpid(), "host": socket.gethostname(), "addr": "", "seq": 0}

    def register(self, entry, via=None, timeout=REGISTRY_TIMEOUT):
        """Records entry, reached through the child channel via, and passes
        it up; the root's record is the registry."""
        e = entry_of(entry)
        with self._cond:
            # Dropped if it, or its parent, was removed while this came up.
            if e["uuid"] not in self._gone and e["parent"] not in self._gone:
                self._seq += 1
                if self.is_root:
                    e["seq"] = self._seq
                self._entries[e["uuid"]] = e
                if via is not None:
                    self._via[e["uuid"]] = via
                self._cond.notify_all()
        if self.up is not None:
            self.up.call("arbor.register", entry, timeout=timeout)
        return None

    def unregister(self, uuid, timeout=REGISTRY_TIMEOUT):
        """Removes the actor uuid and every actor below it, and passes it up."""
        _name_arg(uuid, "arbor.unregister")
        with self._cond:
            gone = {uuid}
            grew = True
            while grew:  # and every entry below it
                grew = False
                for u, e in self._entries.items():
                    if u not in gone and e["parent"] in gone:
                        gone.add(u)
                        grew = True
            for u in gone:
                self._entries.pop(u, None)
                self._via.pop(u, None)
                self._gone.pop(u, None)
                self._gone[u] = None  # the newest last
            while len(self._gone) > MAX_GONE:
                del self._gone[next(iter(self._gone))]
        if self.up is not None:
            self.up.call("arbor.unregister", uuid, timeout=timeout)
        return None

    def find(self, name, timeout=None):
        """The living actor of the tree named name (full name or alias), of
        several the one registered first; raises NotFound. Not the root:
        asks it, the call bounded by timeout (seconds; None: no bound), and
        raises its error, a RemoteError (name "arbor.not_found" for none)."""
        _name_arg(name, "arbor.find")
        if self.up is not None:
            return self.up.call("arbor.find", name, timeout=timeout)
        with self._cond:
            e = self._find(name)
        if e is None:
            raise NotFound("no actor named %s in the tree" % name)
        return e

    def _find(self, name):
        best = None
        for e in self._entries.values():
            if (e["name"] == name or name in (e["aliases"] or ())) and (best is None or e["seq"] < best["seq"]):
                best = e
        if best is None and name == self.actor["name"]:
            return self.root_entry()
        return dict(best) if best is not None else None

    def wait_for(self, name, timeout=None):
        """As find, but waits until such an actor is registered, at most
        timeout seconds (None: no bound): then raises DeadlineExceeded in
        the root, and the parent's RemoteError (code "deadline") elsewhere."""
        _name_arg(name, "arbor.wait_for")
        if self.up is not None:
            return self.up.call("arbor.wait_for", name, timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                e = self._find(name)
                if e is not None:
                    return e
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DeadlineExceeded("no actor named %s in the tree within %g s" % (name, timeout))
                self._cond.wait(left)

    def list(self, prefix, timeout=None):
        """The living actors whose name is prefix or begins with prefix and
        a dot (all for ""), the root's among them, by name then seq. Not
        the root: asks it, the call bounded by timeout."""
        _name_arg(prefix, "arbor.list")
        if self.up is not None:
            return self.up.call("arbor.list", prefix, timeout=timeout)
        with self._cond:
            out = [dict(e) for e in self._entries.values()
                   if not prefix or e["name"] == prefix or e["name"].startswith(prefix + ".")]
        if not prefix or prefix == self.actor["name"]:
            out.append(self.root_entry())
        out.sort(key=lambda e: (e["name"], e["seq"]))
        return out

    def route(self, uuid):
        """The child channel toward the actor uuid, if it is below."""
        with self._cond:
            return self._via.get(uuid)

    def next_hop(self, uuid, came_from):
        """Where a relay toward uuid that came in on came_from goes on: down
        a route, else up; None if neither."""
        ch = self.route(uuid)
        if ch is not None and ch is not came_from:
            return ch
        if self.up is not None and self.up is not came_from:
            return self.up
        return None

    # --- dialing (PROTOCOL.md sections 13.1 and 13.3) ---

    def dial(self, name, functions=None, timeout=None):
        """A channel to the actor of the tree named name: find, then
        dial_entry. timeout bounds each."""
        return self.dial_entry(self.find(name, timeout=timeout), functions, timeout)

    def dial_entry(self, entry, functions=None, timeout=None):
        """A channel to the actor entry names (from find, wait_for or list),
        this actor the initiator, serving functions (a Functions, or None)
        to it. A Python process takes no peer socket and dials none: the
        channel always runs through the tree, on the bytes of arbor.relay
        opened on the next hop, down a route if the actor is below, else up
        to the parent (section 13.3). timeout (seconds; None: 10) bounds
        the opening, not the channel. Raises NoRelay for the root of the
        tree (it takes no connections), NotFound with no way to the actor,
        the relay's RemoteError, TimeoutError or HandshakeError. Close the
        channel it returns."""
        e = entry_of(entry)
        if not e["parent"]:
            raise NoRelay("%s is the root of the tree, which takes no connections" % e["name"])
        timeout = HANDSHAKE_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        nxt = self.next_hop(e["uuid"], None)
        if nxt is None:
            raise NotFound("connecting to %s (%s): %s knows no way to it" % (e["name"], e["uuid"], self.actor["name"]))
        # No deadline on the call: the relay lasts as long as the channel.
        call = nxt.start_context("arbor.relay", {"to": e["uuid"], "name": e["name"], "hops": []})
        try:
            call.wait_started(max(0.0, deadline - time.monotonic()))
            started = call.started if isinstance(call.started, dict) else {}
            # Errors from the target cross the hops from its side first.
            via = list(reversed(started.get("hops") or []))
            stream = RelayStream(lambda: next(call), call.send, call.close_send)
            ch = RelayedChannel(call, stream, self.actor, functions, via)
            try:
                ch.handshake(timeout=max(0.001, deadline - time.monotonic()))
            except HandshakeError:
                if stream.broken is not None:
                    raise stream.broken from None
                raise
            if ch.peer.get("uuid") != e["uuid"]:
                ch.close()
                raise HandshakeError("the relay to %s reached %s (%s)" % (e["name"], ch.peer.get("name", ""),
                                                                          ch.peer.get("uuid", "")))
            return ch
        except BaseException:
            _end_call(call)
            raise

    def stop_actor(self, name, timeout=None):
        """Stops the actor of the tree named name: dials it and calls its
        arbor.stop on behalf of this actor, whom the calls it cancels name
        (section 13.1). timeout bounds the dial and the call."""
        ch = self.dial(name, timeout=timeout)
        try:
            ch.call("arbor.stop", {"by": dict(self.actor)}, timeout=timeout)
        finally:
            ch.close()

    # --- what a parent serves its children ---

    def functions(self, served=None):
        """served (a Functions, or None) with what this node serves a child:
        the registry and arbor.relay."""
        out = Functions()
        out.table = dict(served.table if served else {})
        for name, kind, fn in ((n, "func", self._registry_function(n)) for n in REGISTRY_FUNCTIONS):
            out.table[name] = (kind, fn)
        out.table["arbor.relay"] = ("context", self.serve_relay)
        return out

    def _registry_function(self, name):
        # Registrations are recorded on the way (the routes), whether this
        # is the root or passes them up; lookups are the root's to answer.
        if name == "arbor.register":
            return lambda ctx, args: self.register(args, ctx.channel, timeout=_left(ctx) or REGISTRY_TIMEOUT)
        if name == "arbor.unregister":
            return lambda ctx, args: self.unregister(args, timeout=_left(ctx) or REGISTRY_TIMEOUT)
        if self.up is not None:
            return lambda ctx, args: forward(ctx, self.up, name, args)
        if name == "arbor.find":
            return lambda ctx, args: self.find(args)
        if name == "arbor.list":
            return lambda ctx, args: self.list(args)
        return self._serve_wait_for

    def _serve_wait_for(self, ctx, name):
        _name_arg(name, "arbor.wait_for")

        def wake(_):
            with self._cond:
                self._cond.notify_all()
        ctx.on_cancel(wake)
        with self._cond:
            while True:
                e = self._find(name)
                if e is not None:
                    return e
                ctx.check()
                self._cond.wait()

    # --- relays ---

    def serve_relay(self, ctx, args):
        """arbor.relay, on any channel of this process: the end here, or one
        hop on (PROTOCOL.md section 13.3)."""
        to, name, hops = _relay_args(args)
        if to == self.actor["uuid"]:
            if self.target is None:
                raise NoRelay("%s is the root of the tree, which takes no relayed connections" % self.actor["name"])
            return self.target.serve(ctx, args)
        if len(hops) >= MAX_HOPS:
            raise RuntimeError("the relay to %s passed %d actors without reaching it" % (name, len(hops)))
        nxt = self.next_hop(to, ctx.channel)
        if nxt is None:
            raise NotFound("relaying to %s (%s): %s knows no way to it" % (name, to, self.actor["name"]))
        on = nxt.start_context("arbor.relay", {"to": to, "name": name, "hops": hops + [dict(ctx.actor)]},
                               timeout=_left(ctx))
        ctx.on_cancel(lambda by: on.cancel(by))
        on.wait_started()  # its error, before started, is this call's
        started = on.started if isinstance(on.started, dict) else {}
        ctx.start({"hops": started.get("hops") or []})
        return _pass(ctx, on)


class RelayedChannel(Channel):
    """A channel a dialer runs on the bytes of an arbor.relay call it made
    (Tree.dial_entry): a Channel, whose close also ends the relay as
    section 13.3 says, and which owns the call."""

    def __init__(self, call, stream, actor, functions, via):
        super().__init__(stream, stream.write, stream.close_stream, actor, True, functions=functions, via=via)
        self.relay_call = call
        self._stream = stream

    def close(self, wait=True):
        """Sends this end's stop; with wait, waits (at most RELAY_LINGER
        each) for the other end's stop and for the relay's return,
        cancelling the call if they do not come, and returns once every
        thread of the channel has ended. Safe to call again."""
        call = self.relay_call
        # A send waiting for the relay's credit holds the close up: past
        # the linger the call is given up, which ends the wait.
        guard = threading.Timer(2 * RELAY_LINGER + CANCEL_WAIT, _end_call, args=(call,))
        guard.daemon = True
        guard.start()
        try:
            super().close(wait=False)  # what is queued goes out, then the stop
            if not wait:
                return
            self._stream.ended.wait(RELAY_LINGER)
            if not call._wait_end(RELAY_LINGER):
                _end_call(call)
            super().close(wait=True)
        finally:
            guard.cancel()
            guard.join()


def _end_call(call):
    """Ends a relay call this side opened: cancels it if it has not ended,
    and gives it up if the next hop does not end it in time."""
    if call.ended():
        return
    call.cancel()
    if not call._wait_end(CANCEL_WAIT):
        call.abandon(PeerGone("the relay's next hop did not end its call"))


def _left(ctx):
    """What is left of the served call's deadline, for a call it makes."""
    if ctx.deadline is None:
        return None
    return max(0.001, ctx.deadline - time.monotonic())


def forward(ctx, up, name, args):
    """A registry call from a child, in an actor that is not the root: the
    same call of its parent, whose answer (an error included) is this
    one's; a cancellation of this one cancels it."""
    call = up.start_call(name, args, timeout=_left(ctx))
    ctx.on_cancel(lambda by: call.cancel(by))
    return call.result()


def _bad_item(item):
    if not isinstance(item, (bytes, bytearray)):
        return "a relay's item is a %s, not bin" % type(item).__name__
    if len(item) > RELAY_CHUNK:
        return "a relay's item of %d bytes, past the bound of %d" % (len(item), RELAY_CHUNK)
    return None


def _pass(ctx, on):
    """Passes a relay's items between the served call ctx and the call on
    it opened one hop on, both ways, each with its credit, and each side's
    stop, until the far call ends: its end is this call's. A direction that
    breaks fails the relay and cancels the far call."""
    broke = []

    def toward_far():
        while True:
            try:
                item = ctx.recv()
            except StopIteration:
                on.close_send()
                return
            except Exception:  # noqa: BLE001 - cancelled: on_cancel has cancelled the far call
                return
            why = _bad_item(item)
            if why is not None:
                broke.append(RelayBroken(why))
                ctx.abandon_send()  # the loop below may wait for the caller's credit
                on.cancel()
                return
            try:
                on.send(item)
            except Exception:  # noqa: BLE001 - the far call has ended: the loop below sees how
                return

    forward_thread = threading.Thread(target=toward_far, name="arbor-relay-hop", daemon=True)
    forward_thread.start()
    try:
        try:
            for item in on:
                why = _bad_item(item)
                if why is not None:
                    raise RelayBroken(why)
                ctx.send(item)
            ctx.close_send()
            return on.wait_result() or {}
        except BaseException:
            if not on.ended():
                on.cancel()
                if not on._wait_end(CANCEL_WAIT):
                    on.abandon(PeerGone("the relay's next hop did not end its call"))
            raise
    except BaseException as e:
        if broke and not isinstance(e, RelayBroken):
            raise broke[0] from None
        raise
    finally:
        ctx.abandon_recv()  # the far end has ended: nothing more goes toward it
        forward_thread.join()


_process_tree = []
_process_tree_lock = threading.Lock()


def process_tree():
    """This process's Tree: the actor's under arbor.main, otherwise a root
    named ROOT, made at the first use."""
    with _process_tree_lock:
        if not _process_tree:
            _process_tree.append(Tree(ROOT))
        return _process_tree[0]


def set_process_tree(tree):
    """Makes tree this process's (arbor.main, before its channel opens)."""
    with _process_tree_lock:
        _process_tree[:] = [tree]


Tree.serve_relay._arbor_runtime = True  # arbor.relay is the runtime's name


# The tree as this process's user code sees it: in an actor, the actor's
# (arbor.main); in a program that is not an actor, the root's.

def find(name, timeout=None):
    """The entry of the living actor of the tree named name (full name or
    alias): Tree.find of process_tree()."""
    return process_tree().find(name, timeout)


def wait_for(name, timeout=None):
    """As find, but waits for the actor to be registered: Tree.wait_for."""
    return process_tree().wait_for(name, timeout)


def list_actors(prefix="", timeout=None):
    """The entries of the living actors named prefix or below it (all for
    ""), by name: Tree.list."""
    return process_tree().list(prefix, timeout)


def dial(name, functions=None, timeout=None):
    """A channel to the actor of the tree named name, through the tree:
    Tree.dial. Close it."""
    return process_tree().dial(name, functions, timeout)


def dial_entry(entry, functions=None, timeout=None):
    """A channel to the actor an entry names: Tree.dial_entry."""
    return process_tree().dial_entry(entry, functions, timeout)


def stop_actor(name, timeout=None):
    """Stops the actor of the tree named name on behalf of this one:
    Tree.stop_actor."""
    process_tree().stop_actor(name, timeout)
