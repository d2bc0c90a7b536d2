"""A Python actor that introduces itself with another uuid than the one
its parent gave it: the parent must refuse it (PROTOCOL.md section 12)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import arbor  # noqa: E402

spec = json.loads(os.environ["ARBOR_SPEC"])
spec["actor"]["uuid"] = "00000000-0000-4000-8000-000000000000"
os.environ["ARBOR_SPEC"] = json.dumps(spec)
arbor.main(arbor.Functions())
