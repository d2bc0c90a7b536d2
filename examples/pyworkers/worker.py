"""A Python worker for examples/pyworkers: it serves "primes", a stream of
the primes in a range, as an arbor actor."""

import os
import sys

# arbor's Python package, from this repository (or from $ARBOR_PYTHONPATH).
sys.path.insert(0, os.environ.get("ARBOR_PYTHONPATH")
                or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import arbor  # noqa: E402

functions = arbor.Functions()


@functions.stream("primes")
def primes(ctx, span):
    lo, hi = span["lo"], span["hi"]
    if lo >= hi:
        raise ValueError("an empty range: %d..%d" % (lo, hi))
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n ** 0.5) + 1)):
            yield n


if __name__ == "__main__":
    arbor.main(functions)
    sys.exit("worker.py is an arbor actor: run it from a Go parent (go run ./examples/pyworkers)")
