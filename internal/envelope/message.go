package envelope

import (
	"fmt"
	"time"

	"github.com/arbor-go/arbor/protocol"
)

// Kind names a message type. On the wire it is the string in the "k" field.
type Kind uint8

// The message kinds of protocol version 1.
const (
	KindHello Kind = iota + 1
	KindStart
	KindStartAck
	KindStarted
	KindYield
	KindStop
	KindReturn
	KindError
	KindCredit
)

var kindNames = [...]string{
	KindHello:    "hello",
	KindStart:    "start",
	KindStartAck: "startack",
	KindStarted:  "started",
	KindYield:    "yield",
	KindStop:     "stop",
	KindReturn:   "return",
	KindError:    "error",
	KindCredit:   "credit",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func parseKind(s []byte) (Kind, bool) {
	switch string(s) {
	case "hello":
		return KindHello, true
	case "start":
		return KindStart, true
	case "startack":
		return KindStartAck, true
	case "started":
		return KindStarted, true
	case "yield":
		return KindYield, true
	case "stop":
		return KindStop, true
	case "return":
		return KindReturn, true
	case "error":
		return KindError, true
	case "credit":
		return KindCredit, true
	}
	return 0, false
}

// Message is one of the protocol's messages: *Hello, *Start, *StartAck,
// *Started, *Yield, *Stop, *Return, *Error or *Credit.
type Message interface {
	Kind() Kind
	appendFields(b []byte) []byte
}

// Hello is the first message each side sends.
type Hello struct {
	Version protocol.Version
	Actor   protocol.ActorID
	PID     int64
	// Initiator is true on the side that spawned or dialed the other. The
	// initiator numbers its calls with odd call ids, the other side with
	// even ones, so ids never collide; two initiators are a handshake error.
	Initiator bool
	// Spec (1.3), sent by an initiator to a child started with
	// ARBOR_SPEC=handshake, is the child's spec as a msgpack map
	// (PROTOCOL.md §12.7): the child reads it before it sends its own
	// hello. Empty: none, and the field is left off the wire.
	Spec protocol.Raw
}

// Start begins a call of Function. CID is chosen by the caller.
type Start struct {
	CID      uint64
	Function string
	FuncKind protocol.FuncKind
	Args     protocol.Raw
	// Credit is how many Yields the caller accepts before it grants more
	// (streams and contexts); zero for unary calls.
	Credit uint32
	// Timeout is the time left before the caller's deadline; zero means no
	// deadline. It is relative so that clocks need not agree.
	Timeout time.Duration
}

// StartAck says the callee found the function, checked its kind and decoded
// the arguments: the call is running.
type StartAck struct {
	CID      uint64
	FuncKind protocol.FuncKind
}

// Started carries the first value of a context call and the callee's initial
// credit for Yields from the caller.
type Started struct {
	CID    uint64
	Value  protocol.Raw
	Credit uint32
}

// Yield is one item of a stream, in either direction of a context.
type Yield struct {
	CID   uint64
	Value protocol.Raw
}

// Stop ends the sender's direction of a stream or context.
type Stop struct {
	CID uint64
}

// Return is the result of a unary or context call; it ends the call.
type Return struct {
	CID   uint64
	Value protocol.Raw
}

// Error ends a call with an error. CID 0 reports a problem with the channel
// itself (a message the peer could not process) rather than with one call.
type Error struct {
	CID uint64
	Err *protocol.RemoteError
}

// Credit grants the receiver of a stream direction permission to send Items
// more Yields on call CID.
type Credit struct {
	CID   uint64
	Items uint32
}

func (*Hello) Kind() Kind    { return KindHello }
func (*Start) Kind() Kind    { return KindStart }
func (*StartAck) Kind() Kind { return KindStartAck }
func (*Started) Kind() Kind  { return KindStarted }
func (*Yield) Kind() Kind    { return KindYield }
func (*Stop) Kind() Kind     { return KindStop }
func (*Return) Kind() Kind   { return KindReturn }
func (*Error) Kind() Kind    { return KindError }
func (*Credit) Kind() Kind   { return KindCredit }

// CallID returns the call id a message belongs to, or 0 for Hello and for
// channel-level errors.
func CallID(m Message) uint64 {
	switch m := m.(type) {
	case *Start:
		return m.CID
	case *StartAck:
		return m.CID
	case *Started:
		return m.CID
	case *Yield:
		return m.CID
	case *Stop:
		return m.CID
	case *Return:
		return m.CID
	case *Error:
		return m.CID
	case *Credit:
		return m.CID
	}
	return 0
}
