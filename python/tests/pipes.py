"""Channels over in-memory pipes, for the unit tests."""

import os

from arbor import channel as chan


def pipe_channel(rfd, wfd, actor, initiator, functions=None):
    """A channel reading rfd and writing wfd, which its close closes once."""
    closed = []

    def close():
        if not closed:
            closed.append(True)
            os.close(wfd)
    return chan.Channel(chan.fd_reader(rfd), chan._write_all(wfd), close, actor, initiator, functions=functions)
