"""The end of a relay in this actor (PROTOCOL.md section 13.3).

A Python actor has no peer socket, so a dialer always reaches it through
the tree: its parent opens the context function arbor.relay on the
channel to it, and the two ends speak the protocol end to end on the
bytes the call carries, as items of msgpack bin. RelayTarget serves
arbor.relay: for a call to this actor it runs a Channel, as the
responder, on the call's bytes and serves the actor's functions on it.
A relay to another actor is the tree's (tree.py: Tree.serve_relay, which
passes it on one hop, down a route or up); RelayTarget alone answers it
with arbor.not_found.

Threads: each relayed channel is owned by the thread serving its
arbor.relay call, which returns once the channel has ended and every
thread of the channel has.
"""

import threading
import time

from . import wire
from .channel import BadArgument, Channel, HandshakeError, PeerGone

RELAY_CHUNK = 16384  # the most one item carries
RELAY_LINGER = 1.0  # how long an end that has sent its stop waits for the other's
MAX_HOPS = 64
HANDSHAKE_TIMEOUT = 10.0


class NotFound(Exception):
    """No actor of that uuid is reachable from here: the sentinel
    arbor.not_found (Go's spawn.ErrNotFound)."""

    error_name = "arbor.not_found"


class NoRelay(Exception):
    """This actor takes no relays now (it is stopping): the sentinel
    arbor.no_relay (Go's spawn.ErrNoRelay)."""

    error_name = "arbor.no_relay"


class RelayBroken(OSError):
    """A relay's bytes could not go on: an item that is not bin or is past
    RELAY_CHUNK, or the call under them failed."""


class RelayStream:
    """One end of a relay as a byte stream, for a Channel: the reader
    (read, close), write and close_stream.

    recv returns the other end's next item and raises StopIteration at its
    stop; send sends one item; close_send ends this end's direction. At a
    target they are a CallContext's recv, send and close_send; at a dialer
    a ContextCall's next, send and close_send.
    """

    def __init__(self, recv, send, close_send):
        self._recv = recv
        self._send = send
        self._close_send = close_send
        self._buf = bytearray()
        self.heard = 0
        self.ended = threading.Event()  # reads have reached the other end's end
        self.broken = None  # RelayBroken: why the relay failed here, if it did

    def read(self, n):
        while len(self._buf) < n and not self.ended.is_set():
            try:
                item = self._recv()
            except StopIteration:
                self.ended.set()
                break
            except Exception as e:  # noqa: BLE001 - the call ended (cancelled, failed, gone): so has the stream
                self.ended.set()
                if not getattr(e, "code", "") == "cancelled":
                    self.broken = RelayBroken("the relay's call ended: %s" % e)
                    raise self.broken
                break
            if not isinstance(item, (bytes, bytearray)):
                self._fail("a relay's item is a %s, not bin" % type(item).__name__)
            if len(item) > RELAY_CHUNK:
                self._fail("a relay's item of %d bytes, past the bound of %d" % (len(item), RELAY_CHUNK))
            self.heard += 1
            self._buf += item
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _fail(self, why):
        self.ended.set()
        self.broken = RelayBroken(why)
        raise self.broken

    def close(self):
        pass  # the call is its owner's to end

    def write(self, data):
        view = memoryview(data)
        for i in range(0, len(view), RELAY_CHUNK):
            try:
                self._send(bytes(view[i:i + RELAY_CHUNK]))
            except Exception as e:  # noqa: BLE001 - the channel's writer takes an OSError as the stream's end
                raise OSError("relaying: %s" % e) from e

    def close_stream(self):
        try:
            self._close_send()
        except Exception:  # noqa: BLE001 - the call has ended already: nothing more goes out
            pass


def _relay_args(args):
    if not isinstance(args, dict):
        raise BadArgument("arbor.relay takes {\"to\", \"name\", \"hops\"}")
    to, name, hops = args.get("to", ""), args.get("name", ""), args.get("hops") or []
    if not isinstance(to, str) or not isinstance(name, str) or not isinstance(hops, list):
        raise BadArgument("arbor.relay: to and name are strings, hops an array of actors")
    try:
        hops = [wire.check_actor(h, "hops[]") or {"name": "", "uuid": ""} for h in hops]
    except ValueError as e:
        raise BadArgument("arbor.relay: %s" % e)
    return to, name, hops


class RelayTarget:
    """Serves arbor.relay (kind context) for an actor: serve is the
    function; functions are what each relayed channel serves. close stops
    taking relays and closes those that run."""

    def __init__(self, functions, logger=None, base=None):
        self._functions = functions
        self._logger = logger
        self._base = base
        self._lock = threading.Lock()
        self._open = True
        self._ends = {}  # relayed channel -> Event set when its arbor.relay call has returned

    def serve(self, ctx, args):
        to, name, hops = _relay_args(args)
        if to != ctx.actor["uuid"]:
            if len(hops) >= MAX_HOPS:
                raise RuntimeError("the relay to %s passed %d actors without reaching it" % (name, len(hops)))
            raise NotFound("relaying to %s (%s): %s routes to no actor but itself" % (name, to, ctx.actor["name"]))
        stream = RelayStream(ctx.recv, ctx.send, ctx.close_send)
        ch = Channel(stream, stream.write, stream.close_stream, ctx.actor, initiator=False,
                     functions=self._functions, logger=self._logger, base=self._base, via=hops)
        ended = threading.Event()
        with self._lock:
            # Taken before the handshake: the dialer may call as soon as it
            # has this side's hello, and a stop must see those calls.
            taken = self._open
            if taken:
                self._ends[ch] = ended
        if not taken:
            ch.close(wait=False)
            raise NoRelay("%s is stopping and takes no relayed connections" % ctx.actor["name"])
        try:
            ctx.start({"hops": hops})
            try:
                ch.handshake(timeout=HANDSHAKE_TIMEOUT)
            except HandshakeError:
                ctx.abandon_recv()  # the handshake's reader may still wait for an item
                if stream.broken is not None:
                    raise stream.broken
                raise
            except PeerGone:
                pass  # closed by close() before its hello went out
            # Ends at the dialer's stop, a broken relay, or close(): this
            # side has then sent its stop, or is sending it.
            ch.wait()
            if not stream.ended.wait(RELAY_LINGER):
                ctx.abandon_recv()
            ch.close()
        finally:
            with self._lock:
                self._ends.pop(ch, None)
            ended.set()
        if stream.broken is not None:
            raise stream.broken
        return {}

    def close(self, by, why, timeout=None):
        """Takes no more relays; cancels, on behalf of by, what the relayed
        channels serve and closes them once their calls have ended, waiting
        at most timeout (None: no bound) in all. Returns whether everything
        ended in time."""
        with self._lock:
            self._open = False
            ends = list(self._ends.items())
        deadline = None if timeout is None else time.monotonic() + timeout
        left = lambda: None if deadline is None else max(0.0, deadline - time.monotonic())  # noqa: E731
        ok = True
        for ch, _ in ends:
            ok = ch.cancel_served(by, why, left()) and ok
        for ch, _ in ends:
            ch.close(wait=False)  # what is queued goes out, then the stop
        for _, ended in ends:
            ok = ended.wait(left()) and ok
        return ok



RelayTarget.serve._arbor_runtime = True  # arbor.relay is the runtime's name
