"""Protocol 1.5 in the Python channel: an actor as the end of a relay
(PROTOCOL.md section 13.3), over an in-memory pair of pipes. The test is
the parent, which opens arbor.relay toward the actor and runs a channel on
the call's bytes as the dialer."""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from arbor import channel as chan, relay  # noqa: E402
from arbor.wire import RemoteError  # noqa: E402
from tests.pipes import pipe_channel  # noqa: E402

WAIT = 10.0
PARENT = {"name": "root", "uuid": "u-root"}
TARGET = {"name": "root.py", "uuid": "u-py"}
DIALER = {"name": "root.other", "uuid": "u-other"}


class RelayTarget(unittest.TestCase):
    def setUp(self):
        self.waiting = threading.Event()
        self.cancelled = []
        functions = chan.Functions()
        functions.func("square")(lambda ctx, x: x * x)
        functions.func("echo")(lambda ctx, b: b)

        @functions.stream("count")
        def count(ctx, n):
            yield from range(n)

        @functions.func("boom")
        def boom(ctx, msg):
            raise ValueError(msg)

        @functions.func("wait")
        def wait(ctx, _):
            self.waiting.set()
            try:
                while True:
                    ctx.sleep(WAIT)
            except chan.Cancelled as e:
                self.cancelled.append(e.canceller)
                raise

        self.target = relay.RelayTarget(functions)
        served = chan.Functions()
        served.add("arbor.relay", "context", self.target.serve)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        self.parent = pipe_channel(r1, w2, PARENT, True)
        self.child = pipe_channel(r2, w1, TARGET, False, served)
        opened = threading.Thread(target=self.child.handshake, args=(WAIT,))
        opened.start()
        self.parent.handshake(WAIT)
        opened.join()

    def tearDown(self):
        self.parent.close(wait=False)
        self.child.close()
        self.parent.close()

    def dial(self, to=TARGET["uuid"], hops=(DIALER, PARENT)):
        """Opens arbor.relay toward to and a channel on its bytes, as the
        dialer: (the relay's call, the channel)."""
        call = self.parent.open_context("arbor.relay", {"to": to, "name": "root.py", "hops": list(hops)})
        self.assertEqual(call.started, {"hops": list(hops)})
        stream = relay.RelayStream(lambda: next(call), call.send, call.close_send)
        ch = chan.Channel(stream, stream.write, stream.close_stream, DIALER, True, via=list(reversed(hops)))
        ch.handshake(WAIT)
        self.assertEqual(ch.peer, TARGET)
        return call, ch

    def test_calls_streams_errors_close(self):
        call, ch = self.dial()
        self.assertEqual(ch.call("square", 12, timeout=WAIT), 144)
        big = os.urandom(100000)  # several items each way
        self.assertEqual(ch.call("echo", big, timeout=WAIT), big)
        self.assertEqual(list(ch.stream("count", 5000)), list(range(5000)))  # past the windows
        with self.assertRaises(RemoteError) as got:
            ch.call("boom", "sensor offline", timeout=WAIT)
        e = got.exception
        self.assertEqual((e.type, e.msg, e.src), ("ValueError", "sensor offline", TARGET))
        self.assertEqual(e.relay, [PARENT, DIALER])  # the hops, from the target's side
        ch.close()  # our stop, then the target's: the relay's call returns
        self.assertEqual(call.result(timeout=WAIT), {})

    def test_two_relays_at_once(self):
        (c1, ch1), (c2, ch2) = self.dial(), self.dial()
        self.assertEqual((ch1.call("square", 2, timeout=WAIT), ch2.call("square", 3, timeout=WAIT)), (4, 9))
        ch1.close()
        self.assertEqual(c1.result(timeout=WAIT), {})
        self.assertEqual(ch2.call("square", 4, timeout=WAIT), 16)
        ch2.close()
        self.assertEqual(c2.result(timeout=WAIT), {})

    def test_another_actor_is_not_found(self):
        with self.assertRaises(RemoteError) as got:
            self.parent.open_context("arbor.relay", {"to": "u-elsewhere", "name": "root.elsewhere", "hops": []})
        self.assertEqual((got.exception.name, got.exception.code), ("arbor.not_found", ""))
        self.assertIn("root.elsewhere", got.exception.msg)

    def test_bad_items_fail_the_relay(self):
        for item, want in ((b"x" * (relay.RELAY_CHUNK + 1), "past the bound"), ("text", "not bin")):
            call = self.parent.open_context("arbor.relay", {"to": TARGET["uuid"], "name": "root.py", "hops": None})
            self.assertEqual(call.started, {"hops": []})
            call.send(item)
            with self.assertRaises(RemoteError) as got:
                call.result(timeout=WAIT)
            self.assertIn(want, got.exception.msg)

    def test_stop_cancels_and_closes(self):
        call, ch = self.dial()
        waited = ch.start_call("wait")
        self.assertTrue(self.waiting.wait(WAIT))
        self.assertTrue(self.target.close(PARENT, "actor stopped by its parent", WAIT))
        with self.assertRaises(RemoteError) as got:
            waited.result(timeout=WAIT)
        self.assertEqual((got.exception.code, got.exception.canceller), ("cancelled", PARENT))
        self.assertEqual(self.cancelled, [PARENT])
        self.assertTrue(ch.wait(WAIT), "the relayed channel did not end with the stop")
        ch.close()
        self.assertEqual(call.result(timeout=WAIT), {})
        # A stopping actor takes no more relays.
        with self.assertRaises(RemoteError) as got:
            self.parent.open_context("arbor.relay", {"to": TARGET["uuid"], "name": "root.py", "hops": []})
        self.assertEqual(got.exception.name, "arbor.no_relay")


if __name__ == "__main__":
    unittest.main()
