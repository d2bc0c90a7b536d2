"""Protocol 1.3 in the Python channel: a responder that takes its identity
from the initiator's hello, and heartbeats that end a silent channel."""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import msgpack  # noqa: E402

from arbor import channel as chan, wire  # noqa: E402

WAIT = 10.0


def pair():
    a, b = socket.socketpair()
    ch = chan.Channel(chan.BufferedReader(a.recv, a.close), a.sendall, lambda: a.shutdown(socket.SHUT_WR),
                      {"name": "", "uuid": ""}, initiator=False)
    return ch, b


def read_msg(sock):
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return wire.decode(body)


class SpecFromHello(unittest.TestCase):
    def test_identity_from_the_parents_hello(self):
        ch, peer = pair()
        spec = msgpack.packb({"actor": {"name": "root.far", "uuid": "u-far"}, "heartbeat_ms": 2000})
        peer.sendall(wire.frame(wire.Message("hello", ver=[1, 3], actor={"name": "root", "uuid": "u-root"}, pid=1,
                                             init=True, spec=wire.Raw(spec))))
        seen = []

        def from_hello(raw):
            seen.append(raw)
            return msgpack.unpackb(raw)["actor"]

        ch.handshake(timeout=WAIT, spec_from_hello=from_hello)
        self.assertEqual(seen, [spec])
        hello = read_msg(peer)  # sent only after the parent's was read
        self.assertEqual(hello.get("actor"), {"name": "root.far", "uuid": "u-far"})
        self.assertEqual(ch.actor["name"], "root.far")
        ch.close(wait=False)
        peer.close()

    def test_no_spec_fails(self):
        ch, peer = pair()
        peer.sendall(wire.frame(wire.Message("hello", ver=[1, 2], actor={"name": "root", "uuid": "u"}, pid=1, init=True)))
        with self.assertRaises(chan.HandshakeError) as caught:
            ch.handshake(timeout=WAIT, spec_from_hello=lambda raw: {"name": "x", "uuid": "y"})
        self.assertIn("carries no spec", str(caught.exception))
        peer.close()


class Heartbeat(unittest.TestCase):
    def test_a_silent_peer_ends_the_channel(self):
        ch, peer = pair()
        peer.sendall(wire.frame(wire.Message("hello", ver=[1, 3], actor={"name": "root", "uuid": "u"}, pid=1, init=True)))
        ch.handshake(timeout=WAIT)
        start = time.monotonic()
        ch.start_heartbeat(0.05)  # the peer reads nothing and answers nothing from now on
        self.assertTrue(ch.wait(WAIT), "a silent peer did not end the channel")
        self.assertIn("heartbeat lost", str(ch._err))
        self.assertLess(time.monotonic() - start, WAIT)
        peer.close()

    def test_an_answering_peer_keeps_it(self):
        ch, peer = pair()
        peer.sendall(wire.frame(wire.Message("hello", ver=[1, 3], actor={"name": "root", "uuid": "u"}, pid=1, init=True)))
        ch.handshake(timeout=WAIT)
        read_msg(peer)  # the hello
        ch.start_heartbeat(0.05)
        answered = 0
        while answered < 10:  # ten beats, each ping answered
            m = read_msg(peer)
            if m.kind == "start" and m.get("fn") == "arbor.ping":
                peer.sendall(wire.frame(wire.Message("return", cid=m.get("cid"), v=wire.NIL)))
                answered += 1
        self.assertFalse(ch.done(), "a channel whose peer answers ended: %s" % ch._err)
        ch.close(wait=False)
        peer.close()


if __name__ == "__main__":
    unittest.main()
