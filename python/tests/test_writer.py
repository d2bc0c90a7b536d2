"""The channel's writer: frames written inline by an idle caller or by its
thread, and close() while a caller is in the middle of an inline write."""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from arbor.channel import _Writer  # noqa: E402

WAIT = 10.0  # bounds every wait, so that a hang fails the test


class Writer(unittest.TestCase):
    def setUp(self):
        self.out = bytearray()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.errors = []

    def slow_write(self, data):
        self.entered.set()
        self.assertTrue(self.release.wait(WAIT), "the write was never released")
        self.out += data

    def test_close_during_an_inline_write(self):
        """close() waited for ever when the writer thread saw the close while
        a caller was writing inline and nothing else was queued."""
        w = _Writer(self.slow_write, self.errors.append)
        t = threading.Thread(target=w.send, args=(b"one",))
        t.start()
        self.assertTrue(self.entered.wait(WAIT))
        closed = threading.Event()
        c = threading.Thread(target=lambda: (w.close(), closed.set()))
        c.start()
        self.release.set()
        self.assertTrue(closed.wait(WAIT), "close() did not return after the inline write ended")
        t.join(WAIT)
        c.join(WAIT)
        self.assertEqual(bytes(self.out), b"one")
        self.assertEqual(self.errors, [])

    def test_queued_behind_an_inline_write(self):
        """What is queued while a caller writes inline goes out after it, in
        order, and close() writes it before it returns."""
        w = _Writer(self.slow_write, self.errors.append)
        t = threading.Thread(target=w.send, args=(b"one,",))
        t.start()
        self.assertTrue(self.entered.wait(WAIT))
        w.send(b"two,")
        w.send(b"three", inline=False)
        self.release.set()
        t.join(WAIT)
        w.close()
        self.assertEqual(bytes(self.out), b"one,two,three")

    def test_write_failure(self):
        def broken(data):
            raise BrokenPipeError("gone")

        w = _Writer(broken, self.errors.append)
        w.send(b"x")
        self.assertEqual(len(self.errors), 1)
        with self.assertRaises(Exception):
            w.send(b"y")
        w.close()


if __name__ == "__main__":
    unittest.main()
