"""arbor for Python: serve functions as an arbor actor, and start and call
arbor actors, written from protocol/PROTOCOL.md.

    import arbor

    functions = arbor.Functions()

    @functions.func("add")
    def add(ctx, args):
        return args["a"] + args["b"]

    if __name__ == "__main__":
        arbor.main(functions)  # as an actor: serve, never return
"""

from .wire import RemoteError, BadMessage, FrameError, MAJOR, MINOR
from .channel import (Channel, Functions, CallContext, PeerGone, Cancelled, DeadlineExceeded, BadArgument,
                      HandshakeError, FuncCall, StreamCall, ContextCall)
from .actor import main, read_spec, SpecError
from .spawn import start_actor, Actor, StartError, ExitError
from .relay import NotFound, NoRelay
from .tree import (Tree, RelayedChannel, process_tree, find, wait_for, list_actors, dial, dial_entry,
                   stop_actor)

__all__ = ["RemoteError", "BadMessage", "FrameError", "MAJOR", "MINOR", "Channel", "Functions", "CallContext",
           "PeerGone", "Cancelled", "DeadlineExceeded", "BadArgument", "HandshakeError", "FuncCall",
           "StreamCall", "ContextCall", "main", "read_spec", "SpecError", "start_actor", "Actor",
           "StartError", "ExitError", "Tree", "process_tree", "NotFound", "NoRelay", "RelayedChannel", "find",
           "wait_for", "list_actors", "dial", "dial_entry", "stop_actor"]
