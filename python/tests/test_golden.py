"""Every golden vector of testdata/protocol decodes to what its .json says
and encodes back to the same bytes (PROTOCOL.md section 11)."""

import glob
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
VECTORS = os.path.join(HERE, "..", "..", "testdata", "protocol")

from arbor import wire  # noqa: E402


def read_hex(path):
    with open(path) as f:
        lines = [l for l in f if not l.startswith("#")]
    return bytes.fromhex("".join("".join(lines).split()))


def as_fields(msg):
    out = {}
    for key, value in msg.fields.items():
        if isinstance(value, wire.Raw):
            value = bytes(value).hex()
        elif isinstance(value, wire.RemoteError):
            value = value.to_fields()
        out[key] = value
    return out


def from_fields(kind, fields):
    fields = dict(fields)
    for key in wire.PAYLOAD_KEYS:
        if key in fields:
            fields[key] = wire.Raw(bytes.fromhex(fields[key]))
    if "err" in fields:
        fields["err"] = error_from(fields["err"])
    return wire.Message(kind, **fields)


def error_from(d):
    d = dict(d)
    if "data" in d:
        d["data"] = wire.Raw(bytes.fromhex(d["data"]))
    if "children" in d:
        d["children"] = [error_from(c) for c in d["children"]]
    return wire.RemoteError(**d)


class GoldenVectors(unittest.TestCase):
    def vectors(self):
        names = sorted(glob.glob(os.path.join(VECTORS, "*.json")))
        self.assertGreater(len(names), 20, "no golden vectors found in %s" % VECTORS)
        for path in names:
            with open(path) as f:
                spec = json.load(f)
            if "kind" not in spec:
                continue  # not a message vector (the spec, the secret line)
            yield os.path.basename(path)[:-5], spec, read_hex(path[:-5] + ".hex")

    def test_decode(self):
        for name, spec, frame in self.vectors():
            with self.subTest(name):
                if spec["kind"] is None:
                    continue
                body = frame[4:]
                self.assertEqual(int.from_bytes(frame[:4], "big"), len(body))
                msg = wire.decode(body)
                self.assertEqual(msg.kind, spec["kind"])
                got = as_fields(msg)
                for key, want in spec["fields"].items():
                    self.assertEqual(got.get(key), want, key)
                # Keys not on the wire hold their defaults.
                for key, value in got.items():
                    if key not in spec["fields"]:
                        self.assertIn(value, (0, False, "c0", ""), key)

    def test_encode(self):
        for name, spec, frame in self.vectors():
            with self.subTest(name):
                if spec["kind"] is None:
                    continue
                self.assertEqual(wire.frame(from_fields(spec["kind"], spec["fields"])).hex(), frame.hex())

    def test_refused(self):
        """Negative vectors: "kind" null and the answer the spec requires."""
        seen = 0
        for name, spec, frame in self.vectors():
            if spec["kind"] is not None:
                continue
            seen += 1
            with self.subTest(name):
                want = spec["refused"]
                with self.assertRaises(wire.BadMessage) as caught:
                    wire.decode(frame[4:])
                self.assertEqual(caught.exception.cid, want["cid"], str(caught.exception))

    def test_spec_vectors(self):
        """spec.json reads as an actor's spec; unix-secret.hex is what this
        package writes on connecting to the unix transport."""
        from arbor import actor

        with open(os.path.join(VECTORS, "spec.json")) as f:
            spec = actor.read_spec(f.read())
        self.assertEqual(spec["actor"], {"name": "root.pool.worker-1", "uuid": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f"})
        self.assertEqual(spec["parent"]["name"], "root.pool")
        self.assertEqual((spec["transport"], spec["log_level"]), ("unix", "debug"))
        self.assertEqual(actor.secret_line(spec), read_hex(os.path.join(VECTORS, "unix-secret.hex")))

    def test_yield_fast_path(self):
        for cid, value in ((1, 0), (2 ** 40, "x" * 300), (7, None)):
            slow = wire.frame(wire.Message("yield", cid=cid, v=wire.pack(value)))
            self.assertEqual(wire.yield_frame(cid, wire.pack(value)), slow)
            # The quick decode of a canonical yield agrees with the general one.
            self.assertEqual(wire.decode(slow[4:]).fields, {"cid": cid, "v": wire.pack(value)})
        self.assertIsNone(wire._quick_yield(b"\x83\xa1k\xa5yield\xa3cid\x00\xa1v\x01"))  # cid 0
        with self.assertRaises(wire.BadMessage):
            wire.decode(b"\x83\xa1k\xa5yield\xa3cid\x00\xa1v\x01")

    def test_depth(self):
        deep = b"\x91" * 64 + b"\x01"  # 64 arrays holding an int: the int is level 65
        with self.assertRaises(wire.BadMessage):
            wire.skip(deep, 0)
        self.assertEqual(wire.skip(b"\x91" * 63 + b"\x90", 0), 64)  # 64 levels


if __name__ == "__main__":
    unittest.main()
