"""Python as the caller: round trip and stream rate to a Go actor and to a
Python actor, each beside the floor of a raw pipe echo from Python.

    go test -c -o /tmp/interop.test ./python
    ARBOR_GO_ACTOR=/tmp/interop.test python3 python/bench.py [calls] [items]
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import arbor  # noqa: E402

ECHO = """
import os
def exactly(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            raise SystemExit(0)
        b += c
    return b
while True:
    h = exactly(4)
    os.write(1, h + exactly(int.from_bytes(h, "big")))
"""


def floor(calls):
    p = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    frame = b"\x00\x00\x00\x10" + bytes(16)
    fin, fout = p.stdin.fileno(), p.stdout.fileno()
    begin = time.perf_counter()
    for _ in range(calls):
        os.write(fin, frame)
        got = b""
        while len(got) < len(frame):
            got += os.read(fout, len(frame) - len(got))
    per = (time.perf_counter() - begin) / calls
    p.stdin.close()
    p.wait()
    p.stdout.close()
    return per


def measure(binary, args, fn, fn_args, calls, items):
    a = arbor.start_actor(binary, "bench", args=args)
    try:
        ch = a.channel
        ch.call(fn, fn_args)
        begin = time.perf_counter()
        for _ in range(calls):
            ch.call(fn, fn_args)
        per = (time.perf_counter() - begin) / calls
        begin = time.perf_counter()
        n = sum(1 for _ in ch.stream("count", items))
        rate = n / (time.perf_counter() - begin)
    finally:
        a.stop()
    return per, rate


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    items = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    base = floor(calls)
    print("floor: raw pipe echo from Python, %.1f us per round trip" % (base * 1e6))
    rows = []
    go = os.environ.get("ARBOR_GO_ACTOR")
    if go:
        rows.append(("Python -> Go", go, [], "add", {"a": 1, "b": 2}))
    rows.append(("Python -> Python", sys.executable, [os.path.join(HERE, "tests", "worker.py")], "square", 3))
    for name, binary, args, fn, fn_args in rows:
        per, rate = measure(binary, args, fn, fn_args, calls, items)
        print("%-17s call round trip %6.1f us (%.1fx floor), stream %6.1f k items/s"
              % (name, per * 1e6, per / base, rate / 1e3))


if __name__ == "__main__":
    main()
