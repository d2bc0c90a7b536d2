package ipc

import (
	"errors"
	"fmt"
	"time"

	"github.com/arbor-go/arbor/protocol"
)

// ErrClosed is returned by calls on a channel that this side closed.
var ErrClosed = errors.New("ipc: channel closed")

// ErrCallEnded is returned by Send and CloseSend after the call they belong
// to has ended.
var ErrCallEnded = errors.New("ipc: call has ended")

// PeerGoneError fails every pending call and stream when the peer goes away
// (end of stream, connection reset, undecodable framing).
type PeerGoneError struct {
	Peer  protocol.ActorID
	Cause error
}

func (e *PeerGoneError) Error() string {
	return fmt.Sprintf("ipc: lost the channel to actor %s: %v", e.Peer, e.Cause)
}

func (e *PeerGoneError) Unwrap() error { return e.Cause }

// Is makes a PeerGoneError match protocol.ErrExited, the error code
// PROTOCOL.md gives a call whose channel ended under it.
func (e *PeerGoneError) Is(target error) bool { return target == protocol.ErrExited }

// HeartbeatError is the cause of a *PeerGoneError when nothing arrived from
// the peer for two heartbeats (Options.Heartbeat), Silence: the peer, or the
// link to it, is gone without an end of stream.
type HeartbeatError struct {
	Silence time.Duration
}

func (e *HeartbeatError) Error() string {
	return fmt.Sprintf("heartbeat lost: nothing from the peer for %v", e.Silence)
}

// AbandonedError is the error of a call whose caller's ctx ended, and whose
// remote function then ended with an error of its own rather than the
// cancellation: the remote error is not dropped for the ctx's. Both
// errors.Is(err, ctx.Err()) and errors.As(err, &remoteErr) hold.
type AbandonedError struct {
	Cause  error // the ctx's error, or why the caller stopped reading
	Remote error // the remote function's error, a *protocol.RemoteError
}

func (e *AbandonedError) Error() string {
	return fmt.Sprintf("%v, and the remote function failed meanwhile: %v", e.Cause, e.Remote)
}

func (e *AbandonedError) Unwrap() []error { return []error{e.Cause, e.Remote} }

// StalledError fails a new call at once when the peer has left too many
// cancellations unanswered: it reads nothing (frozen, SIGSTOPped, wedged),
// and every call made meanwhile would only add to what waits for it. Calls
// work again as soon as the peer answers.
type StalledError struct {
	Peer       protocol.ActorID
	Unanswered int // cancellations sent and not yet answered
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("ipc: actor %s has not answered %d cancellations: it is not reading (frozen or wedged); call refused", e.Peer, e.Unanswered)
}

// HandshakeError is a failed exchange of Hello messages.
type HandshakeError struct {
	Reason string
	// Received holds the first bytes the peer sent, when they were not a
	// Hello, so the error can show what the peer is.
	Received []byte
	Err      error
}

func (e *HandshakeError) Error() string {
	msg := "ipc: handshake failed: " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if len(e.Received) > 0 {
		msg += fmt.Sprintf(" (peer sent %q)", e.Received)
	}
	return msg
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// DecodeError is a payload that does not decode into the Go type the
// receiving code declared.
type DecodeError struct {
	Function string // the function the payload belongs to
	What     string // "argument", "result", "yield", "started value", "sent value"
	Want     string // the declared Go type
	Got      string // the msgpack type that arrived
	Err      error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: %s does not decode: want Go type %s, got msgpack %s: %v",
		e.Function, e.What, e.Want, e.Got, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ProtocolError is a message this side cannot accept: it names what was
// wrong. It is reported to the peer as an Error with code "protocol" and
// fails at most the call it concerns.
type ProtocolError struct {
	CID    uint64
	Reason string
}

func (e *ProtocolError) Error() string {
	if e.CID == 0 {
		return "ipc: protocol violation: " + e.Reason
	}
	return fmt.Sprintf("ipc: protocol violation on call %d: %s", e.CID, e.Reason)
}

// Is makes a ProtocolError match protocol.ErrProtocol, like a remote one.
func (e *ProtocolError) Is(target error) bool { return target == protocol.ErrProtocol }

// TableError is a table of functions that cannot be served.
type TableError struct {
	Function string
	Reason   string
}

func (e *TableError) Error() string {
	return fmt.Sprintf("ipc: cannot serve function %q: %s", e.Function, e.Reason)
}
