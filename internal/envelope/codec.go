package envelope

import (
	"bytes"
	"time"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/arbor-go/arbor/protocol"
)

// Field names on the wire. Every message is a msgpack map whose "k" entry is
// its kind; the other entries are listed in PROTOCOL.md.
const (
	keyKind      = "k"
	keyCID       = "cid"
	keyVersion   = "ver"
	keyActor     = "actor"
	keyPID       = "pid"
	keyInitiator = "init"
	keyFunction  = "fn"
	keyFuncKind  = "fk"
	keyArgs      = "args"
	keyCredit    = "credit"
	keyTimeout   = "timeout"
	keyValue     = "v"
	keyErr       = "err"
	keyItems     = "n"
	keySpec      = "spec"
)

// AppendMessage appends the msgpack encoding of m to b.
func AppendMessage(b []byte, m Message) []byte { return m.appendFields(b) }

func appendHead(b []byte, fields int, k Kind) []byte {
	b = wire.AppendMapLen(b, fields)
	b = wire.AppendStr(b, keyKind)
	return wire.AppendStr(b, kindNames[k])
}

func appendCID(b []byte, cid uint64) []byte {
	return wire.AppendUint(wire.AppendStr(b, keyCID), cid)
}

func appendActor(b []byte, a protocol.ActorID) []byte {
	b = wire.AppendMapLen(b, 2)
	b = wire.AppendStr(wire.AppendStr(b, "name"), a.Name)
	return wire.AppendStr(wire.AppendStr(b, "uuid"), a.UUID)
}

func (m *Hello) appendFields(b []byte) []byte {
	n := 5
	if len(m.Spec) > 0 {
		n++
	}
	b = appendHead(b, n, KindHello)
	b = wire.AppendStr(b, keyVersion)
	b = wire.AppendArrayLen(b, 2)
	b = wire.AppendUint(wire.AppendUint(b, uint64(m.Version.Major)), uint64(m.Version.Minor))
	b = appendActor(wire.AppendStr(b, keyActor), m.Actor)
	b = wire.AppendInt(wire.AppendStr(b, keyPID), m.PID)
	b = wire.AppendBool(wire.AppendStr(b, keyInitiator), m.Initiator)
	if len(m.Spec) > 0 {
		b = append(wire.AppendStr(b, keySpec), m.Spec...)
	}
	return b
}

func (m *Start) appendFields(b []byte) []byte {
	n := 5
	if m.Credit != 0 {
		n++
	}
	if m.Timeout != 0 {
		n++
	}
	b = appendCID(appendHead(b, n, KindStart), m.CID)
	b = wire.AppendStr(wire.AppendStr(b, keyFunction), m.Function)
	b = wire.AppendStr(wire.AppendStr(b, keyFuncKind), m.FuncKind.String())
	b = wire.AppendRaw(wire.AppendStr(b, keyArgs), m.Args)
	if m.Credit != 0 {
		b = wire.AppendUint(wire.AppendStr(b, keyCredit), uint64(m.Credit))
	}
	if m.Timeout != 0 {
		b = wire.AppendInt(wire.AppendStr(b, keyTimeout), int64(m.Timeout))
	}
	return b
}

func (m *StartAck) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindStartAck), m.CID)
	return wire.AppendStr(wire.AppendStr(b, keyFuncKind), m.FuncKind.String())
}

func (m *Started) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 4, KindStarted), m.CID)
	b = wire.AppendRaw(wire.AppendStr(b, keyValue), m.Value)
	return wire.AppendUint(wire.AppendStr(b, keyCredit), uint64(m.Credit))
}

func (m *Yield) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindYield), m.CID)
	return wire.AppendRaw(wire.AppendStr(b, keyValue), m.Value)
}

func (m *Stop) appendFields(b []byte) []byte {
	return appendCID(appendHead(b, 2, KindStop), m.CID)
}

func (m *Return) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindReturn), m.CID)
	return wire.AppendRaw(wire.AppendStr(b, keyValue), m.Value)
}

func (m *Error) appendFields(b []byte) []byte {
	if m.CID == 0 {
		b = appendHead(b, 2, KindError)
	} else {
		b = appendCID(appendHead(b, 3, KindError), m.CID)
	}
	err := m.Err
	if err == nil {
		err = &protocol.RemoteError{Code: protocol.CodeProtocol, Message: "error message without an error"}
	}
	return appendRemoteError(wire.AppendStr(b, keyErr), err)
}

