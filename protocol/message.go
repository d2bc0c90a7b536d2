package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"time"
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

// FuncKind is the dialog a function follows; see PROTOCOL.md.
type FuncKind uint8

const (
	// FuncUnary is called once and returns once: Start, StartAck, Return.
	FuncUnary FuncKind = iota + 1
	// FuncStream yields a sequence: Start, StartAck, Yield*, Stop.
	FuncStream
	// FuncContext opens a two-way session: Start, StartAck, Started,
	// Yield* each way, Stop each way, Return.
	FuncContext
)

var funcKindNames = [...]string{FuncUnary: "func", FuncStream: "stream", FuncContext: "context"}

func (k FuncKind) String() string {
	if int(k) < len(funcKindNames) && funcKindNames[k] != "" {
		return funcKindNames[k]
	}
	return fmt.Sprintf("funckind(%d)", uint8(k))
}

// ParseFuncKind is the inverse of FuncKind.String.
func ParseFuncKind(s string) (FuncKind, bool) {
	for k, name := range funcKindNames {
		if name != "" && name == s {
			return FuncKind(k), true
		}
	}
	return 0, false
}

// EncodeMsgpack writes a FuncKind as its name, a msgpack string, as in the
// envelope (msgpack/v5 would otherwise write MarshalText's result as binary).
func (k FuncKind) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeString(k.String()) }

// DecodeMsgpack is the inverse of EncodeMsgpack.
func (k *FuncKind) DecodeMsgpack(dec *msgpack.Decoder) error {
	s, err := dec.DecodeString()
	if err != nil {
		return err
	}
	return k.UnmarshalText([]byte(s))
}

// MarshalText makes a FuncKind readable in JSON schemas.
func (k FuncKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (k *FuncKind) UnmarshalText(b []byte) error {
	v, ok := ParseFuncKind(string(b))
	if !ok {
		return fmt.Errorf("unknown function kind %q", b)
	}
	*k = v
	return nil
}

// Version is a protocol version. Peers with the same Major interoperate;
// Minor only adds optional fields, which older peers ignore.
type Version struct {
	Major, Minor uint16
}

// Current is the protocol version this package speaks.
var Current = Version{Major: 1, Minor: 2}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ActorID names an actor: a human name (its path in the tree, such as
// "root.pool.worker-3") and a UUID unique to one process lifetime.
type ActorID struct {
	Name string `msgpack:"name" json:"name"`
	UUID string `msgpack:"uuid" json:"uuid"`
}

func (a ActorID) String() string {
	if a.Name == "" {
		return a.UUID
	}
	return a.Name
}

// IsZero reports whether a is the zero ActorID.
func (a ActorID) IsZero() bool { return a == ActorID{} }

// Raw is one msgpack-encoded value, kept undecoded until the code that knows
// its Go type decodes it. An empty Raw travels as msgpack nil.
type Raw []byte

// Message is one of the protocol's messages: *Hello, *Start, *StartAck,
// *Started, *Yield, *Stop, *Return, *Error or *Credit.
type Message interface {
	Kind() Kind
	appendFields(b []byte) []byte
}

// Hello is the first message each side sends.
type Hello struct {
	Version Version
	Actor   ActorID
	PID     int64
	// Initiator is true on the side that spawned or dialed the other. The
	// initiator numbers its calls with odd call ids, the other side with
	// even ones, so ids never collide; two initiators are a handshake error.
	Initiator bool
}

// Start begins a call of Function. CID is chosen by the caller.
type Start struct {
	CID      uint64
	Function string
	FuncKind FuncKind
	Args     Raw
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
	FuncKind FuncKind
}

// Started carries the first value of a context call and the callee's initial
// credit for Yields from the caller.
type Started struct {
	CID    uint64
	Value  Raw
	Credit uint32
}

// Yield is one item of a stream, in either direction of a context.
type Yield struct {
	CID   uint64
	Value Raw
}

// Stop ends the sender's direction of a stream or context.
type Stop struct {
	CID uint64
}

// Return is the result of a unary or context call; it ends the call.
type Return struct {
	CID   uint64
	Value Raw
}

// Error ends a call with an error. CID 0 reports a problem with the channel
// itself (a message the peer could not process) rather than with one call.
type Error struct {
	CID uint64
	Err *RemoteError
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

// NewUUID returns a random (version 4) UUID in its usual text form.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	// By hand rather than with fmt: arbor parallel makes one per job.
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
