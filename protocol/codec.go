package protocol

import (
	"bytes"
	"time"
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
)

// AppendMessage appends the msgpack encoding of m to b.
func AppendMessage(b []byte, m Message) []byte { return m.appendFields(b) }

func appendHead(b []byte, fields int, k Kind) []byte {
	b = appendMapLen(b, fields)
	b = appendStr(b, keyKind)
	return appendStr(b, kindNames[k])
}

func appendCID(b []byte, cid uint64) []byte {
	return appendUint(appendStr(b, keyCID), cid)
}

func appendActor(b []byte, a ActorID) []byte {
	b = appendMapLen(b, 2)
	b = appendStr(appendStr(b, "name"), a.Name)
	return appendStr(appendStr(b, "uuid"), a.UUID)
}

func (m *Hello) appendFields(b []byte) []byte {
	b = appendHead(b, 5, KindHello)
	b = appendStr(b, keyVersion)
	b = appendArrayLen(b, 2)
	b = appendUint(appendUint(b, uint64(m.Version.Major)), uint64(m.Version.Minor))
	b = appendActor(appendStr(b, keyActor), m.Actor)
	b = appendInt(appendStr(b, keyPID), m.PID)
	return appendBool(appendStr(b, keyInitiator), m.Initiator)
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
	b = appendStr(appendStr(b, keyFunction), m.Function)
	b = appendStr(appendStr(b, keyFuncKind), m.FuncKind.String())
	b = appendRaw(appendStr(b, keyArgs), m.Args)
	if m.Credit != 0 {
		b = appendUint(appendStr(b, keyCredit), uint64(m.Credit))
	}
	if m.Timeout != 0 {
		b = appendInt(appendStr(b, keyTimeout), int64(m.Timeout))
	}
	return b
}

func (m *StartAck) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindStartAck), m.CID)
	return appendStr(appendStr(b, keyFuncKind), m.FuncKind.String())
}

func (m *Started) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 4, KindStarted), m.CID)
	b = appendRaw(appendStr(b, keyValue), m.Value)
	return appendUint(appendStr(b, keyCredit), uint64(m.Credit))
}

func (m *Yield) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindYield), m.CID)
	return appendRaw(appendStr(b, keyValue), m.Value)
}

func (m *Stop) appendFields(b []byte) []byte {
	return appendCID(appendHead(b, 2, KindStop), m.CID)
}

func (m *Return) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindReturn), m.CID)
	return appendRaw(appendStr(b, keyValue), m.Value)
}

func (m *Error) appendFields(b []byte) []byte {
	if m.CID == 0 {
		b = appendHead(b, 2, KindError)
	} else {
		b = appendCID(appendHead(b, 3, KindError), m.CID)
	}
	err := m.Err
	if err == nil {
		err = &RemoteError{Code: CodeProtocol, Message: "error message without an error"}
	}
	return appendRemoteError(appendStr(b, keyErr), err)
}

func (m *Credit) appendFields(b []byte) []byte {
	b = appendCID(appendHead(b, 3, KindCredit), m.CID)
	return appendUint(appendStr(b, keyItems), uint64(m.Items))
}

// MaxErrorDepth bounds how deep a RemoteError's children nest on the wire:
// a sender leaves out children below it, a receiver refuses a message that
// goes deeper.
const MaxErrorDepth = 8

func appendRemoteError(b []byte, e *RemoteError) []byte {
	return appendRemoteErrorAt(b, e, 1)
}