func (m *Credit) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindCredit), m.CID)
	return wire.AppendUint(wire.AppendStr(b, keyItems), uint64(m.Items))
}

// MaxErrorDepth bounds how deep a protocol.RemoteError's children nest on the wire:
// a sender leaves out children below it, a receiver refuses a message that
// goes deeper.
const MaxErrorDepth = 8

func appendRemoteError(b []byte, e *protocol.RemoteError) []byte {
	return appendRemoteErrorAt(b, e, 1)
}

func appendRemoteErrorAt(b []byte, e *protocol.RemoteError, depth int) []byte {
	n := 4
	if e.Stack != "" {
		n++
	}
	if len(e.Relay) > 0 {
		n++
	}
	if !e.Canceller.IsZero() {
		n++
	}
	if e.Name != "" {
		n++
	}
	if len(e.Data) > 0 {
		n++
	}
	children := e.Children
	if depth >= MaxErrorDepth {
		children = nil
	}
	if len(children) > 0 {
		n++
	}
	b = wire.AppendMapLen(b, n)
	b = wire.AppendStr(wire.AppendStr(b, "code"), string(e.Code))
	b = wire.AppendStr(wire.AppendStr(b, "type"), e.Type)
	b = wire.AppendStr(wire.AppendStr(b, "msg"), e.Message)
	if e.Stack != "" {
		b = wire.AppendStr(wire.AppendStr(b, "stack"), e.Stack)
	}
	b = appendActor(wire.AppendStr(b, "src"), e.Source)
	if len(e.Relay) > 0 {
		b = wire.AppendArrayLen(wire.AppendStr(b, "relay"), len(e.Relay))
		for _, a := range e.Relay {
			b = appendActor(b, a)
		}
	}
	if !e.Canceller.IsZero() {
		b = appendActor(wire.AppendStr(b, "canceller"), e.Canceller)
	}
	if e.Name != "" {
		b = wire.AppendStr(wire.AppendStr(b, "name"), e.Name)
	}
	if len(e.Data) > 0 {
		b = wire.AppendRaw(wire.AppendStr(b, "data"), e.Data)
	}
	if len(children) > 0 {
		b = wire.AppendArrayLen(wire.AppendStr(b, "children"), len(children))
		for _, c := range children {
			b = appendRemoteErrorAt(b, c, depth+1)
		}
	}
	return b
}

// fields gathers the entries of a message map before they are checked
// against its kind, so that entries may come in any order.
type fields struct {
	kind      Kind
	has       uint32 // keyBit of each field seen
	cid       uint64
	version   protocol.Version
	actor     protocol.ActorID
	pid       int64
	initiator bool
	function  string
	funcKind  protocol.FuncKind
	args      protocol.Raw
	credit    uint32
	timeout   time.Duration
	value     protocol.Raw
	err       *protocol.RemoteError
	items     uint32
	spec      protocol.Raw
	names     *Decoder // interns function names
}

// DecodeMessage decodes one message body (a frame without its length
// prefix). protocol.Raw payloads in the result share memory with body. Any input
// gives either a message or a *MalformedError; unknown fields are ignored
// so that minor versions can add them.
func DecodeMessage(body []byte) (Message, error) {
	return new(Decoder).Decode(body)
}

// A Decoder decodes message bodies as DecodeMessage does, into messages of
// its own that it reuses: a reader that routes each message before it
// decodes the next allocates nothing per message. The message Decode
// returns is valid until the next call; its protocol.Raw payloads and its error
// share memory with body or are allocated afresh, and may be kept.
type Decoder struct {
	start   Start
	ack     StartAck
	started Started
	yield   Yield
	stop    Stop
	ret     Return
	err     Error
	credit  Credit
	names   map[string]string // function names seen, so that each is allocated once
}

// The Yields and Returns this package encodes begin with these bytes: the
// commonest messages, decoded without reading each key.
var (
	yieldHead  = wire.AppendStr(appendHead(nil, 3, KindYield), keyCID)
	returnHead = wire.AppendStr(appendHead(nil, 3, KindReturn), keyCID)
	valueKey   = wire.AppendStr(nil, keyValue)
)

