// Package ipc turns any byte stream (a unix socketpair, a pair of pipes, a
// TCP connection) into an arbor channel: both ends serve typed functions to
// each other and call each other's, over protocol v1.
//
// # Declaring functions
//
// A function is declared once, as a Go value, with NewFunc (one result),
// NewStream (a sequence of items) or NewContext (a two-way session). The
// same value goes into the serving end's Table and is used by the calling
// end to call with compile-time types. Declarations carry their schema,
// derived from their type parameters.
//
// # Lifecycle and ownership
//
// Open exchanges Hello messages and starts two goroutines, a reader and a
// writer; each call served runs in a goroutine of its own. All of them
// belong to the Channel: Close cancels the served calls, fails the pending
// ones with ErrClosed, closes the connection and returns only when every one
// of those goroutines has returned. When the peer goes away, every pending
// call fails at once with a *PeerGoneError naming the peer.
//
// # Cancellation, deadlines and flow control
//
// A call whose ctx ends asks the peer, through the reserved function
// arbor.cancel, to cancel the remote task; the remote function sees its ctx
// cancelled, and the caller returns ctx.Err() once the remote task has ended
// (or after Options.CancelWait). A ctx deadline travels with the call.
// Streams are paced by credit: a producer waits while its consumer has not
// granted credit, so a slow consumer costs at most Options.Window items of
// memory per stream.
//
// # Errors
//
// Errors from the remote function arrive as *protocol.RemoteError, with the
// original type name, message, stack (for panics), source actor and relay
// path; errors.Is matches context.Canceled, context.DeadlineExceeded and the
// protocol sentinels by the error's code. Bad input from the peer is answered
// with a typed error and never affects other calls; only a broken framing
// (a frame over the size limit, a truncated stream) ends the channel.
package ipc
