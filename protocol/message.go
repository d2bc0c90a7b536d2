package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

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

// Current returns the protocol version this implementation speaks: 1.5.
func Current() Version { return Version{Major: 1, Minor: 5} }

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