// quick decodes a Yield or a Return laid out as AppendMessage lays them
// out, or returns nil for the general decoder to take (any other layout,
// and anything malformed, which it then explains).
func (d *Decoder) quick(body []byte) Message {
	var yield bool
	switch {
	case bytes.HasPrefix(body, yieldHead):
		yield = true
	case bytes.HasPrefix(body, returnHead):
	default:
		return nil
	}
	r := &wire.Reader{Buf: body, Off: len(yieldHead)}
	if !yield {
		r.Off = len(returnHead)
	}
	cid, err := r.Uint()
	if err != nil || cid == 0 || !bytes.HasPrefix(body[r.Off:], valueKey) {
		return nil
	}
	r.Off += len(valueKey)
	v, err := r.Raw()
	if err != nil || r.Off != len(body) {
		return nil
	}
	if yield {
		d.yield = Yield{CID: cid, Value: v}
		return &d.yield
	}
	d.ret = Return{CID: cid, Value: v}
	return &d.ret
}

// maxNames bounds the function names a Decoder keeps: a peer that calls
// ever new names costs an allocation per Start past it, not memory.
const maxNames = 256

// Decode decodes one message body; see DecodeMessage.
func (d *Decoder) Decode(body []byte) (Message, error) {
	if m := d.quick(body); m != nil {
		return m, nil
	}
	return d.decode(body)
}

// decode is Decode without the quick path.
func (d *Decoder) decode(body []byte) (Message, error) {
	r := &wire.Reader{Buf: body}
	f := fields{names: d}
	if err := f.decode(r); err != nil {
		return nil, malformed(err)
	}
	if r.Off != len(body) {
		return nil, malformed(r.Errorf("%d bytes after the end of the message", len(body)-r.Off))
	}
	return f.message(d)
}

// malformed turns a msgpack error into the *MalformedError this package
// reports; other errors pass through.
func malformed(err error) error {
	if we, ok := err.(*wire.Error); ok {
		return &MalformedError{Offset: we.Offset, Reason: we.Reason}
	}
	return err
}

// name returns the function name b, allocated once per name.
func (d *Decoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxNames {
		d.names[s] = s
	}
	return s
}

// Bits of fields.has, one for each known field.
const (
	bitKind uint32 = 1 << iota
	bitCID
	bitVersion
	bitActor
	bitPID
	bitInitiator
	bitFunction
	bitFuncKind
	bitArgs
	bitCredit
	bitTimeout
	bitValue
	bitErr
	bitItems
	bitSpec
)

// keyBit returns the bit of a known field name, or 0 for an unknown one.
func keyBit[S string | []byte](key S) uint32 {
	switch string(key) {
	case keyKind:
		return bitKind
	case keyCID:
		return bitCID
	case keyVersion:
		return bitVersion
	case keyActor:
		return bitActor
	case keyPID:
		return bitPID
	case keyInitiator:
		return bitInitiator
	case keyFunction:
		return bitFunction
	case keyFuncKind:
		return bitFuncKind
	case keyArgs:
		return bitArgs
	case keyCredit:
		return bitCredit
	case keyTimeout:
		return bitTimeout
	case keyValue:
		return bitValue
	case keyErr:
		return bitErr
	case keyItems:
		return bitItems
	case keySpec:
		return bitSpec
	}
	return 0
}

func (f *fields) seen(key string) bool { return f.has&keyBit(key) != 0 }

func (f *fields) decode(r *wire.Reader) error {
	n, err := r.MapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := malformed(f.decodeEntry(r)); err != nil {
			if me, ok := err.(*MalformedError); ok {
				// What was decoded so far lets the receiver fail just the
				// call the message belongs to.
				me.Kind, me.CID = f.kind, f.cid
			}
			return err
		}
	}
	if !f.seen(keyKind) {
		return &MalformedError{Field: keyKind, Reason: "message has no kind"}
	}
	return nil
}

