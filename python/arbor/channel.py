"""One arbor channel (PROTOCOL.md sections 5-9): the handshake, calls in
both directions, flow control and cancellation.

Threads: a channel owns a reader thread, a writer thread, and one thread per
call it serves; `close()` returns after all of them have ended. Calls this
side makes block the calling thread.
"""

import collections
import itertools
import os
import threading
import time
import traceback

from . import wire
from .wire import Message, RemoteError, BadMessage, FrameError, NIL

WINDOW = 1024
MAX_SERVED = 1024
CANCEL_WAIT = 1.0  # how long a cancelled call waits for the callee's own end
_WRITE_LIMIT = 4 << 20  # bytes queued before senders wait for the writer


class PeerGone(Exception):
    """The channel ended before the call did (code `exited`)."""

    code = "exited"


class Cancelled(Exception):
    """The call was cancelled; `canceller` is the actor that asked."""

    code = "cancelled"

    def __init__(self, msg="call cancelled", canceller=None):
        super().__init__(msg)
        self.canceller = canceller


class DeadlineExceeded(Exception):
    code = "deadline"


class BadArgument(Exception):
    """Raised by a function whose arguments do not fit what it takes."""

    code = "bad_argument"


class HandshakeError(Exception):
    pass


def type_name(e):
    t = type(e)
    if t.__module__ == "builtins":
        return t.__qualname__
    return "%s.%s" % (t.__module__, t.__qualname__)


def box(e, actor, tb=True):
    """Boxes an exception as a RemoteError sent by `actor`."""
    if isinstance(e, RemoteError):
        # Passing on an error from a call of our own: keep its source, add
        # this actor to its path.
        out = RemoteError(e.msg, e.code, e.type, e.stack, e.src, e.relay + [dict(actor)], e.canceller,
                          e.name, e.data, e.children)
        return out
    code = getattr(e, "code", "")
    if not isinstance(code, str) or code not in ("cancelled", "deadline", "bad_argument", "exited"):
        code = ""
    stack = "".join(traceback.format_exception(type(e), e, e.__traceback__)) if tb else ""
    err = RemoteError(str(e), code, "arbor." + code if code else type_name(e), stack, dict(actor))
    # A sentinel both sides registered (section 4.1): the exception's class
    # says which, as error_name.
    name = getattr(e, "error_name", "")
    if isinstance(name, str):
        err.name = name
    if code == "cancelled":
        err.canceller = getattr(e, "canceller", None)
    return err


def relayed_through(e, hop):
    """e as relayed through hop, at every depth of a group (section 4.2)."""
    return RemoteError(e.msg, e.code, e.type, e.stack, e.src, e.relay + [dict(hop)], e.canceller, e.name, e.data,
                       [relayed_through(c, hop) for c in e.children])


class Functions:
    """The functions an actor serves, by name. Decorate a function:

        functions = Functions()

        @functions.func("add")
        def add(ctx, args): ...

    A `func` returns its result; a `stream` is a generator of items; a
    `context` calls `ctx.start(value)` first, may `ctx.send(item)` and read
    what the caller sends by iterating `ctx`, and returns its result.
    """

    def __init__(self):
        self.table = {}

    def add(self, name, kind, fn):
        if name.startswith("arbor.") and not getattr(fn, "_arbor_runtime", False):
            raise ValueError("%s: names beginning with arbor. are the runtime's" % name)
        if kind not in wire.FUNC_KINDS:
            raise ValueError("kind %r" % kind)
        if name in self.table:
            raise ValueError("%s declared twice" % name)
        self.table[name] = (kind, fn)
        return fn

    def func(self, name):
        return lambda fn: self.add(name, "func", fn)

    def stream(self, name):
        return lambda fn: self.add(name, "stream", fn)

    def context(self, name):
        return lambda fn: self.add(name, "context", fn)


