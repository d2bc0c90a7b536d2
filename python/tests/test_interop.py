"""A Python parent and Go actors: $ARBOR_GO_ACTOR is a Go binary that serves
add, count, echo, fail, block and children (python/interop_test.go runs
these tests with its own test binary)."""

import os
import signal
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import arbor  # noqa: E402
from arbor import wire  # noqa: E402

GO_ACTOR = os.environ.get("ARBOR_GO_ACTOR")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.01)
    return False


@unittest.skipUnless(GO_ACTOR, "ARBOR_GO_ACTOR is not set (python/interop_test.go sets it)")
class PythonParentOfGo(unittest.TestCase):
    def setUp(self):
        self.actor = arbor.start_actor(GO_ACTOR, "go")
        self.ch = self.actor.channel

    def tearDown(self):
        if self.actor is not None:
            self.actor.stop(grace=5)

    def test_call(self):
        self.assertEqual(self.ch.call("add", {"a": 2, "b": 3}), 5)
        self.assertIsNone(self.ch.ping())

    def test_registry_in_a_python_root(self):
        # The Go child's children register through it; this process, the
        # root, holds the entries and answers the Go actors' lookups.
        tree = arbor.tree.process_tree()
        pids = self.ch.call("children", 2)
        go = tree.find("root.go")
        self.assertEqual((go["uuid"], go["parent"], go["pid"]), (self.ch.peer["uuid"], tree.actor["uuid"], self.actor.pid))
        self.assertTrue(go["addr"] and go["host"], go)  # where it takes peers, asked after the handshake
        entries = tree.list("root.go")
        self.assertEqual([e["name"] for e in entries], ["root.go", "root.go.grandchild-0", "root.go.grandchild-1"])
        self.assertEqual(sorted(e["pid"] for e in entries[1:]), sorted(pids))
        self.assertTrue(all(e["parent"] == go["uuid"] for e in entries[1:]))
        self.assertLess(go["seq"], entries[1]["seq"])
        self.assertEqual(tree.find("root")["uuid"], tree.actor["uuid"])
        with self.assertRaises(arbor.tree.NotFound):
            tree.find("root.nobody")
        # A Go actor asks the root: spawn.WaitFor of an actor that is there.
        got = self.ch.call("wait_for", "root.go.grandchild-1", timeout=30)
        self.assertEqual(got["uuid"], entries[2]["uuid"])
        # Stopped, the Go child and its subtree leave the registry.
        self.assertEqual(self.actor.stop(grace=5), 0)
        self.actor = None
        self.assertEqual(tree.list("root.go"), [])

    def test_wait_for_in_a_python_root(self):
        waiting = self.ch.start_call("wait_for", "root.late", timeout=30)
        never = self.ch.start_call("wait_for", "root.never", timeout=30)
        late = arbor.start_actor(GO_ACTOR, "late")
        try:
            self.assertEqual(waiting.result(timeout=30)["uuid"], late.uuid)
        finally:
            late.stop(grace=5)
        never.cancel()
        with self.assertRaises(arbor.RemoteError) as caught:
            never.result(timeout=30)
        self.assertEqual(caught.exception.code, "cancelled")

    def test_relay_through_a_python_root(self):
        # One Go child dials another: directly, with the secret this root
        # put in their specs, and through the tree, relayed by this root.
        other = arbor.start_actor(GO_ACTOR, "other")
        try:
            for relayed, path in ((False, None), (True, ["root"])):
                got = self.ch.call("dial_go", {"name": "root.other", "relay": relayed}, timeout=30)
                self.assertEqual((got["sum"], got["source"], got["relay"]), (42, "root.other", path))
        finally:
            other.stop(grace=5)
        # A relay to the root itself, or to an actor that is gone, fails.
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("dial_go", {"name": "root.other", "relay": True}, timeout=30)
        self.assertEqual(caught.exception.name, "arbor.not_found")

    def test_stream(self):
        items = list(self.ch.stream("count", 5000))
        self.assertEqual(items, list(range(5000)))

    def test_context(self):
        c = self.ch.open_context("echo", 2)
        self.assertEqual(c.started, "ready")
        got = []
        for i in range(1500):  # past Go's window of 1024
            c.send(i)
            got.append(next(c))
        self.assertEqual(got, [2 * i for i in range(1500)])
        self.assertEqual(c.result(), 1500)

    def test_go_error(self):
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("fail", "disk full")
        e = caught.exception
        self.assertEqual(e.msg, "disk full")
        self.assertEqual(e.code, "")
        self.assertEqual(e.src["name"], "root.go")
        # One failing call breaks nothing else.
        self.assertEqual(self.ch.call("add", {"a": 1, "b": 1}), 2)

    def test_unknown_function(self):
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("nope")
        self.assertEqual(caught.exception.code, "unknown_function")
        self.assertEqual(caught.exception.type, "arbor.unknown_function")  # pinned (1.2)

    def test_bad_argument(self):
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("add", "not a pair")
        self.assertEqual(caught.exception.code, "bad_argument")
        self.assertEqual(caught.exception.type, "arbor.bad_argument")

    def test_cancel(self):
        call = self.ch.start_call("block")
        call.cancel()
        with self.assertRaises(arbor.RemoteError) as caught:
            call.result(timeout=10)
        e = caught.exception
        self.assertEqual(e.code, "cancelled")
        self.assertEqual(e.type, "arbor.cancelled")
        self.assertEqual(e.canceller["uuid"], self.ch.actor["uuid"])

    def test_stream_abandoned(self):
        s = self.ch.stream("count", -1)
        for _ in range(100):
            next(s)
        s.close()
        self.assertEqual(self.ch.call("add", {"a": 1, "b": 2}), 3)

    def test_deadline(self):
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("block", None, timeout=0.2)
        self.assertEqual(caught.exception.code, "deadline")

    def test_malformed_frame(self):
        # A body that is not a map: the Go side answers error cid 0 and keeps
        # the channel; other calls still work.
        self.ch._writer.send(b"\x00\x00\x00\x01\x07")
        self.assertEqual(self.ch.call("add", {"a": 4, "b": 4}), 8)
        # The answer came before the call's (one stream, in order).
        self.assertEqual([e.code for e in self.ch.peer_errors], ["protocol"])
        self.assertIn("expected a map", self.ch.peer_errors[0].msg)

    def test_teardown_of_a_go_subtree(self):
        pids = self.ch.call("children", 2)
        self.assertEqual(len(pids), 2)
        self.assertTrue(all(alive(p) for p in pids))
        status = self.actor.stop(grace=5)
        self.actor = None
        self.assertEqual(status, 0)
        self.assertTrue(wait_gone(pids), "grandchildren %s outlived the stop" % pids)

    def test_go_child_killed(self):
        call = self.ch.start_call("block")
        os.kill(self.actor.pid, signal.SIGKILL)
        with self.assertRaises(arbor.PeerGone):
            call.result(timeout=10)
        self.actor.wait(10)
        self.actor.kill()
        self.actor = None