// decodeEntry decodes one key and its value.
func (f *fields) decodeEntry(r *wire.Reader) error {
	keyStart := r.Off
	key, err := r.StrBytes()
	if err != nil {
		return err
	}
	bit := keyBit(key)
	if f.has&bit != 0 {
		r.Off = keyStart
		return r.Errorf("field %q appears twice", key)
	}
	f.has |= bit
	err = malformed(f.decodeField(r, bit))
	if me, ok := err.(*MalformedError); ok && me.Field == "" {
		me.Field = string(key)
	}
	return err
}

func (f *fields) decodeField(r *wire.Reader, bit uint32) error {
	var err error
	switch bit {
	case bitKind:
		var s []byte
		if s, err = r.StrBytes(); err == nil {
			var ok bool
			if f.kind, ok = parseKind(s); !ok {
				return &UnknownKindError{Kind: string(s)}
			}
		}
	case bitCID:
		f.cid, err = r.Uint()
	case bitVersion:
		f.version, err = decodeVersion(r)
	case bitActor:
		f.actor, err = decodeActor(r)
	case bitPID:
		f.pid, err = r.Int()
	case bitInitiator:
		f.initiator, err = r.Bool()
	case bitFunction:
		var b []byte
		if b, err = r.StrBytes(); err == nil {
			f.function = f.names.name(b)
		}
	case bitFuncKind:
		var s []byte
		if s, err = r.StrBytes(); err == nil {
			var ok bool
			if f.funcKind, ok = protocol.ParseFuncKind(string(s)); !ok {
				return r.Errorf("unknown function kind %q", s)
			}
		}
	case bitArgs:
		f.args, err = r.Raw()
	case bitCredit:
		f.credit, err = decodeUint32(r)
	case bitTimeout:
		var ns int64
		ns, err = r.Int()
		if err == nil && ns < 0 {
			return r.Errorf("negative timeout %d", ns)
		}
		f.timeout = time.Duration(ns)
	case bitValue:
		f.value, err = r.Raw()
	case bitErr:
		f.err, err = decodeRemoteError(r)
	case bitItems:
		f.items, err = decodeUint32(r)
	case bitSpec:
		start := r.Off
		f.spec, err = r.Raw()
		switch {
		case err != nil:
		case f.spec[0] == 0xc0:
			f.spec = nil // nil: no spec
		case wire.TypeName(f.spec[0]) != "map":
			r.Off = start
			return r.Errorf("spec is a %s, not a map", wire.TypeName(f.spec[0]))
		}
	default:
		err = r.Skip()
	}
	return err
}

func decodeUint32(r *wire.Reader) (uint32, error) {
	v, err := r.Uint()
	if err == nil && v > 1<<32-1 {
		return 0, r.Errorf("%d does not fit in 32 bits", v)
	}
	return uint32(v), err
}

func decodeVersion(r *wire.Reader) (protocol.Version, error) {
	n, err := r.ArrayLen()
	if err != nil {
		return protocol.Version{}, err
	}
	if n != 2 {
		return protocol.Version{}, r.Errorf("version has %d elements, want [major, minor]", n)
	}
	var parts [2]uint16
	for i := range parts {
		v, err := r.Uint()
		if err != nil {
			return protocol.Version{}, err
		}
		if v > 1<<16-1 {
			return protocol.Version{}, r.Errorf("version number %d does not fit in 16 bits", v)
		}
		parts[i] = uint16(v)
	}
	return protocol.Version{Major: parts[0], Minor: parts[1]}, nil
}

