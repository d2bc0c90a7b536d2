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


@functions.func("dial_report")
def dial_report(ctx, args):
    """Finds and dials the actor named args["name"] (arbor.dial, through
    the tree) and reports what it saw: its lookups, the relay's hops, a
    func, a stream of 3000 and an error. A Go actor (args["go"]) serves
    add, count and fail; a Python one square, count and boom."""
    name = args["name"]
    r = {"found": arbor.find(name, timeout=30)["uuid"], "waited": arbor.wait_for(name, timeout=30)["uuid"],
         "listed": [e["name"] for e in arbor.list_actors(name, timeout=30)]}
    ch = arbor.dial(name, timeout=30)
    try:
        r["peer"] = ch.peer["name"]
        r["hops"] = [h["name"] for h in ch.relay_call.started["hops"]]
        if args.get("go"):
            r["sum"] = ch.call("add", {"a": 20, "b": 22}, timeout=30)
        else:
            r["sum"] = ch.call("square", 7, timeout=30)
        r["count"] = sum(1 for i, v in enumerate(ch.stream("count", 3000, timeout=30)) if i == v)
        try:
            ch.call("fail" if args.get("go") else "boom", "from python", timeout=30)
        except arbor.RemoteError as e:
            r.update(type=e.type, msg=e.msg, source=e.src.get("name", ""), relay=[h["name"] for h in e.relay])
    finally:
        ch.close()
    r["closed"] = ch.relay_call.ended()
    return r


@functions.func("stop_by_name")
def stop_by_name(ctx, name):
    """Stops the actor named name, on this actor's behalf (arbor.stop_actor)."""
    arbor.stop_actor(name, timeout=30)


def stop_children():
    for a in list(children.values()):
        a.stop()


if __name__ == "__main__":
    arbor.main(functions, on_stop=stop_children)
    print("worker.py: not started as an actor (no ARBOR_SPEC)", file=sys.stderr)
    sys.exit(1)