@unittest.skipUnless(GO_ACTOR, "ARBOR_GO_ACTOR is not set")
class PythonParentKilled(unittest.TestCase):
    def test_go_child_outlives_no_parent(self):
        """A Python parent killed with SIGKILL: its Go actor (and the Go
        actors below it) see the channel end and exit."""
        import subprocess
        script = (
            "import sys; sys.path.insert(0, %r)\n"
            "import arbor\n"
            "a = arbor.start_actor(%r, 'go')\n"
            "print(a.pid, *a.channel.call('children', 1), flush=True)\n"
            "import time; time.sleep(60)\n" % (os.path.dirname(HERE), GO_ACTOR))
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            pids = [int(x) for x in p.stdout.readline().split()]
            self.assertEqual(len(pids), 2, pids)
            p.kill()
            p.wait()
            self.assertTrue(wait_gone(pids, 5), "Go actors %s outlived their killed Python parent" % pids)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()


class PythonParentOfPython(unittest.TestCase):
    """The Python package on both sides of a channel."""

    def setUp(self):
        self.actor = arbor.start_actor(sys.executable, "py", args=[os.path.join(HERE, "worker.py")])
        self.ch = self.actor.channel

    def tearDown(self):
        self.actor.stop(grace=5)

    def test_calls(self):
        self.assertEqual(self.ch.call("square", 9), 81)
        self.assertEqual(sum(self.ch.stream("count", 3000)), sum(range(3000)))
        with self.assertRaises(arbor.RemoteError) as caught:
            self.ch.call("boom", "no")
        self.assertEqual(caught.exception.type, "ValueError")
        self.assertIn("Traceback", caught.exception.stack)

    def test_cancel(self):
        call = self.ch.start_call("wait_cancel")
        call.cancel()
        with self.assertRaises(arbor.RemoteError) as caught:
            call.result(timeout=10)
        self.assertEqual(caught.exception.code, "cancelled")
        self.assertEqual(caught.exception.canceller["uuid"], self.ch.actor["uuid"])


if __name__ == "__main__":
    unittest.main()