func decodeActor(r *wire.Reader) (protocol.ActorID, error) {
	var a protocol.ActorID
	if r.IsNil() {
		r.Off++
		return a, nil
	}
	n, err := r.MapLen()
	if err != nil {
		return a, err
	}
	for i := 0; i < n; i++ {
		key, err := r.StrBytes()
		if err != nil {
			return a, err
		}
		switch string(key) {
		case "name":
			a.Name, err = r.Str()
		case "uuid":
			a.UUID, err = r.Str()
		default:
			err = r.Skip()
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

func decodeRemoteError(r *wire.Reader) (*protocol.RemoteError, error) {
	return decodeRemoteErrorAt(r, 1)
}

func decodeRemoteErrorAt(r *wire.Reader, depth int) (*protocol.RemoteError, error) {
	if depth > MaxErrorDepth {
		return nil, r.Errorf("error children nested deeper than %d", MaxErrorDepth)
	}
	n, err := r.MapLen()
	if err != nil {
		return nil, err
	}
	e := &protocol.RemoteError{}
	for i := 0; i < n; i++ {
		key, err := r.StrBytes()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "code":
			var s string
			s, err = r.Str()
			e.Code = protocol.ErrorCode(s)
		case "type":
			e.Type, err = r.Str()
		case "msg":
			e.Message, err = r.Str()
		case "stack":
			e.Stack, err = r.Str()
		case "src":
			e.Source, err = decodeActor(r)
		case "canceller":
			e.Canceller, err = decodeActor(r)
		case "name":
			e.Name, err = r.Str()
		case "data":
			var raw []byte
			if raw, err = r.Raw(); err == nil {
				e.Data = protocol.Raw(raw)
			}
		case "children":
			var k int
			if k, err = r.ArrayLen(); err == nil {
				e.Children = make([]*protocol.RemoteError, 0, min(k, 16))
				for j := 0; j < k && err == nil; j++ {
					var c *protocol.RemoteError
					c, err = decodeRemoteErrorAt(r, depth+1)
					e.Children = append(e.Children, c)
				}
			}
		case "relay":
			var k int
			if k, err = r.ArrayLen(); err == nil {
				e.Relay = make([]protocol.ActorID, 0, min(k, 16))
				for j := 0; j < k && err == nil; j++ {
					var a protocol.ActorID
					a, err = decodeActor(r)
					e.Relay = append(e.Relay, a)
				}
			}
		default:
			err = r.Skip()
		}
		if err != nil {
			return nil, err
		}
	}
	if len(e.Relay) == 0 {
		// An empty relay is encoded by leaving it out, which decodes as nil:
		// decode it as nil too, so that decoding is the inverse of encoding.
		e.Relay = nil
	}
	if len(e.Children) == 0 {
		e.Children = nil
	}
	return e, nil
}

// require reports the first of keys the message lacks.
func (f *fields) require(keys ...string) error {
	for _, k := range keys {
		if !f.seen(k) {
			return &MalformedError{Kind: f.kind, Field: k, Reason: "required field is missing"}
		}
	}
	if f.seen(keyCID) && f.cid == 0 && f.kind != KindError {
		return &MalformedError{Kind: f.kind, Field: keyCID, Reason: "call id 0 is reserved"}
	}
	return nil
}

// message builds the message the fields make in d's own messages (a Hello
// is always new: it comes once).
func (f *fields) message(d *Decoder) (Message, error) {
	var err error
	switch f.kind {
	case KindHello:
		if err = f.require(keyVersion, keyActor, keyPID); err == nil {
			return &Hello{Version: f.version, Actor: f.actor, PID: f.pid, Initiator: f.initiator, Spec: f.spec}, nil
		}
	case KindStart:
		if err = f.require(keyCID, keyFunction, keyFuncKind); err == nil {
			d.start = Start{CID: f.cid, Function: f.function,
				FuncKind: f.funcKind, Args: f.args, Credit: f.credit, Timeout: f.timeout}
			return &d.start, nil
		}
	case KindStartAck:
		if err = f.require(keyCID, keyFuncKind); err == nil {
			d.ack = StartAck{CID: f.cid, FuncKind: f.funcKind}
			return &d.ack, nil
		}
	case KindStarted:
		if err = f.require(keyCID); err == nil {
			d.started = Started{CID: f.cid, Value: f.value, Credit: f.credit}
			return &d.started, nil
		}
	case KindYield:
		if err = f.require(keyCID); err == nil {
			d.yield = Yield{CID: f.cid, Value: f.value}
			return &d.yield, nil
		}
	case KindStop:
		if err = f.require(keyCID); err == nil {
			d.stop = Stop{CID: f.cid}
			return &d.stop, nil
		}
	case KindReturn:
		if err = f.require(keyCID); err == nil {
			d.ret = Return{CID: f.cid, Value: f.value}
			return &d.ret, nil
		}
	case KindError:
		if err = f.require(keyErr); err == nil {
			d.err = Error{CID: f.cid, Err: f.err}
			return &d.err, nil
		}
	case KindCredit:
		if err = f.require(keyCID, keyItems); err == nil {
			d.credit = Credit{CID: f.cid, Items: f.items}
			return &d.credit, nil
		}
	}
	return nil, err
}