func appendRemoteErrorAt(b []byte, e *RemoteError, depth int) []byte {
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
	b = appendMapLen(b, n)
	b = appendStr(appendStr(b, "code"), string(e.Code))
	b = appendStr(appendStr(b, "type"), e.Type)
	b = appendStr(appendStr(b, "msg"), e.Message)
	if e.Stack != "" {
		b = appendStr(appendStr(b, "stack"), e.Stack)
	}
	b = appendActor(appendStr(b, "src"), e.Source)
	if len(e.Relay) > 0 {
		b = appendArrayLen(appendStr(b, "relay"), len(e.Relay))
		for _, a := range e.Relay {
			b = appendActor(b, a)
		}
	}
	if !e.Canceller.IsZero() {
		b = appendActor(appendStr(b, "canceller"), e.Canceller)
	}
	if e.Name != "" {
		b = appendStr(appendStr(b, "name"), e.Name)
	}
	if len(e.Data) > 0 {
		b = appendRaw(appendStr(b, "data"), e.Data)
	}
	if len(children) > 0 {
		b = appendArrayLen(appendStr(b, "children"), len(children))
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
	version   Version
	actor     ActorID
	pid       int64
	initiator bool
	function  string
	funcKind  FuncKind
	args      Raw
	credit    uint32
	timeout   time.Duration
	value     Raw
	err       *RemoteError
	items     uint32
	names     *Decoder // interns function names
}

// DecodeMessage decodes one message body (a frame without its length
// prefix). Raw payloads in the result share memory with body. Any input
// gives either a message or a *MalformedError; unknown fields are ignored
// so that minor versions can add them.
func DecodeMessage(body []byte) (Message, error) {
	return new(Decoder).Decode(body)
}

// A Decoder decodes message bodies as DecodeMessage does, into messages of
// its own that it reuses: a reader that routes each message before it
// decodes the next allocates nothing per message. The message Decode
// returns is valid until the next call; its Raw payloads and its error
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
	yieldHead  = appendStr(appendHead(nil, 3, KindYield), keyCID)
	returnHead = appendStr(appendHead(nil, 3, KindReturn), keyCID)
	valueKey   = appendStr(nil, keyValue)
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
	r := &reader{buf: body, off: len(yieldHead)}
	if !yield {
		r.off = len(returnHead)
	}
	cid, err := r.uint()
	if err != nil || cid == 0 || !bytes.HasPrefix(body[r.off:], valueKey) {
		return nil
	}
	r.off += len(valueKey)
	v, err := r.raw()
	if err != nil || r.off != len(body) {
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
	r := &reader{buf: body}
	f := fields{names: d}
	if err := f.decode(r); err != nil {
		return nil, err
	}
	if r.off != len(body) {
		return nil, r.errorf("%d bytes after the end of the message", len(body)-r.off)
	}
	return f.message(d)
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
	}
	return 0
}

func (f *fields) seen(key string) bool { return f.has&keyBit(key) != 0 }

