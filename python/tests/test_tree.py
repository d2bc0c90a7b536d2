"""The tree's registry and relays in a Python parent (PROTOCOL.md sections
13 and 13.3), over in-memory pipes: a Python root with two children, A and
M, and C below M. A and C are the ends of relays; M, an actor in the
middle, passes registrations and lookups up and relays down."""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import arbor  # noqa: E402
from arbor import channel as chan, relay, tree as treemod  # noqa: E402
from arbor.tree import Tree, MAX_GONE  # noqa: E402
from arbor.wire import RemoteError  # noqa: E402
from tests.pipes import pipe_channel  # noqa: E402

WAIT = 10.0
ROOT = {"name": "root", "uuid": "u-root"}
A = {"name": "root.a", "uuid": "u-a"}
M = {"name": "root.m", "uuid": "u-m"}
C = {"name": "root.m.c", "uuid": "u-c"}


def connect(parent, parent_functions, child, child_functions):
    """A parent's channel to a child and the child's to it, open."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    down = pipe_channel(r1, w2, parent, True, parent_functions)
    up = pipe_channel(r2, w1, child, False, child_functions)
    opened = threading.Thread(target=up.handshake, args=(WAIT,))
    opened.start()
    down.handshake(WAIT)
    opened.join()
    return down, up


def entry(actor, parent, **more):
    e = {"name": actor["name"], "uuid": actor["uuid"], "parent": parent["uuid"], "pid": 1, "host": "h",
         "addr": "", "aliases": None, "seq": 0}
    e.update(more)
    return e


def end_of_relays(actor, stopped=None):
    functions = chan.Functions()
    functions.func("whoami")(lambda ctx, _: ctx.actor["name"])

    @functions.stream("count")
    def count(ctx, n):
        yield from range(n)

    def stop(ctx, args):
        stopped.append(args["by"])
    stop._arbor_runtime = True
    if stopped is not None:
        functions.add("arbor.stop", "func", stop)

    @functions.func("boom")
    def boom(ctx, msg):
        raise ValueError(msg)
    return relay.RelayTarget(functions)


class TreeFixture(unittest.TestCase):
    """The root, A, M and C, connected and registered."""

    def setUp(self):
        self.root = Tree(ROOT)
        self.channels = []
        # A, a child of the root, which dials.
        self.to_a, self.a = connect(ROOT, self.root.functions(), A, None)
        # M, an actor below the root, and C below M.
        self.m = Tree(M, target=end_of_relays(M))
        m_served = chan.Functions()
        m_served.add("arbor.relay", "context", self.m.serve_relay)
        self.to_m, self.m.up = connect(ROOT, self.root.functions(), M, m_served)
        self.stopped = []
        self.c = Tree(C, target=end_of_relays(C, self.stopped))
        c_served = chan.Functions()
        c_served.add("arbor.relay", "context", self.c.serve_relay)
        self.to_c, self.c.up = connect(M, self.m.functions(), C, c_served)
        self.channels = [self.to_a, self.a, self.to_m, self.m.up, self.to_c, self.c.up]
        self.root.register(entry(A, ROOT), self.to_a)
        self.root.register(entry(M, ROOT), self.to_m)
        self.m.register(entry(C, M), self.to_c)  # M's registration of its child, passed up

    def tearDown(self):
        for ch in self.channels:
            ch.close(wait=False)
        for ch in self.channels:
            ch.close()


class PythonTree(TreeFixture):
    def test_registry(self):
        names = [e["name"] for e in self.root.list("")]
        self.assertEqual(names, ["root", "root.a", "root.m", "root.m.c"])
        self.assertEqual([e["seq"] for e in self.root.list("")], [0, 1, 2, 3])
        self.assertEqual([e["name"] for e in self.root.list("root.m")], ["root.m", "root.m.c"])
        self.assertEqual(self.root.list("root.m.c.d"), [])
        # From C, through M, to the root and back.
        self.assertEqual(self.c.up.call("arbor.find", "root.m.c", timeout=WAIT)["uuid"], C["uuid"])
        self.assertEqual(self.c.up.call("arbor.find", "root", timeout=WAIT)["uuid"], ROOT["uuid"])
        self.assertEqual([e["name"] for e in self.c.up.call("arbor.list", "root.a", timeout=WAIT)], ["root.a"])
        with self.assertRaises(RemoteError) as got:
            self.c.up.call("arbor.find", "root.nobody", timeout=WAIT)
        self.assertEqual(got.exception.name, "arbor.not_found")
        self.assertEqual([h["name"] for h in got.exception.relay], ["root.m"])  # passed on by M

    def test_find_the_first_registered_by_alias(self):
        later = {"name": "root.m.d", "uuid": "u-d"}
        self.c.up.call("arbor.register", entry(later, M, aliases=["db"]), timeout=WAIT)
        self.a.call("arbor.register", entry({"name": "root.a.e", "uuid": "u-e"}, A, aliases=["db"]), timeout=WAIT)
        self.assertEqual(self.a.call("arbor.find", "db", timeout=WAIT)["uuid"], "u-d")
        self.assertEqual(self.m.route("u-d"), self.to_c)  # the route M learnt on the way up
        self.assertEqual(self.root.route("u-d"), self.to_m)
        self.c.up.call("arbor.unregister", "u-d", timeout=WAIT)
        self.assertEqual(self.a.call("arbor.find", "db", timeout=WAIT)["uuid"], "u-e")
        self.assertIsNone(self.m.route("u-d"))

    def test_unregister_removes_the_subtree_and_late_registrations(self):
        self.root.unregister(M["uuid"])
        self.assertEqual([e["name"] for e in self.root.list("")], ["root", "root.a"])
        # A registration of C's child that crossed the removal on its way up.
        self.c.up.call("arbor.register", entry({"name": "root.m.c.x", "uuid": "u-x"}, C), timeout=WAIT)
        self.root.register(entry(M, ROOT), self.to_m)
        self.assertEqual([e["name"] for e in self.root.list("")], ["root", "root.a"])
        # The tombstones are bounded.
        for i in range(MAX_GONE):
            self.root.unregister("u-old-%d" % i)
        self.root.register(entry(M, ROOT), self.to_m)
        self.assertEqual(self.root.find("root.m")["uuid"], M["uuid"])

    def test_wait_for(self):
        waiting = self.c.up.start_call("arbor.wait_for", "root.a.late", timeout=WAIT)
        never = self.a.start_call("arbor.wait_for", "root.never", timeout=WAIT)
        self.a.call("arbor.register", entry({"name": "root.a.late", "uuid": "u-late"}, A), timeout=WAIT)
        self.assertEqual(waiting.result(timeout=WAIT)["uuid"], "u-late")
        never.cancel()
        with self.assertRaises(RemoteError) as got:
            never.result(timeout=WAIT)
        self.assertEqual((got.exception.code, got.exception.canceller), ("cancelled", A))
        # Through M, cancelled: M cancels the call it passed up.
        through = self.c.up.start_call("arbor.wait_for", "root.never", timeout=WAIT)
        through.cancel()
        with self.assertRaises(RemoteError) as got:
            through.result(timeout=WAIT)
        self.assertEqual(got.exception.code, "cancelled")
        # A deadline ends it too.
        with self.assertRaises(RemoteError) as got:
            self.a.call("arbor.wait_for", "root.never", timeout=0.05)
        self.assertEqual(got.exception.code, "deadline")

    def dial(self, target, on=None, hops=None):
        """A channel from A to target through the tree: (call, channel)."""
        on = on or self.a
        call = on.open_context("arbor.relay", {"to": target["uuid"], "name": target["name"], "hops": hops})
        via = list(reversed(call.started["hops"]))
        stream = relay.RelayStream(lambda: next(call), call.send, call.close_send)
        ch = chan.Channel(stream, stream.write, stream.close_stream, A, True, via=via)
        ch.handshake(WAIT)
        self.assertEqual(ch.peer, target)
        return call, ch

    def test_relay_down_through_the_root_and_a_middle_actor(self):
        call, ch = self.dial(C)
        self.assertEqual(call.started, {"hops": [ROOT, M]})
        self.assertEqual(ch.call("whoami", None, timeout=WAIT), "root.m.c")
        with self.assertRaises(RemoteError) as got:
            ch.call("boom", "x" * 100000, timeout=WAIT)  # an error of many items
        self.assertEqual((got.exception.type, got.exception.src), ("ValueError", C))
        self.assertEqual(got.exception.relay, [M, ROOT])  # from the target's side
        ch.close()
        self.assertEqual(call.result(timeout=WAIT), {})

    def test_relay_up_from_below(self):
        # C dials A: up through M and the root, down to A; A is no target
        # here, so the root's hop to A fails, and the error names the hops.
        with self.assertRaises(RemoteError) as got:
            self.c.up.open_context("arbor.relay", {"to": A["uuid"], "name": A["name"], "hops": []})
        self.assertEqual(got.exception.code, "unknown_function")
        self.assertEqual(got.exception.relay, [ROOT, M])
        # C dials M, its parent: the end is M, with no hop between.
        call, ch = self.dial(M, on=self.c.up)
        self.assertEqual(call.started, {"hops": []})
        self.assertEqual(ch.call("whoami", None, timeout=WAIT), "root.m")
        ch.close()
        self.assertEqual(call.result(timeout=WAIT), {})

    def test_relay_failures(self):
        cases = [
            ({"to": "u-nobody", "name": "root.nobody", "hops": []}, "arbor.not_found", ""),
            ({"to": ROOT["uuid"], "name": "root", "hops": []}, "arbor.no_relay", ""),
            ({"to": C["uuid"], "name": C["name"], "hops": [A] * 64}, "", "passed 64 actors"),
        ]
        for args, name, msg in cases:
            with self.subTest(args["name"]):
                with self.assertRaises(RemoteError) as got:
                    self.a.open_context("arbor.relay", args)
                self.assertEqual(got.exception.name, name)
                self.assertIn(msg, got.exception.msg)

    def test_bad_items_fail_the_relay(self):
        # The root, the first hop, fails the relay and cancels the one it
        # opened toward C.
        for item, want in ((b"x" * (relay.RELAY_CHUNK + 1), "past the bound"), ("text", "not bin")):
            with self.subTest(want):
                call = self.a.open_context("arbor.relay", {"to": C["uuid"], "name": C["name"], "hops": []})
                call.send(item)
                with self.assertRaises(RemoteError) as got:
                    call.result(timeout=WAIT)
                self.assertIn(want, got.exception.msg)
                self.assertEqual(got.exception.src, ROOT)
                # The channels still work.
                self.assertEqual(self.a.call("arbor.find", "root.m.c", timeout=WAIT)["uuid"], C["uuid"])


class PythonDialer(TreeFixture):
    """Tree.dial and the module's functions over the same tree: the root,
    M and C dial by name; each channel runs on arbor.relay."""

    def test_lookups_from_the_root_and_below(self):
        for t in (self.root, self.c):
            with self.subTest(t.actor["name"]):
                self.assertEqual(t.find("root.m.c", timeout=WAIT)["uuid"], C["uuid"])
                self.assertEqual([e["name"] for e in t.list("root.m", timeout=WAIT)], ["root.m", "root.m.c"])
                self.assertEqual(t.wait_for("root.a", timeout=WAIT)["uuid"], A["uuid"])
        with self.assertRaises(chan.DeadlineExceeded):
            self.root.wait_for("root.never", timeout=0.05)
        with self.assertRaises(RemoteError) as got:
            self.c.wait_for("root.never", timeout=0.05)
        self.assertEqual(got.exception.code, "deadline")
        # A wait that a registration ends, in either order.
        found = []
        waiter = threading.Thread(target=lambda: found.append(self.c.wait_for("root.a.late", timeout=WAIT)))
        waiter.start()
        self.a.call("arbor.register", entry({"name": "root.a.late", "uuid": "u-late"}, A), timeout=WAIT)
        waiter.join()
        self.assertEqual([e["uuid"] for e in found], ["u-late"])

    def test_dial_down_up_and_close(self):
        cases = [(self.root, C, [M]), (self.m, C, []), (self.c, M, [])]
        for t, target, hops in cases:
            with self.subTest("%s to %s" % (t.actor["name"], target["name"])):
                ch = t.dial(target["name"], timeout=WAIT)
                self.assertEqual(ch.peer, target)
                self.assertEqual(ch.relay_call.started, {"hops": hops})
                self.assertEqual(ch.call("whoami", None, timeout=WAIT), target["name"])
                self.assertEqual(list(ch.stream("count", 3000)), list(range(3000)))  # past the windows
                with self.assertRaises(RemoteError) as got:
                    ch.call("nothing", None, timeout=WAIT)
                self.assertEqual((got.exception.code, got.exception.src), ("unknown_function", target))
                self.assertEqual(got.exception.relay, list(reversed(hops)))
                ch.close()
                self.assertEqual(ch.relay_call.result(timeout=0), {})  # closed by both stops, not cancelled
                ch.close()  # again: nothing more

    def test_dial_failures(self):
        with self.assertRaises(relay.NoRelay):
            self.root.dial("root", timeout=WAIT)
        with self.assertRaises(relay.NotFound):
            self.root.dial("root.nobody", timeout=WAIT)
        with self.assertRaises(relay.NotFound):  # the root has no route to it
            self.root.dial_entry(entry({"name": "root.gone", "uuid": "u-gone"}, ROOT), timeout=WAIT)
        with self.assertRaises(RemoteError) as got:  # asked of the root, through M
            self.c.dial("root.nobody", timeout=WAIT)
        self.assertEqual(got.exception.name, "arbor.not_found")
        with self.assertRaises(RemoteError) as got:  # up through M and the root, to A, which takes no relays
            self.c.dial("root.a", timeout=WAIT)
        self.assertEqual((got.exception.code, got.exception.relay), ("unknown_function", [ROOT, M]))

    def test_dial_checks_the_hello(self):
        # X is registered as u-x, and its relays end in a channel that
        # says it is u-y.
        x = Tree({"name": "root.x", "uuid": "u-x"})
        impostor = relay.RelayTarget(chan.Functions())

        class Target:
            def serve(self, ctx, args):
                return impostor.serve(ctx, dict(args, to=ctx.actor["uuid"]))
        x.target = Target()
        served = chan.Functions()
        served.add("arbor.relay", "context", x.serve_relay)
        to_x, x.up = connect(ROOT, self.root.functions(), {"name": "root.x", "uuid": "u-y"}, served)
        self.channels += [to_x, x.up]
        self.root.register(entry({"name": "root.x", "uuid": "u-x"}, ROOT), to_x)
        with self.assertRaises(chan.HandshakeError) as got:
            self.root.dial("root.x", timeout=WAIT)
        self.assertIn("reached root.x (u-y)", str(got.exception))

    def test_the_target_stopping_ends_the_channel(self):
        ch = self.root.dial("root.m.c", timeout=WAIT)
        self.assertTrue(self.c.target.close(C, "stopping", WAIT))
        self.assertTrue(ch.wait(WAIT), "the channel did not end with the target's stop")
        ch.close()
        self.assertEqual(ch.relay_call.result(timeout=0), {})

    def test_stop_actor_names_the_dialer(self):
        self.root.stop_actor("root.m.c", timeout=WAIT)
        self.assertEqual(self.stopped, [ROOT])

    def test_the_module_functions_use_the_process_tree(self):
        before = treemod.process_tree()
        treemod.set_process_tree(self.c)
        try:
            self.assertEqual(arbor.find("root.m", timeout=WAIT)["uuid"], M["uuid"])
            self.assertEqual(arbor.wait_for("root.m", timeout=WAIT)["uuid"], M["uuid"])
            self.assertEqual([e["name"] for e in arbor.list_actors("root.m")], ["root.m", "root.m.c"])
            ch = arbor.dial("root.m", timeout=WAIT)
            self.assertEqual(ch.call("whoami", None, timeout=WAIT), "root.m")
            ch.close()
        finally:
            treemod.set_process_tree(before)


if __name__ == "__main__":
    unittest.main()