class _Writer:
    """Writes frames in order. A caller finding the stream idle writes its
    frame itself (one thread hand-off fewer per message); frames that
    arrive meanwhile are coalesced and written by the writer thread, so a
    stream of small items costs few system calls. The reader thread never
    writes itself (inline=False): it must keep reading while the peer is
    slow to read what this side sends."""

    def __init__(self, write, on_error):
        self._write = write
        self._on_error = on_error
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._busy = False  # a thread is in write
        self._closed = False
        self._failed = None
        self._thread = threading.Thread(target=self._run, name="arbor-writer", daemon=True)
        self._thread.start()

    def send(self, data, inline=True):
        with self._cond:
            while len(self._buf) > _WRITE_LIMIT and not self._closed and self._failed is None:
                self._cond.wait()
            if self._closed or self._failed is not None:
                raise PeerGone("the channel is closed")
            if self._busy or self._buf or not inline:
                self._buf += data
                self._cond.notify_all()
                return
            self._busy = True
        self._write_out(data)

    def _write_out(self, data):
        try:
            self._write(data)
        except OSError as e:
            with self._cond:
                self._failed = e
                self._buf = bytearray()
                self._busy = False
                self._cond.notify_all()
            self._on_error(e)
            return False
        with self._cond:
            self._busy = False
            # Always: the writer thread may be waiting for this write to
            # end, to take what was queued meanwhile or to stop on close.
            self._cond.notify_all()
        return True

    def _run(self):
        while True:
            with self._cond:
                while True:
                    if self._failed is not None:
                        return
                    if self._buf and not self._busy:
                        break
                    if self._closed and not self._busy:
                        return  # nothing queued, nobody writing
                    self._cond.wait()
                data, self._buf = bytes(self._buf), bytearray()
                self._busy = True
                self._cond.notify_all()
            if not self._write_out(data):
                return

    def close(self):
        """Writes what is queued, then stops."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()


class _Pool:
    """The threads that run served calls: an idle one takes the next call,
    a new one starts when none is idle, and one idle for IDLE_EXIT seconds
    ends. close() waits for all of them."""

    IDLE_EXIT = 30.0

    def __init__(self):
        self._lock = threading.Lock()
        self._idle = []  # [event, job slot] of idle threads
        self._threads = set()
        self._closed = False

    def submit(self, job):
        with self._lock:
            if self._closed:
                return False
            if self._idle:
                slot = self._idle.pop()
                slot[1] = job
                slot[0].set()
                return True
            t = threading.Thread(target=self._run, args=(job,), name="arbor-call", daemon=True)
            self._threads.add(t)
        t.start()
        return True

    def _run(self, job):
        slot = [threading.Event(), None]
        while job is not None:
            job()
            with self._lock:
                if self._closed:
                    break
                slot[0].clear()
                slot[1] = None
                self._idle.append(slot)
            slot[0].wait(self.IDLE_EXIT)
            with self._lock:
                job = slot[1]
                if job is None and slot in self._idle:
                    self._idle.remove(slot)
        with self._lock:
            self._threads.discard(threading.current_thread())

    def close(self):
        with self._lock:
            self._closed = True
            for slot in self._idle:
                slot[0].set()
            self._idle = []
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join()


class BufferedReader:
    """Buffered reads over recv(n) (os.read of a descriptor, a socket's
    recv). Unlike io.BufferedReader it takes no lock that another thread's
    close would wait on: the reader thread owns the stream and closes it
    when it is done."""

    def __init__(self, recv, close):
        self._recv = recv
        self._close = close
        self._buf = bytearray()
        self.heard = 0  # reads that brought bytes: the heartbeat's sign of life

    def read(self, n):
        while len(self._buf) < n:
            chunk = self._recv(max(1 << 16, n - len(self._buf)))
            if not chunk:
                break
            self.heard += 1
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def close(self):
        try:
            self._close()
        except OSError:
            pass


def fd_reader(fd):
    return BufferedReader(lambda n: os.read(fd, n), lambda: os.close(fd))


def _write_all(fd):
    def write(data):
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    return write


class Channel:
    """A channel over a byte stream, opened by `handshake()`.

    reader has read(n) and close(); the channel's reader thread owns it and
    closes it when the stream ends. write writes all of the bytes it is
    given; close_stream ends this side's writing (the peer then sees the
    end of the stream, and closes its side in turn).

    via lists the actors the stream passes through between the two sides,
    from the peer's side (a relay, section 13.3): an error the peer sends is
    noted as relayed through each of them.
    """

    def __init__(self, reader, write, close_stream, actor, initiator, functions=None, logger=None,
                 base=None, via=()):
        self.actor = {"name": actor.get("name", ""), "uuid": actor.get("uuid", "")}
        self.initiator = initiator
        self.peer = None
        self.peer_version = None
        self.logger = logger
        self.base = base or {}
        self.via = [{"name": a.get("name", ""), "uuid": a.get("uuid", "")} for a in via]
        self._reader = reader
        self._close_stream = close_stream
        self._functions = dict(functions.table if functions else {})
        self._functions["arbor.cancel"] = ("func", self._serve_cancel)
        self._functions["arbor.ping"] = ("func", lambda ctx, args: None)
        self._functions["arbor.schema"] = ("func", self._serve_schema)
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()  # starts go out in the order of their ids
        self._ids = itertools.count(1 if initiator else 2, 2)
        self._next_id = 1 if initiator else 2
        self._peer_highest = 0
        self._calls = {}   # our calls, by id
        self._served = {}  # calls we serve, by id
        self._pool = _Pool()
        self._done = threading.Event()
        self._err = None
        # The last errors the peer reported for the channel (cid 0).
        self.peer_errors = collections.deque(maxlen=16)
        self._writer = _Writer(write, self._write_failed)
        self._read_thread = None

    # --- lifecycle ---

    def handshake(self, timeout=10.0, spec=None, spec_from_hello=None):
        """Says hello and reads the peer's. An initiator may send `spec`
        (msgpack bytes) in its hello, for a child started with
        ARBOR_SPEC=handshake (PROTOCOL.md section 12.7). A responder given
        spec_from_hello reads the initiator's hello first, passes it the
        hello's spec (bytes) and introduces itself as the actor it returns."""
        hello = Message("hello", ver=[wire.MAJOR, wire.MINOR], actor=self.actor, pid=os.getpid(),
                        init=self.initiator, spec=wire.Raw(spec or b""))
        if spec_from_hello is None:
            self._writer.send(wire.frame(hello))
        got = {}

        def first():
            try:
                body = wire.read_frame(self._reader)
                got["msg"] = wire.decode(body) if body is not None else None
            except (BadMessage, FrameError, OSError) as e:
                got["err"] = e

        t = threading.Thread(target=first, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self._fail_open("no hello from the peer within %.1f s" % timeout)
            t.join()
        if "err" in got:
            self._fail_open("the peer's first frame: %s" % got["err"])
        msg = got.get("msg")
        if msg is None:
            self._fail_open("the peer closed the channel before its hello")
        if msg.kind != "hello":
            self._fail_open("the peer's first message is %s, not hello" % msg.kind)
        major, minor = msg.get("ver")
        if major != wire.MAJOR:
            self._fail_open("this side speaks %d.%d, the peer speaks %d.%d" % (wire.MAJOR, wire.MINOR, major, minor))
        if msg.get("init") == self.initiator:
            self._fail_open("both sides claim to be the %s" % ("initiator" if self.initiator else "responder"))
        self.peer = msg.get("actor") or {"name": "", "uuid": ""}
        self.peer_version = (major, minor)
        self.peer_pid = msg.get("pid")
        if spec_from_hello is not None:
            if not msg.get("spec"):
                self._fail_open("the parent's hello (protocol %d.%d) carries no spec, which a child started with "
                                "ARBOR_SPEC=handshake needs (1.3)" % (major, minor))
            try:
                actor = spec_from_hello(bytes(msg.get("spec")))
            except Exception as e:  # noqa: BLE001 - any bad spec fails the handshake
                self._fail_open("the spec in the parent's hello: %s" % e)
            self.actor = {"name": actor.get("name", ""), "uuid": actor.get("uuid", "")}
            hello.fields["actor"] = self.actor
            self._writer.send(wire.frame(hello))
        self._read_thread = threading.Thread(target=self._read_loop, name="arbor-reader", daemon=True)
        self._read_thread.start()
        return self

    def start_heartbeat(self, beat):
        """Pings the peer every `beat` seconds and ends the channel once two
        beats pass with nothing read from it (PROTOCOL.md section 12.5)."""
        if not beat or beat <= 0:
            return
        t = threading.Thread(target=self._heartbeat, args=(max(beat, 0.001),), name="arbor-heartbeat", daemon=True)
        t.start()

    def _heartbeat(self, beat):
        heard = lambda: getattr(self._reader, "heard", 0)  # noqa: E731
        last, heard_at, pinged_at = heard(), time.monotonic(), 0.0
        while not self._done.wait(beat / 4):
            now = time.monotonic()
            if heard() != last:
                last, heard_at = heard(), now
            elif now - heard_at >= 2 * beat:
                self._end(PeerGone("heartbeat lost: nothing from the peer for %g s" % (2 * beat)))
                self._reader.close()  # the reader thread may wait on a dead link
                return
            if now - pinged_at >= beat:
                pinged_at = now
                try:
                    self.start_call("arbor.ping")  # the answer, or any frame, is the sign
                except PeerGone:
                    return

    def _fail_open(self, why):
        self._writer.close()
        self._close_stream()
        self._reader.close()
        raise HandshakeError(why)

    def done(self):
        return self._done.is_set()

    def wait(self, timeout=None):
        return self._done.wait(timeout)

    def close(self, wait=True):
        """Ends the channel: calls in progress fail with PeerGone, served
        calls are cancelled, what is queued is written and this side's end
        closed. With wait, returns when every thread it owns has ended: the
        reader's when the peer has closed its end too (or exited)."""
        self._end(PeerGone("the channel was closed"))
        if not wait:
            return
        if self._read_thread is not None and self._read_thread is not threading.current_thread():
            self._read_thread.join()
        self._pool.close()

    def _end(self, err):
        with self._lock:
            if self._done.is_set():
                return
            self._err = err
            self._done.set()
            calls = list(self._calls.values())
            served = list(self._served.values())
        for c in calls:
            c._gone(err)
        for t in served:
            t.cancel(self.peer, "the channel ended")
        try:
            self._writer.close()
        finally:
            self._close_stream()

    def _write_failed(self, e):
        threading.Thread(target=self._end, args=(PeerGone("writing to the peer: %s" % e),), daemon=True).start()

    def _log(self, level, msg, **fields):
        if self.logger is not None:
            getattr(self.logger, level)(msg, extra={"fields": fields} if fields else None)

    def send(self, msg):
        self._writer.send(wire.frame(msg), threading.current_thread() is not self._read_thread)

    def _send_quietly(self, msg):
        try:
            self.send(msg)
        except PeerGone:
            pass

    def _protocol_error(self, why, cid=0):
        err = RemoteError(why, "protocol", "arbor.protocol", "", self.actor)
        self._send_quietly(Message("error", cid=cid, err=err))

    # --- reading ---

    def _read_loop(self):
        err = PeerGone("the peer closed the channel")
        try:
            while True:
                body = wire.read_frame(self._reader)
                if body is None:
                    break
                try:
                    msg = wire.decode(body)
                except BadMessage as e:
                    self._bad_message(e)
                    continue
                self._dispatch(msg)
        except FrameError as e:
            self._log("error", "closing the channel: %s" % e)
            self._protocol_error(str(e))
            err = PeerGone("protocol: %s" % e)
        except (OSError, ValueError) as e:
            err = PeerGone("reading from the peer: %s" % e)
        self._end(err)
        self._reader.close()

    def _own(self, cid):
        return (cid % 2 == 1) == self.initiator

    def _bad_message(self, e):
        cid = e.cid
        self._log("warn", "bad message from the peer: %s" % e)
        if cid and e.kind == "start" and not self._own(cid) and cid > self._peer_highest:
            self._peer_highest = cid
            self._protocol_error("bad start: %s" % e, cid)
            return
        with self._lock:
            call = self._calls.get(cid) if cid else None
            task = self._served.get(cid) if cid else None
        if call is not None:
            call._fail_protocol("bad message: %s" % e)
        elif task is not None:
            task.fail_protocol("bad message: %s" % e)
        else:
            self._protocol_error("bad message: %s" % e)

    def _dispatch(self, m):
        kind, cid = m.kind, m.cid
        if kind == "hello":
            self._protocol_error("hello after the handshake")
        elif kind == "start":
            self._start(m)
        elif kind == "error" and cid == 0:
            self.peer_errors.append(m.get("err"))
            self._log("warn", "the peer reports an error: %s" % m.get("err"))
        elif self._own(cid):
            with self._lock:
                call = self._calls.get(cid)
                used = cid < self._next_id
            if call is not None:
                call._receive(m)
            elif not used:
                self._protocol_error("%s for call %d, which was never started" % (kind, cid))
        else:
            with self._lock:
                task = self._served.get(cid)
                used = cid <= self._peer_highest
            if task is not None:
                task.receive(m)
            elif not used:
                self._protocol_error("%s for call %d, which was never started" % (kind, cid))

    # --- serving ---

    def _start(self, m):
        cid = m.cid
        if self._own(cid):
            # The id is in our own space: answering error{cid} would name a
            # call of ours, so the answer is for the channel.
            self._protocol_error("start with call id %d, which has this side's parity" % cid)
            return
        if cid <= self._peer_highest:
            self._protocol_error("start with call id %d, not above the peer's last (%d)" % (cid, self._peer_highest), cid)
            return
        self._peer_highest = cid
        name, fk = m.get("fn"), m.get("fk")
        entry = self._functions.get(name)
        if entry is None:
            return self._refuse(cid, "unknown_function", "no function %s" % name)
        kind, fn = entry
        if kind != fk:
            return self._refuse(cid, "wrong_kind", "%s is a %s, not a %s" % (name, kind, fk))
        try:
            args = m.get("args").decode_value()
        except ValueError as e:
            return self._refuse(cid, "bad_argument", "%s: arguments: %s" % (name, e))
        with self._lock:
            if self._done.is_set():
                return
            if len(self._served) >= MAX_SERVED:
                overloaded = True
            else:
                overloaded = False
                task = _Task(self, cid, name, kind, fn, args, m.get("credit"), m.get("timeout"))
                self._served[cid] = task
        if overloaded:
            return self._refuse(cid, "overloaded", "already serving %d calls" % MAX_SERVED)
        if not self._pool.submit(task.run):
            with self._lock:
                self._served.pop(cid, None)

    def _refuse(self, cid, code, why):
        self._send_quietly(Message("error", cid=cid, err=RemoteError(why, code, "arbor." + code, "", self.actor)))

    def _task_ended(self, task):
        with self._lock:
            self._served.pop(task.cid, None)

    def _serve_cancel(self, ctx, args):
        if not isinstance(args, dict):
            raise BadArgument("arbor.cancel takes {\"cid\": id}")
        cid = args.get("cid")
        by = args.get("by") or self.peer
        with self._lock:
            task = self._served.get(cid)
        if task is not None:
            task.cancel(by, "cancelled by %s" % by.get("name"))
        return None

    def _serve_schema(self, ctx, args):
        out = []
        for name, (kind, _) in sorted(self._functions.items()):
            if name.startswith("arbor."):
                continue
            s = {"name": name, "kind": kind, "args": {"type": "any"}}
            if kind in ("func", "context"):
                s["result"] = {"type": "any"}
            if kind == "context":
                s["started"] = {"type": "any"}
                s["send"] = {"type": "any"}
            if kind in ("stream", "context"):
                s["yield"] = {"type": "any"}
            out.append(s)
        return out

    def cancel_served(self, by, why, timeout=None, spare=()):
        """Cancels every call this side serves, but those of the functions
        named in spare, and waits for them to end."""
        with self._lock:
            tasks = [t for t in self._served.values() if t.name not in spare]
        for t in tasks:
            t.cancel(by, why)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in tasks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not t.ended.wait(left):
                return False
        return True

    # --- calling ---

    def _new_call(self, cls, name, fk, args, timeout, credit):
        with self._start_lock:
            with self._lock:
                if self._done.is_set():
                    raise PeerGone("the channel is closed")
                cid = next(self._ids)
                self._next_id = cid + 2
                call = cls(self, cid, name)
                self._calls[cid] = call
            fields = dict(cid=cid, fn=name, fk=fk, args=args if isinstance(args, wire.Raw) else wire.pack(args))
            if credit:
                fields["credit"] = credit
            if timeout:
                fields["timeout"] = int(timeout * 1e9)
                call.deadline = time.monotonic() + timeout
            try:
                self._writer.send(wire.frame(Message("start", **fields)))
            except PeerGone:
                self._call_ended(cid)
                raise
        return call

    def _call_ended(self, cid):
        with self._lock:
            self._calls.pop(cid, None)

    def call(self, name, args=None, timeout=None):
        """Calls a func and returns its result, decoded; raises RemoteError,
        PeerGone, DeadlineExceeded, or Cancelled after cancel_event is set."""
        return self._new_call(FuncCall, name, "func", args, timeout, 0).result()

    def start_call(self, name, args=None, timeout=None):
        """Starts a func call and returns it; `result()` waits for it."""
        return self._new_call(FuncCall, name, "func", args, timeout, 0)

    def stream(self, name, args=None, timeout=None):
        """Starts a stream call: iterate the returned StreamCall for items."""
        return self._new_call(StreamCall, name, "stream", args, timeout, WINDOW)

    def open_context(self, name, args=None, timeout=None):
        """Opens a context: waits for its started value (`.started`)."""
        c = self._new_call(ContextCall, name, "context", args, timeout, WINDOW)
        c._wait_started()
        return c

    def start_context(self, name, args=None, timeout=None):
        """Starts a context call and returns it at once, before its started
        value: `wait_started()` waits for that (a caller that must be able
        to cancel the call meanwhile)."""
        return self._new_call(ContextCall, name, "context", args, timeout, WINDOW)

    def ping(self, timeout=None):
        return self.call("arbor.ping", None, timeout)

    def cancel_call(self, cid, by=None):
        args = {"cid": cid}
        if by:
            args["by"] = by
        try:
            self.start_call("arbor.cancel", args)
        except PeerGone:
            pass


class _Task:
    """One call this side serves, run on a thread of its own."""

    def __init__(self, ch, cid, name, kind, fn, args, credit, timeout):
        self.ch = ch
        self.cid = cid
        self.name = name
        self.kind = kind
        self.fn = fn
        self.args = args
        self.ended = threading.Event()
        self.cancelled = threading.Event()
        self.canceller = None
        self.cancel_reason = ""
        self.deadline = time.monotonic() + timeout / 1e9 if timeout else None
        self._cond = threading.Condition()
        self._credit = credit  # what we may yield
        self._inbox = []       # the caller's yields (contexts)
        self._in_done = False  # the caller's direction has ended
        self._finished = False
        self._started = False
        self._sent_stop = False  # this side's direction has ended (contexts)
        self._abandoned = False  # the caller's further items are dropped (contexts)
        self._send_abandoned = False  # this side sends no more items (contexts)
        self._on_cancel = []  # callbacks, given the canceller, run once at the cancellation
        self._their_credit = WINDOW  # what we granted the caller (contexts)
        self._taken = 0

    # called by the reader
    def receive(self, m):
        with self._cond:
            if self._abandoned and m.kind in ("yield", "stop"):
                return
            if m.kind == "credit" and self.kind in ("stream", "context"):
                self._credit += m.get("n")
                self._cond.notify_all()
                return
            if self.kind == "context" and m.kind == "yield" and self._started and not self._in_done:
                if self._their_credit <= 0:
                    bad = "a yield beyond the credit granted"
                else:
                    self._their_credit -= 1
                    self._inbox.append(m.get("v"))
                    self._cond.notify_all()
                    return
            elif self.kind == "context" and m.kind == "stop" and self._started and not self._in_done:
                self._in_done = True
                self._cond.notify_all()
                return
            else:
                bad = "%s on a %s call, which the caller may not send here" % (m.kind, self.kind)
        self.fail_protocol(bad)

    def fail_protocol(self, why):
        self.finish(Message("error", cid=self.cid, err=RemoteError(why, "protocol", "arbor.protocol", "", self.ch.actor)))
        self.cancel(self.ch.actor, why)

    def cancel(self, by, why):
        with self._cond:
            if self.cancelled.is_set():
                return
            self.canceller = by
            self.cancel_reason = why
            self.cancelled.set()
            self._cond.notify_all()
            callbacks, self._on_cancel = self._on_cancel, []
        for fn in callbacks:
            fn(by)

    def finish(self, msg):
        """Sends the call's last message, once."""
        with self._cond:
            if self._finished:
                return False
            self._finished = True
            self._cond.notify_all()
        self.ch._send_quietly(msg)
        return True

    def _error(self, e):
        if self.cancelled.is_set() and not isinstance(e, RemoteError):
            e = Cancelled(self.cancel_reason or "call cancelled", self.canceller)
        elif self.deadline is not None and time.monotonic() >= self.deadline and isinstance(e, Cancelled):
            e = DeadlineExceeded("the call's deadline passed")
        return Message("error", cid=self.cid, err=box(e, self.ch.actor, tb=not isinstance(e, (Cancelled, DeadlineExceeded))))

    def _watch_deadline(self):
        left = self.deadline - time.monotonic()
        with self._cond:
            while not self._finished and left > 0:
                self._cond.wait(left)
                left = self.deadline - time.monotonic()
            if self._finished:
                return
        self.finish(Message("error", cid=self.cid, err=box(DeadlineExceeded("the call's deadline passed"), self.ch.actor, tb=False)))
        self.cancel(self.ch.actor, "the call's deadline passed")

    def run(self):
        watcher = None
        try:
            ctx = CallContext(self)
            self.ch._send_quietly(Message("startack", cid=self.cid, fk=self.kind))
            if self.deadline is not None:
                watcher = threading.Thread(target=self._watch_deadline, daemon=True)
                watcher.start()
            try:
                if self.kind == "func":
                    # A function that returns despite a cancellation has
                    # finished: its result is the call's end.
                    msg = Message("return", cid=self.cid, v=wire.pack(self.fn(ctx, self.args)))
                elif self.kind == "stream":
                    msg = self._produce(self.fn(ctx, self.args))
                else:
                    result = self.fn(ctx, self.args)
                    if not self._started:
                        ctx.start(None)
                    with self._cond:
                        stop = not self._finished and not self._sent_stop
                        self._sent_stop = True
                    if stop:
                        self.ch._send_quietly(Message("stop", cid=self.cid))
                    msg = Message("return", cid=self.cid, v=wire.pack(result))
            except BaseException as e:  # the function's failure is the caller's to see
                msg = self._error(e)
            self.finish(msg)
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            if watcher is not None:
                watcher.join()
            self.ended.set()
            self.ch._task_ended(self)

    def _produce(self, items):
        try:
            for item in items:
                self.take_credit()
                # Queued, not written inline: the writer thread coalesces a
                # stream's items into few writes.
                self.ch._writer.send(wire.yield_frame(self.cid, wire.pack(item)), False)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        if self.cancelled.is_set():
            return self._error(Cancelled())
        return Message("stop", cid=self.cid)

    def take_credit(self):
        with self._cond:
            while self._credit <= 0 and not self.cancelled.is_set() and not self._finished and not self._send_abandoned:
                self._cond.wait()
            if self._send_abandoned:
                raise PeerGone("this side has given up sending on the call")
            if self.cancelled.is_set() or self._finished:
                raise Cancelled(self.cancel_reason or "call cancelled", self.canceller)
            self._credit -= 1

    def next_item(self, timeout=None):
        with self._cond:
            while not self._inbox and not self._in_done and not self.cancelled.is_set() and not self._abandoned:
                if not self._cond.wait(timeout):
                    raise TimeoutError("nothing from the caller")
            if self._abandoned:
                raise StopIteration
            if self._inbox:
                v = self._inbox.pop(0)
                self._taken += 1
                grant = 0
                if self._taken >= WINDOW // 2:
                    grant, self._taken = self._taken, 0
                    self._their_credit += grant
            elif self.cancelled.is_set():
                raise Cancelled(self.cancel_reason or "call cancelled", self.canceller)
            else:
                raise StopIteration
        if grant:
            self.ch._send_quietly(Message("credit", cid=self.cid, n=grant))
        return wire.unpack_payload(v)


class CallContext:
    """What a served function gets as its first argument."""

    def __init__(self, task):
        self._task = task
        self.name = task.name
        self.actor = task.ch.actor
        self.peer = task.ch.peer
        self.deadline = task.deadline
        self.cancelled = task.cancelled
        self.channel = task.ch
        self.value = task.ch.base.get

    def check(self):
        """Raises Cancelled if the call has been cancelled."""
        if self._task.cancelled.is_set():
            raise Cancelled(self._task.cancel_reason or "call cancelled", self._task.canceller)

    def sleep(self, seconds):
        """Waits, ending early with Cancelled if the call is cancelled."""
        if self._task.cancelled.wait(seconds):
            self.check()

    # contexts
    def start(self, value):
        t = self._task
        if t.kind != "context":
            raise RuntimeError("start: %s is a %s, not a context" % (t.name, t.kind))
        if t._started:
            raise RuntimeError("start called twice")
        t._started = True
        t.ch.send(Message("started", cid=t.cid, v=wire.pack(value), credit=WINDOW))

    def send(self, item):
        t = self._task
        if t.kind != "context" or not t._started:
            raise RuntimeError("send: only a started context sends")
        if t._sent_stop:
            raise RuntimeError("send after close_send")
        t.take_credit()
        t.ch.send(Message("yield", cid=t.cid, v=wire.pack(item)))

    def close_send(self):
        """Ends this side's direction of a started context (stop) before
        the function returns; repeat calls do nothing."""
        t = self._task
        if t.kind != "context" or not t._started:
            raise RuntimeError("close_send: only a started context stops")
        with t._cond:
            if t._sent_stop or t._finished:
                return
            t._sent_stop = True
        t.ch._send_quietly(Message("stop", cid=t.cid))

    def abandon_recv(self):
        """Stops reading the caller's items: a recv waiting returns, with
        StopIteration as at the caller's stop, and items still to come are
        dropped. For a function that gives up on the caller's stop."""
        t = self._task
        with t._cond:
            t._abandoned = True
            t._inbox = []
            t._cond.notify_all()

    def abandon_send(self):
        """Gives up sending: a send waiting for the caller's credit, and any
        later one, raises PeerGone. For a function whose call has failed
        while it waits on a caller that does not read."""
        t = self._task
        with t._cond:
            t._send_abandoned = True
            t._cond.notify_all()

    def on_cancel(self, fn):
        """Runs fn(canceller) once, when the call is cancelled (at once if it
        has been): to pass a cancellation on to a call this one made. fn
        runs on the thread that cancels (the reader's, when the channel
        ends), and must not block for long: starting an arbor.cancel on
        another channel is what it is for."""
        t = self._task
        with t._cond:
            if not t.cancelled.is_set():
                t._on_cancel.append(fn)
                return
        fn(t.canceller)

    def recv(self, timeout=None):
        """The caller's next item; StopIteration once it has stopped."""
        return self._task.next_item(timeout)

    def __iter__(self):
        while True:
            try:
                yield self.recv()
            except StopIteration:
                return


class _Call:
    """A call this side made."""

    def __init__(self, ch, cid, name):
        self.ch = ch
        self.cid = cid
        self.name = name
        self.deadline = None
        self._cond = threading.Condition()
        self._acked = False
        self._end = None      # ("ok", value) or ("err", exception)
        self._items = []
        self._outstanding = WINDOW  # credit granted and not used
        self._taken = 0
        self._in_done = False  # the callee's direction has ended (contexts)

    def _finish(self, outcome):
        with self._cond:
            if self._end is not None:
                return
            self._end = outcome
            self._cond.notify_all()
        self.ch._call_ended(self.cid)

    def _gone(self, err):
        self._finish(("err", err))

    def _fail_protocol(self, why):
        self.ch._protocol_error("call %d (%s): %s" % (self.cid, self.name, why))
        self.ch.cancel_call(self.cid)
        self._finish(("err", RemoteError(why, "protocol", "arbor.protocol", "", self.ch.actor)))

    def _receive(self, m):
        kind = m.kind
        if kind == "error":
            err = m.get("err")
            for hop in self.ch.via:
                err = relayed_through(err, hop)
            self._finish(("err", err))
        elif kind == "startack" and not self._acked:
            self._acked = True
        else:
            why = self._receive_more(m)
            if why:
                self._fail_protocol(why)

    def _receive_more(self, m):
        return "%s on a %s call" % (m.kind, type(self).__name__)

    def cancel(self, by=None):
        """Asks the callee to cancel the call (arbor.cancel)."""
        with self._cond:
            if self._end is not None:
                return
        self.ch.cancel_call(self.cid, by)

    def abandon(self, err):
        """Ends the call on this side with err, whatever the callee still
        sends (which is then dropped): for a call cancelled whose callee
        does not answer."""
        self._finish(("err", err))

    def ended(self):
        with self._cond:
            return self._end is not None

    def _wait_end(self, timeout=None):
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while self._end is None:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _raise_if_failed(self):
        kind, value = self._end
        if kind == "err":
            raise value


class FuncCall(_Call):
    def _receive_more(self, m):
        if m.kind == "return" and self._acked:
            self._finish(("ok", m.get("v")))
            return None
        return "%s on a func call" % m.kind

    def result(self, timeout=None):
        if not self._wait_end(timeout):
            raise TimeoutError("%s did not return in time" % self.name)
        self._raise_if_failed()
        return wire.unpack_payload(self._end[1])


class StreamCall(_Call):
    """Iterate for the items; `close()` cancels a stream not read to its end."""

    def _receive_more(self, m):
        if not self._acked:
            return "%s before startack" % m.kind
        if m.kind == "yield":
            with self._cond:
                if self._outstanding <= 0:
                    return "a yield beyond the credit granted"
                self._outstanding -= 1
                self._items.append(m.get("v"))
                self._cond.notify_all()
            return None
        if m.kind == "stop":
            self._finish(("ok", None))
            return None
        return "%s on a stream" % m.kind

    def __iter__(self):
        return self

    def __next__(self):
        with self._cond:
            while not self._items and self._end is None and not self._in_done:
                self._cond.wait()
            if not self._items:
                if self._end is not None:
                    self._raise_if_failed()
                raise StopIteration
            v = self._items.pop(0)
            self._taken += 1
            grant = 0
            if self._taken >= WINDOW // 2 and self._end is None:
                grant, self._taken = self._taken, 0
                self._outstanding += grant
        if grant:
            self.ch._send_quietly(Message("credit", cid=self.cid, n=grant))
        return wire.unpack_payload(v)

    def close(self):
        """Stops a stream that has not ended, and waits for its end."""
        self.cancel()
        self._wait_end(CANCEL_WAIT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ContextCall(StreamCall):
    """A two-way session: `.started`, `send(v)`, `close_send()`, iterate for
    the callee's items, `result()`."""

    def __init__(self, ch, cid, name):
        super().__init__(ch, cid, name)
        self.started = None
        self._is_started = False
        self._credit = 0
        self._sent_stop = False
        self._result = None

    def _receive_more(self, m):
        if m.kind == "started" and self._acked and not self._is_started:
            with self._cond:
                self._is_started = True
                self.started = m.get("v")
                self._credit = m.get("credit")
                self._cond.notify_all()
            return None
        if m.kind == "credit" and self._is_started:
            with self._cond:
                self._credit += m.get("n")
                self._cond.notify_all()
            return None
        if m.kind == "stop" and self._is_started:
            with self._cond:
                self._in_done = True
                self._cond.notify_all()
            return None
        if m.kind == "return" and self._is_started:
            with self._cond:
                self._result = m.get("v")
            self._finish(("ok", m.get("v")))
            return None
        if m.kind == "yield" and not self._is_started:
            return "yield before started"
        return super()._receive_more(m)

    def wait_started(self, timeout=None):
        """Waits for the started value of a call from start_context, and
        sets .started; raises the call's error if it ended first, and
        TimeoutError if timeout (seconds; None: no bound) passes first.
        Call it once."""
        self._wait_started(timeout)

    def _wait_started(self, timeout=None):
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._is_started and self._end is None:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("%s did not start in time" % self.name)
                self._cond.wait(left)
            if not self._is_started:
                self._raise_if_failed()
        self.started = wire.unpack_payload(self.started)

    def send(self, item):
        with self._cond:
            while self._credit <= 0 and self._end is None:
                self._cond.wait()
            if self._end is not None:
                self._raise_if_failed()
                raise PeerGone("the context has ended")
            self._credit -= 1
        self.ch.send(Message("yield", cid=self.cid, v=wire.pack(item)))

    def close_send(self):
        if not self._sent_stop:
            self._sent_stop = True
            with self._cond:
                if self._end is not None:
                    return
            self.ch._send_quietly(Message("stop", cid=self.cid))

    def result(self, timeout=None):
        self.close_send()
        return self.wait_result(timeout)

    def wait_result(self, timeout=None):
        """As result, but without closing this side's direction: for a
        caller that passes on the callee's end while its own items may
        still be on their way."""
        if not self._wait_end(timeout):
            raise TimeoutError("%s did not return in time" % self.name)
        self._raise_if_failed()
        return wire.unpack_payload(self._result)