func (f *fields) decode(r *reader) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := f.decodeEntry(r); err != nil {
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
func (f *fields) decodeEntry(r *reader) error {
	keyStart := r.off
	key, err := r.strBytes()
	if err != nil {
		return err
	}
	bit := keyBit(key)
	if f.has&bit != 0 {
		r.off = keyStart
		return r.errorf("field %q appears twice", key)
	}
	f.has |= bit
	err = f.decodeField(r, bit)
	if me, ok := err.(*MalformedError); ok && me.Field == "" {
		me.Field = string(key)
	}
	return err
}

func (f *fields) decodeField(r *reader, bit uint32) error {
	var err error
	switch bit {
	case bitKind:
		var s []byte
		if s, err = r.strBytes(); err == nil {
			var ok bool
			if f.kind, ok = parseKind(s); !ok {
				return &UnknownKindError{Kind: string(s)}
			}
		}
	case bitCID:
		f.cid, err = r.uint()
	case bitVersion:
		f.version, err = decodeVersion(r)
	case bitActor:
		f.actor, err = decodeActor(r)
	case bitPID:
		f.pid, err = r.int()
	case bitInitiator:
		f.initiator, err = r.bool()
	case bitFunction:
		var b []byte
		if b, err = r.strBytes(); err == nil {
			f.function = f.names.name(b)
		}
	case bitFuncKind:
		var s []byte
		if s, err = r.strBytes(); err == nil {
			var ok bool
			if f.funcKind, ok = ParseFuncKind(string(s)); !ok {
				return r.errorf("unknown function kind %q", s)
			}
		}
	case bitArgs:
		f.args, err = r.raw()
	case bitCredit:
		f.credit, err = decodeUint32(r)
	case bitTimeout:
		var ns int64
		ns, err = r.int()
		if err == nil && ns < 0 {
			return r.errorf("negative timeout %d", ns)
		}
		f.timeout = time.Duration(ns)
	case bitValue:
		f.value, err = r.raw()
	case bitErr:
		f.err, err = decodeRemoteError(r)
	case bitItems:
		f.items, err = decodeUint32(r)
	default:
		err = r.skip()
	}
	return err
}

func decodeUint32(r *reader) (uint32, error) {
	v, err := r.uint()
	if err == nil && v > 1<<32-1 {
		return 0, r.errorf("%d does not fit in 32 bits", v)
	}
	return uint32(v), err
}

func decodeVersion(r *reader) (Version, error) {
	n, err := r.arrayLen()
	if err != nil {
		return Version{}, err
	}
	if n != 2 {
		return Version{}, r.errorf("version has %d elements, want [major, minor]", n)
	}
	var parts [2]uint16
	for i := range parts {
		v, err := r.uint()
		if err != nil {
			return Version{}, err
		}
		if v > 1<<16-1 {
			return Version{}, r.errorf("version number %d does not fit in 16 bits", v)
		}
		parts[i] = uint16(v)
	}
	return Version{Major: parts[0], Minor: parts[1]}, nil
}

func decodeActor(r *reader) (ActorID, error) {
	var a ActorID
	if r.isNil() {
		r.off++
		return a, nil
	}
	n, err := r.mapLen()
	if err != nil {
		return a, err
	}
	for i := 0; i < n; i++ {
		key, err := r.strBytes()
		if err != nil {
			return a, err
		}
		switch string(key) {
		case "name":
			a.Name, err = r.str()
		case "uuid":
			a.UUID, err = r.str()
		default:
			err = r.skip()
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

func decodeRemoteError(r *reader) (*RemoteError, error) {
	return decodeRemoteErrorAt(r, 1)
}

func decodeRemoteErrorAt(r *reader, depth int) (*RemoteError, error) {
	if depth > MaxErrorDepth {
		return nil, r.errorf("error children nested deeper than %d", MaxErrorDepth)
	}
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	e := &RemoteError{}
	for i := 0; i < n; i++ {
		key, err := r.strBytes()
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "code":
			var s string
			s, err = r.str()
			e.Code = ErrorCode(s)
		case "type":
			e.Type, err = r.str()
		case "msg":
			e.Message, err = r.str()
		case "stack":
			e.Stack, err = r.str()
		case "src":
			e.Source, err = decodeActor(r)
		case "canceller":
			e.Canceller, err = decodeActor(r)
		case "name":
			e.Name, err = r.str()
		case "data":
			var raw []byte
			if raw, err = r.raw(); err == nil {
				e.Data = Raw(raw)
			}
		case "children":
			var k int
			if k, err = r.arrayLen(); err == nil {
				e.Children = make([]*RemoteError, 0, min(k, 16))
				for j := 0; j < k && err == nil; j++ {
					var c *RemoteError
					c, err = decodeRemoteErrorAt(r, depth+1)
					e.Children = append(e.Children, c)
				}
			}
		case "relay":
			var k int
			if k, err = r.arrayLen(); err == nil {
				e.Relay = make([]ActorID, 0, min(k, 16))
				for j := 0; j < k && err == nil; j++ {
					var a ActorID
					a, err = decodeActor(r)
					e.Relay = append(e.Relay, a)
				}
			}
		default:
			err = r.skip()
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
			return &Hello{Version: f.version, Actor: f.actor, PID: f.pid, Initiator: f.initiator}, nil
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
