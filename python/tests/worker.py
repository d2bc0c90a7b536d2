"""A Python actor for the interop tests: run by a Go parent (spawn.Start
with Binary python3 and this file) or by a Python one."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import arbor  # noqa: E402

functions = arbor.Functions()


@functions.func("square")
def square(ctx, x):
    return x * x


@functions.stream("count")
def count(ctx, n):
    """0, 1, ... n-1; forever if n is negative, until cancelled."""
    i = 0
    while n < 0 or i < n:
        yield i
        i += 1


@functions.func("boom")
def boom(ctx, msg):
    raise ValueError(msg)


@functions.func("wait_cancel")
def wait_cancel(ctx, args):
    """Blocks until the call is cancelled, then fails as cancelled."""
    while True:
        ctx.sleep(10)


@functions.func("note_canceller")
def note_canceller(ctx, path):
    """Marks path + ".up", blocks until cancelled, then writes the name of
    the actor that asked to path."""
    open(path + ".up", "w").close()
    try:
        while True:
            ctx.sleep(10)
    except arbor.Cancelled as e:
        with open(path, "w") as f:
            f.write((e.canceller or {}).get("name", ""))
        raise


@functions.func("nap")
def nap(ctx, seconds):
    """Sleeps, then says who it is: a call longer than heartbeats."""
    ctx.sleep(seconds)
    return ctx.actor["name"]


@functions.context("echo")
def echo(ctx, factor):
    ctx.start("ready")
    n = 0
    for item in ctx:
        ctx.send(item * factor)
        n += 1
    return n


@functions.func("call_parent")
def call_parent(ctx, args):
    """Calls a function its parent serves, on the same channel."""
    return ctx.channel.call(args["fn"], args.get("args"))


@functions.func("whoami")
def whoami(ctx, args):
    ctx.value("logger").info("asked who I am", extra={"fields": {"pid": os.getpid()}})
    return {"name": ctx.actor["name"], "pid": os.getpid()}


children = {}  # name -> arbor.Actor: what start_child started, stopped with the worker


@functions.func("start_child")
def start_child(ctx, args):
    """Starts args["binary"] as an actor below this one, named args["name"]."""
    a = arbor.start_actor(args["binary"], args["name"], args=args.get("args") or ())
    children[args["name"]] = a
    return {"name": a.name, "uuid": a.uuid, "pid": a.pid}


@functions.func("call_child")
def call_child(ctx, args):
    """Calls args["fn"] of the child named args["name"] with args["args"]."""
    return children[args["name"]].channel.call(args["fn"], args.get("args"), timeout=60)


def stop_children():
    for a in list(children.values()):
        a.stop()


if __name__ == "__main__":
    arbor.main(functions, on_stop=stop_children)
    print("worker.py: not started as an actor (no ARBOR_SPEC)", file=sys.stderr)
    sys.exit(1)
