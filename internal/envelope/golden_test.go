package envelope

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/arbor-go/arbor/protocol"
)

// The golden vectors pin the bytes of every message kind so that a peer in
// another language can check itself. Each vector is a pair of files in
// goldenDir: NAME.hex holds one frame (length prefix included) as lowercase
// hex, with '#' comment lines, and NAME.json describes the decoded message
// with wire field names, raw msgpack payloads shown as hex strings.
//
// TestGolden builds the expected message from the JSON, independently of the
// encoder, so a change to the encoder cannot silently rewrite what the
// vectors promise. Regenerate after a deliberate change with
//
//	go test ./internal/envelope -run TestGolden -update

var update = flag.Bool("update", false, "rewrite the golden vectors in "+goldenDir)

const goldenDir = "../../testdata/protocol"

var (
	rootActor   = protocol.ActorID{Name: "root", UUID: "0f8e6a52-3c1d-4b7a-9e21-5d4c3b2a1908"}
	poolActor   = protocol.ActorID{Name: "root.pool", UUID: "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}
	workerActor = protocol.ActorID{Name: "root.pool.worker-1", UUID: "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f"}
)

// goldenVectors is what -update writes. Payloads are spelled out as msgpack
// bytes so that the vectors do not depend on any msgpack library.
var goldenVectors = []struct {
	name, note string
	msg        Message
}{
	{"hello-initiator", "the side that spawned or dialed: it numbers its calls 1, 3, 5, ...",
		&Hello{Version: protocol.Version{Major: 1, Minor: 0}, Actor: rootActor, PID: 4242, Initiator: true}},
	{"hello-responder", "the spawned or dialed side: it numbers its calls 2, 4, 6, ...",
		&Hello{Version: protocol.Version{Major: 1, Minor: 0}, Actor: workerActor, PID: 70000, Initiator: false}},
	{"hello-spec", "(1.3) the hello of a parent whose child was started with ARBOR_SPEC=handshake (through a launcher): spec is the child's spec, the keys of ARBOR_SPEC as a msgpack map, with a heartbeat of 2000 ms",
		&Hello{Version: protocol.Version{Major: 1, Minor: 3}, Actor: poolActor, PID: 4243, Initiator: true, Spec: helloSpec}},
	{"start-func", "unary call; args is the msgpack array [1, 2]",
		&Start{CID: 1, Function: "math.add", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x92, 0x01, 0x02}}},
	{"start-stream", "stream call with initial credit 128 and 1.5 s left before the deadline; args is the string \"/tmp\"",
		&Start{CID: 3, Function: "files.walk", FuncKind: protocol.FuncStream, Args: protocol.Raw{0xa4, '/', 't', 'm', 'p'},
			Credit: 128, Timeout: 1500 * time.Millisecond}},
	{"start-context", "context call made by the responder (even call id); args is the map {\"room\": \"ops\"}",
		&Start{CID: 2, Function: "chat.session", FuncKind: protocol.FuncContext,
			Args: protocol.Raw{0x81, 0xa4, 'r', 'o', 'o', 'm', 0xa3, 'o', 'p', 's'}, Credit: 128}},
	{"start-cancel", "cancel call 3: a unary call of arbor.cancel with args {\"cid\": 3}",
		&Start{CID: 5, Function: "arbor.cancel", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x81, 0xa3, 'c', 'i', 'd', 0x03}}},
	{"start-cancel-by", "(1.2) cancel call 3 on behalf of root, who cancelled the caller's own call: args {\"cid\": 3, \"by\": {\"name\": \"root\", \"uuid\": ...}}",
		&Start{CID: 9, Function: "arbor.cancel", FuncKind: protocol.FuncUnary, Args: cancelByArgs}},
	{"start-deepest", "args at the nesting limit (§2): 63 arrays around an empty one are 64 levels, accepted",
		&Start{CID: 11, Function: "math.sum", FuncKind: protocol.FuncUnary, Args: protocol.Raw(append(bytes.Repeat([]byte{0x91}, 63), 0x90))}},
	{"start-register", "(1.4) a parent registers its child in the tree (§13): args is an Entry, {name, aliases, uuid, parent, pid, host, seq}",
		&Start{CID: 13, Function: "arbor.register", FuncKind: protocol.FuncUnary, Args: registerEntry}},
	{"start-relay", "(1.5) a relay through the tree (§13.3) passing its second hop: root opens arbor.relay toward root.pool.worker-1 on its channel to root.pool, having received it from root.other; args {to, name, hops}",
		&Start{CID: 19, Function: "arbor.relay", FuncKind: protocol.FuncContext, Args: relayArgs, Credit: 1024}},
	{"started-relay", "(1.5) root.pool.worker-1, the relay's end, opens it: the started value is {hops}, every actor between the two ends, the dialer's side first",
		&Started{CID: 19, Value: relayStartedValue, Credit: 1024}},
	{"yield-relay", "(1.5) bytes through relay 19: a yield's value is msgpack bin, here the 4-byte length prefix of the frame the dialer sends first",
		&Yield{CID: 19, Value: protocol.Raw{0xc4, 0x04, 0x00, 0x00, 0x00, 0x3c}}},
	{"start-schema", "ask for the peer's function schemas; args is nil",
		&Start{CID: 7, Function: "arbor.schema", FuncKind: protocol.FuncUnary}},
	{"startack-func", "the callee accepted unary call 1",
		&StartAck{CID: 1, FuncKind: protocol.FuncUnary}},
	{"startack-context", "the callee accepted context call 2",
		&StartAck{CID: 2, FuncKind: protocol.FuncContext}},
	{"started", "first value of context call 2 (the string \"welcome\") and the callee's initial credit 128 for the caller's yields",
		&Started{CID: 2, Value: protocol.Raw{0xa7, 'w', 'e', 'l', 'c', 'o', 'm', 'e'}, Credit: 128}},
	{"yield", "one item of stream 3: the string \"/tmp/a.txt\"",
		&Yield{CID: 3, Value: protocol.Raw{0xaa, '/', 't', 'm', 'p', '/', 'a', '.', 't', 'x', 't'}}},
	{"yield-large-cid", "a call id above 2^32 takes the 8-byte unsigned form; the value is 42",
		&Yield{CID: 1<<33 + 1, Value: protocol.Raw{0x2a}}},
	{"stop", "the sender ends its direction of stream 3",
		&Stop{CID: 3}},
	{"return", "unary call 1 returns 3",
		&Return{CID: 1, Value: protocol.Raw{0x03}}},
	{"return-nil", "the answer to arbor.cancel (call 5): nil",
		&Return{CID: 5}},
	{"return-schema", "the answer to arbor.schema (call 7): files.walk, a stream of strings taking a string, and math.add, a func taking [2]int and returning int",
		&Return{CID: 7, Value: schemaValue}},
	{"return-find", "(1.4) the answer to arbor.find (call 14): the Entry of root.pool.worker-1, numbered 7 by the root",
		&Return{CID: 14, Value: foundEntry}},
	{"error-not-found", "(1.4) arbor.find (call 16) of a name no living actor has: the sentinel arbor.not_found",
		&Error{CID: 16, Err: &protocol.RemoteError{Type: "*errors.errorString", Message: `spawn: no actor of that name in the tree`,
			Source: rootActor, Name: "arbor.not_found"}}},
	{"credit", "the consumer of stream 3 grants 64 more yields",
		&Credit{CID: 3, Items: 64}},
	{"error-application", "an error returned by the function: code is the empty string",
		&Error{CID: 1, Err: &protocol.RemoteError{Type: "*fs.PathError", Message: "open /etc/shadow: permission denied",
			Source: workerActor}}},
	{"error-cancelled", "call 3 cancelled by root, raised in worker-1 and relayed through root.pool",
		&Error{CID: 3, Err: &protocol.RemoteError{Code: protocol.CodeCancelled, Type: "arbor.cancelled", Message: "context canceled",
			Stack:  "goroutine 21 [running]:\nmain.walk({0xc0000a2000, 0x4})\n\t/src/walk.go:31 +0x1c5",
			Source: workerActor, Relay: []protocol.ActorID{poolActor}, Canceller: rootActor}}},
	{"error-panic", "the function panicked; stack is the panicking goroutine's",
		&Error{CID: 9, Err: &protocol.RemoteError{Code: protocol.CodePanic, Type: "panic",
			Message: "runtime error: index out of range [3] with length 3",
			Stack:   "goroutine 8 [running]:\nmain.pick(...)\n\t/src/pick.go:12",
			Source:  workerActor}}},
	{"error-unknown-function", "answer to a Start of a function the callee does not serve",
		&Error{CID: 11, Err: &protocol.RemoteError{Code: protocol.CodeUnknownFunction, Type: "arbor.unknown_function", Message: `actor root.pool.worker-1 serves no function "math.sub"`,
			Source: workerActor}}},
	{"error-registered", "an error of a type both sides registered as \"disk.Full\": data holds its fields, the map {\"Disk\": \"sda1\"}",
		&Error{CID: 13, Err: &protocol.RemoteError{Type: "*disk.FullError", Message: "disk sda1 is full", Source: workerActor,
			Name: "disk.Full", Data: protocol.Raw{0x81, 0xa4, 'D', 'i', 's', 'k', 0xa4, 's', 'd', 'a', '1'}}}},
	{"error-sentinel", "an error wrapping a registered sentinel (io.EOF): a name and no data",
		&Error{CID: 15, Err: &protocol.RemoteError{Type: "*fmt.wrapError", Message: "reading the header: EOF", Source: workerActor,
			Name: "io.EOF"}}},
	{"error-group", "a nursery in root.pool failed twice: the group keeps each child's source and relay path",
		&Error{CID: 17, Err: &protocol.RemoteError{Type: "*nursery.Error",
			Message: "nursery: 2 failures:\n\tactor root.pool.worker-1: disk sda1 is full\n\tactor root.pool.worker-2: *errors.errorString: no route to host",
			Source:  poolActor,
			Children: []*protocol.RemoteError{
				{Type: "*disk.FullError", Message: "disk sda1 is full", Source: workerActor, Relay: []protocol.ActorID{poolActor}},
				{Type: "*errors.errorString", Message: "no route to host", Source: protocol.ActorID{Name: "root.pool.worker-2", UUID: "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"}, Relay: []protocol.ActorID{poolActor}},
			}}}},
	{"error-channel", "a problem with the channel itself, not with one call: no cid (call id 0)",
		&Error{Err: &protocol.RemoteError{Code: protocol.CodeProtocol, Type: "arbor.protocol", Message: "yield for call id 9, which was never started", Source: rootActor}}},
}

// helloSpec is the spec of the hello-spec vector (PROTOCOL.md §12.7); the
// child checks it against the same keys as spec.json.
var helloSpec = mpMap("actor", mpMap("name", mpStr(workerActor.Name), "uuid", mpStr(workerActor.UUID)),
	"parent", mpMap("name", mpStr(poolActor.Name), "uuid", mpStr(poolActor.UUID)),
	"log_level", mpStr("debug"), "transport", mpStr("stdio"), "heartbeat_ms", protocol.Raw{0xcd, 0x07, 0xd0})

// registerEntry is the Entry of start-register: root.pool.worker-1, alias
// "cache", pid 70000 on node-3, its peer socket, not yet numbered (seq 0: the root numbers
// entries). spawn's TestRegistryVector checks Go encodes an Entry so.
var registerEntry = mpMap("name", mpStr(workerActor.Name), "aliases", mpArray(mpStr("cache")), "uuid", mpStr(workerActor.UUID),
	"parent", mpStr(poolActor.UUID), "pid", protocol.Raw{0xce, 0x00, 0x01, 0x11, 0x70}, "host", mpStr("node-3"),
	"addr", mpStr("/tmp/arbor-peer-1234/peer.sock"), "seq", protocol.Raw{0x00})

// foundEntry is registerEntry as the root gives it back, with seq 7.
var foundEntry = protocol.Raw(append(append([]byte(nil), registerEntry[:len(registerEntry)-1]...), 0x07))

// relayArgs is arbor.relay's args at root, toward root.pool.worker-1, from
// root.other (whose relay root is passing on): the hops so far are root's.
// spawn's TestRelayVector checks Go encodes them so.
var relayArgs = mpMap("to", mpStr(workerActor.UUID), "name", mpStr(workerActor.Name),
	"hops", mpArray(mpMap("name", mpStr(rootActor.Name), "uuid", mpStr(rootActor.UUID))))

// relayStartedValue is the relay's started value: hops root, root.pool.
var relayStartedValue = mpMap("hops", mpArray(mpMap("name", mpStr(rootActor.Name), "uuid", mpStr(rootActor.UUID)),
	mpMap("name", mpStr(poolActor.Name), "uuid", mpStr(poolActor.UUID))))

// cancelByArgs is {"cid": 3, "by": rootActor}.
var cancelByArgs = mpMap("cid", protocol.Raw{0x03}, "by", mpMap("name", mpStr(rootActor.Name), "uuid", mpStr(rootActor.UUID)))

// schemaValue is what Go's arbor.schema answers for math.add, a func
// taking [2]int and returning int, and files.walk, a stream of strings
// taking a string: one Schema each, sorted by name (PROTOCOL.md §9).
// ipc's TestSchemaVector checks that the runtime sends exactly this.
var schemaValue = mpArray(
	mpMap("name", mpStr("files.walk"), "kind", mpStr("stream"),
		"args", mpMap("type", mpStr("string"), "go_type", mpStr("string")),
		"yield", mpMap("type", mpStr("string"), "go_type", mpStr("string"))),
	mpMap("name", mpStr("math.add"), "kind", mpStr("func"),
		"args", mpMap("type", mpStr("array"), "go_type", mpStr("[2]int"),
			"items", mpMap("type", mpStr("integer"), "go_type", mpStr("int"))),
		"result", mpMap("type", mpStr("integer"), "go_type", mpStr("int"))),
)

// refusedVectors are frames a receiver must refuse (PROTOCOL.md §10, §11),
// with the call id its error answers: the start's own when the cid was read
// before the problem and is a new one of the sender's, 0 otherwise.
var refusedVectors = []struct {
	name, note string
	body       []byte
	cid        uint64
}{
	{"refused-too-deep", "a start whose args are 64 nested arrays holding an int: the int is level 65 (§2), past the limit of 64",
		mpMap("k", mpStr("start"), "cid", protocol.Raw{0x05}, "fn", mpStr("math.add"), "fk", mpStr("func"),
			"args", protocol.Raw(append(bytes.Repeat([]byte{0x91}, 64), 0x01))), 5},
	{"refused-duplicate-key", "a start with \"fn\" twice, after its cid: call 5 fails",
		mpMap("k", mpStr("start"), "cid", protocol.Raw{0x05}, "fn", mpStr("math.add"), "fn", mpStr("math.sub"), "fk", mpStr("func"), "args", protocol.Raw{0xc0}), 5},
	{"refused-duplicate-key-before-cid", "\"k\" twice before any cid: nothing names a call, so the channel is answered",
		mpMap("k", mpStr("start"), "k", mpStr("start"), "cid", protocol.Raw{0x05}, "fn", mpStr("math.add"), "fk", mpStr("func"), "args", protocol.Raw{0xc0}), 0},
	{"refused-cid-zero", "a yield for call id 0, which is reserved for the channel",
		mpMap("k", mpStr("yield"), "cid", protocol.Raw{0x00}, "v", protocol.Raw{0x01}), 0},
	{"refused-bad-length", "a start whose fn announces a 255-byte string and holds 8 bytes: call 5 fails",
		mpMap("k", mpStr("start"), "cid", protocol.Raw{0x05}, "fn", protocol.Raw(append([]byte{0xd9, 0xff}, "math.add"...))), 5},
	{"refused-not-a-map", "a body that is an array, not a map",
		mpArray(mpStr("start"), protocol.Raw{0x05}), 0},
	{"refused-unknown-kind", "a message of a kind this version does not know",
		mpMap("k", mpStr("launch"), "cid", protocol.Raw{0x05}), 0},
	{"refused-trailing-bytes", "a return for call 1 followed by a byte that is not part of it",
		append(mpMap("k", mpStr("return"), "cid", protocol.Raw{0x01}, "v", protocol.Raw{0x03}), 0xc0), 0},
}

// mpMap is a msgpack map of string keys and encoded values, in the order
// given (duplicates kept, for the refused vectors).
func mpMap(kv ...any) protocol.Raw {
	b := wire.AppendMapLen(nil, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		b = wire.AppendStr(b, kv[i].(string))
		b = append(b, kv[i+1].(protocol.Raw)...)
	}
	return b
}

func mpArray(elems ...protocol.Raw) protocol.Raw {
	b := []byte{0x90 | byte(len(elems))}
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func mpStr(s string) protocol.Raw { return wire.AppendStr(nil, s) }

// goldenFile is the JSON side of a vector.
type goldenFile struct {
	Kind   string       `json:"kind"`
	Note   string       `json:"note,omitempty"`
	Fields goldenFields `json:"fields"`
}

// goldenFields has one member per wire field, in the order the encoder
// writes them. Pointers tell a field that is absent from one that is zero.
type goldenFields struct {
	CID     *uint64           `json:"cid,omitempty"`
	Version *[2]uint16        `json:"ver,omitempty"`
	Actor   *protocol.ActorID `json:"actor,omitempty"`
	PID     *int64            `json:"pid,omitempty"`
	Init    *bool             `json:"init,omitempty"`
	Spec    *string           `json:"spec,omitempty"` // msgpack, as hex
	Fn      *string           `json:"fn,omitempty"`
	Fk      *string           `json:"fk,omitempty"`
	Args    *string           `json:"args,omitempty"` // msgpack, as hex
	Value   *string           `json:"v,omitempty"`    // msgpack, as hex
	Credit  *uint32           `json:"credit,omitempty"`
	Timeout *int64            `json:"timeout,omitempty"` // nanoseconds
	Err     *goldenError      `json:"err,omitempty"`
	Items   *uint32           `json:"n,omitempty"`
}

type goldenError struct {
	Code      *string            `json:"code"`
	Type      *string            `json:"type"`
	Msg       *string            `json:"msg"`
	Stack     *string            `json:"stack,omitempty"`
	Src       *protocol.ActorID  `json:"src"`
	Relay     []protocol.ActorID `json:"relay,omitempty"`
	Canceller *protocol.ActorID  `json:"canceller,omitempty"`
	Name      *string            `json:"name,omitempty"`
	Data      *string            `json:"data,omitempty"` // msgpack, as hex
	Children  []*goldenError     `json:"children,omitempty"`
}

// kindFields lists the wire fields each kind may carry.
var kindFields = map[Kind][]string{
	KindHello:    {"ver", "actor", "pid", "init", "spec"},
	KindStart:    {"cid", "fn", "fk", "args", "credit", "timeout"},
	KindStartAck: {"cid", "fk"},
	KindStarted:  {"cid", "v", "credit"},
	KindYield:    {"cid", "v"},
	KindStop:     {"cid"},
	KindReturn:   {"cid", "v"},
	KindError:    {"cid", "err"},
	KindCredit:   {"cid", "n"},
}

func TestGolden(t *testing.T) {
	if *update {
		writeGolden(t)
	}
	hexFiles, err := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	jsonFiles, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jsonFiles {
		if otherVectors[filepath.Base(j)] {
			continue
		}
		if _, err := os.Stat(strings.TrimSuffix(j, ".json") + ".hex"); err != nil {
			t.Errorf("%s has no .hex beside it", j)
		}
	}
	covered := map[Kind]bool{}
	refused := 0
	for _, h := range hexFiles {
		if otherVectors[filepath.Base(h)] {
			continue
		}
		base := strings.TrimSuffix(h, ".hex")
		t.Run(filepath.Base(base), func(t *testing.T) {
			data, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(`"kind": null`)) {
				refused++
				checkRefused(t, base, data)
				return
			}
			checkGolden(t, base, data, func(k Kind) { covered[k] = true })
		})
	}
	for k := KindHello; k <= KindCredit; k++ {
		if !covered[k] {
			t.Errorf("no golden vector for message kind %q", k)
		}
	}
	if refused < len(refusedVectors) {
		t.Errorf("%d refused vectors in %s, want %d", refused, goldenDir, len(refusedVectors))
	}
}

// checkGolden checks one vector, reporting its kind to cover as soon as the
// frame decodes, so that a broken vector is not also reported as missing.
func checkGolden(t *testing.T, base string, data []byte, cover func(Kind)) {
	frame := readHexFile(t, base+".hex")

	fr := NewFrameReader(bytes.NewReader(frame), 0)
	body, err := fr.Next()
	if err != nil {
		t.Fatalf("reading the frame: %v", err)
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the frame: %v, want io.EOF (one frame per vector)", err)
	}
	got, err := DecodeMessage(body)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	cover(got.Kind())

	var g goldenFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		t.Fatalf("%s.json: %v", base, err)
	}
	want, err := g.message()
	if err != nil {
		t.Fatalf("%s.json: %v", base, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the frame decodes to\n%#v\nbut the JSON describes\n%#v", got, want)
	}
	checkWireKeys(t, body, data)

	again, err := AppendFrame(nil, got, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, frame) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, frame)
	}
}

// readHexFile reads a vector's frame. Lines starting with '#' are comments;
// the others hold at most 64 lowercase hex digits, spaces allowed.
func readHexFile(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := parseHex(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return frame
}

func parseHex(data []byte) ([]byte, error) {
	var digits strings.Builder
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.Join(strings.Fields(line), "")
		if len(line) > 64 {
			return nil, fmt.Errorf("line %d has %d hex digits, more than 64", i+1, len(line))
		}
		if line != strings.ToLower(line) {
			return nil, fmt.Errorf("line %d: hex digits must be lowercase", i+1)
		}
		digits.WriteString(line)
	}
	return hex.DecodeString(digits.String())
}

// message builds the Go message the JSON describes, field by field.
func (g *goldenFile) message() (Message, error) {
	var kind Kind
	for k, allowed := range kindFields {
		if k.String() == g.Kind {
			kind = k
			if extra := g.Fields.present(allowed); len(extra) > 0 {
				return nil, fmt.Errorf("a %s message has no field %q", g.Kind, extra[0])
			}
		}
	}
	if kind == 0 {
		return nil, fmt.Errorf("unknown kind %q", g.Kind)
	}
	f := &g.Fields
	var missing []string
	need := func(name string, present bool) {
		if !present {
			missing = append(missing, name)
		}
	}
	var m Message
	switch kind {
	case KindHello:
		need("ver", f.Version != nil)
		need("actor", f.Actor != nil)
		need("pid", f.PID != nil)
		need("init", f.Init != nil)
		if missing == nil {
			h := &Hello{Version: protocol.Version{Major: f.Version[0], Minor: f.Version[1]}, Actor: *f.Actor, PID: *f.PID, Initiator: *f.Init}
			if f.Spec != nil {
				var err error
				if h.Spec, err = hexRaw(*f.Spec); err != nil {
					return nil, err
				}
			}
			m = h
		}
	case KindStart:
		need("cid", f.CID != nil)
		need("fn", f.Fn != nil)
		need("fk", f.Fk != nil)
		need("args", f.Args != nil)
		if missing == nil {
			s := &Start{CID: *f.CID, Function: *f.Fn}
			var err error
			if s.FuncKind, err = parseGoldenFuncKind(*f.Fk); err != nil {
				return nil, err
			}
			if s.Args, err = hexRaw(*f.Args); err != nil {
				return nil, err
			}
			if f.Credit != nil {
				s.Credit = *f.Credit
			}
			if f.Timeout != nil {
				s.Timeout = time.Duration(*f.Timeout)
			}
			m = s
		}
	case KindStartAck:
		need("cid", f.CID != nil)
		need("fk", f.Fk != nil)
		if missing == nil {
			fk, err := parseGoldenFuncKind(*f.Fk)
			if err != nil {
				return nil, err
			}
			m = &StartAck{CID: *f.CID, FuncKind: fk}
		}
	case KindStarted:
		need("cid", f.CID != nil)
		need("v", f.Value != nil)
		need("credit", f.Credit != nil)
		if missing == nil {
			v, err := hexRaw(*f.Value)
			if err != nil {
				return nil, err
			}
			m = &Started{CID: *f.CID, Value: v, Credit: *f.Credit}
		}
	case KindYield, KindReturn:
		need("cid", f.CID != nil)
		need("v", f.Value != nil)
		if missing == nil {
			v, err := hexRaw(*f.Value)
			if err != nil {
				return nil, err
			}
			if kind == KindYield {
				m = &Yield{CID: *f.CID, Value: v}
			} else {
				m = &Return{CID: *f.CID, Value: v}
			}
		}
	case KindStop:
		need("cid", f.CID != nil)
		if missing == nil {
			m = &Stop{CID: *f.CID}
		}
	case KindError:
		need("err", f.Err != nil)
		if missing == nil {
			e, err := f.Err.remoteError()
			if err != nil {
				return nil, err
			}
			msg := &Error{Err: e}
			if f.CID != nil {
				msg.CID = *f.CID
			}
			m = msg
		}
	case KindCredit:
		need("cid", f.CID != nil)
		need("n", f.Items != nil)
		if missing == nil {
			m = &Credit{CID: *f.CID, Items: *f.Items}
		}
	}
	if missing != nil {
		return nil, fmt.Errorf("a %s vector must show field %q", g.Kind, missing[0])
	}
	return m, nil
}

// present returns the fields set in f that are not in allowed.
func (f *goldenFields) present(allowed []string) []string {
	var extra []string
	v := reflect.ValueOf(f).Elem()
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if !v.Field(i).IsNil() && !slices.Contains(allowed, name) {
			extra = append(extra, name)
		}
	}
	return extra
}

func (e *goldenError) remoteError() (*protocol.RemoteError, error) {
	if e.Code == nil || e.Type == nil || e.Msg == nil || e.Src == nil {
		return nil, errors.New(`an error must show "code", "type", "msg" and "src"`)
	}
	r := &protocol.RemoteError{Code: protocol.ErrorCode(*e.Code), Type: *e.Type, Message: *e.Msg, Source: *e.Src, Relay: e.Relay}
	if e.Stack != nil {
		r.Stack = *e.Stack
	}
	if e.Canceller != nil {
		r.Canceller = *e.Canceller
	}
	if e.Name != nil {
		r.Name = *e.Name
	}
	if e.Data != nil {
		data, err := hexRaw(*e.Data)
		if err != nil {
			return nil, err
		}
		r.Data = data
	}
	for _, c := range e.Children {
		child, err := c.remoteError()
		if err != nil {
			return nil, err
		}
		r.Children = append(r.Children, child)
	}
	return r, nil
}

// parseGoldenFuncKind accepts only the three wire names, independently of
// protocol.ParseFuncKind.
func parseGoldenFuncKind(s string) (protocol.FuncKind, error) {
	switch s {
	case "func":
		return protocol.FuncUnary, nil
	case "stream":
		return protocol.FuncStream, nil
	case "context":
		return protocol.FuncContext, nil
	}
	return 0, fmt.Errorf("unknown function kind %q", s)
}

func hexRaw(s string) (protocol.Raw, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("payload %q: %w", s, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("payload %q: write msgpack nil as \"c0\"", s)
	}
	return b, nil
}

// checkWireKeys checks that the JSON shows exactly the fields present on the
// wire, at the top level and in "err", so that a reader of the JSON learns
// which optional fields the encoder leaves out.
func checkWireKeys(t *testing.T, body, jsonData []byte) {
	t.Helper()
	var doc struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(jsonData, &doc); err != nil {
		t.Fatal(err)
	}
	wire, values, err := msgpackMapKeys(body)
	if err != nil {
		t.Fatal(err)
	}
	wire = slices.DeleteFunc(wire, func(k string) bool { return k == keyKind })
	compareKeys(t, "fields", wire, doc.Fields)
	if raw, ok := values[keyErr]; ok {
		var errDoc map[string]json.RawMessage
		if err := json.Unmarshal(doc.Fields[keyErr], &errDoc); err != nil {
			t.Fatal(err)
		}
		errKeys, _, err := msgpackMapKeys(raw)
		if err != nil {
			t.Fatal(err)
		}
		compareKeys(t, "fields.err", errKeys, errDoc)
	}
}

func compareKeys(t *testing.T, where string, wire []string, doc map[string]json.RawMessage) {
	t.Helper()
	var shown []string
	for k := range doc {
		shown = append(shown, k)
	}
	slices.Sort(wire)
	slices.Sort(shown)
	if !slices.Equal(wire, shown) {
		t.Errorf("%s: the wire has keys %q, the JSON shows %q", where, wire, shown)
	}
}

// msgpackMapKeys returns the keys of the msgpack map b and their raw values.
func msgpackMapKeys(b []byte) ([]string, map[string][]byte, error) {
	r := &wire.Reader{Buf: b}
	n, err := r.MapLen()
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, n)
	values := make(map[string][]byte, n)
	for i := 0; i < n; i++ {
		k, err := r.Str()
		if err != nil {
			return nil, nil, err
		}
		v, err := r.Raw()
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		values[k] = v
	}
	return keys, values, nil
}

// otherVectors are files in goldenDir that are not frames of this package:
// package spawn's tests write and check them.
var otherVectors = map[string]bool{"spec.json": true, "unix-secret.hex": true}

// writeGolden replaces the vectors in goldenDir with goldenVectors and
// refusedVectors.
func writeGolden(t *testing.T) {
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*.hex", "*.json"} {
		old, _ := filepath.Glob(filepath.Join(goldenDir, pattern))
		for _, f := range old {
			if otherVectors[filepath.Base(f)] {
				continue
			}
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, v := range goldenVectors {
		frame, err := AppendFrame(nil, v.msg, 0)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		writeVector(t, v.name, v.note, frame, goldenFor(v.msg, v.note))
	}
	for _, v := range refusedVectors {
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(v.body)))
		writeVector(t, v.name, v.note, append(frame, v.body...), refusedFile{Note: v.note, Refused: refusal{CID: v.cid, Code: string(protocol.CodeProtocol)}})
	}
}

// writeVector writes NAME.hex, the frame with comments, and NAME.json.
func writeVector(t *testing.T, name, note string, frame []byte, doc any) {
	var h strings.Builder
	fmt.Fprintf(&h, "# %s: %s\n", name, note)
	fmt.Fprintf(&h, "# %d-byte frame: 4-byte big-endian body length (%d), then the msgpack body\n",
		len(frame), len(frame)-frameHeader)
	fmt.Fprintf(&h, "%x\n", frame[:frameHeader])
	for body := frame[frameHeader:]; len(body) > 0; {
		line := body[:min(32, len(body))]
		body = body[len(line):]
		fmt.Fprintf(&h, "%x\n", line)
	}
	base := filepath.Join(goldenDir, name)
	if err := os.WriteFile(base+".hex", []byte(h.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// refusedFile is the JSON side of a refused vector: "kind" is null.
type refusedFile struct {
	Kind    *string `json:"kind"`
	Note    string  `json:"note,omitempty"`
	Refused refusal `json:"refused"`
}

type refusal struct {
	CID  uint64 `json:"cid"`
	Code string `json:"code"`
}

// checkRefused checks a refused vector: the body does not decode, and the
// call id the receiver answers (see ipc's undecodable) is the vector's.
func checkRefused(t *testing.T, base string, data []byte) {
	var r refusedFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s.json: %v", base, err)
	}
	frame := readHexFile(t, base+".hex")
	body, err := NewFrameReader(bytes.NewReader(frame), 0).Next()
	if err != nil {
		t.Fatalf("reading the frame: %v", err)
	}
	m, err := DecodeMessage(body)
	if err == nil {
		t.Fatalf("decodes to %#v; a refused vector must not", m)
	}
	var cid uint64
	var me *MalformedError
	if errors.As(err, &me) && me.Kind == KindStart {
		cid = me.CID
	}
	if cid != r.Refused.CID || r.Refused.Code != string(protocol.CodeProtocol) {
		t.Fatalf("refused (%v) with an error for call %d; the vector says call %d, code %q", err, cid, r.Refused.CID, r.Refused.Code)
	}
}

// goldenFor describes m as the encoder writes it: a field the encoder leaves
// out is left out here too.
func goldenFor(m Message, note string) goldenFile {
	g := goldenFile{Kind: m.Kind().String(), Note: note}
	f := &g.Fields
	raw := func(r protocol.Raw) *string {
		if len(r) == 0 {
			r = protocol.Raw{0xc0}
		}
		s := hex.EncodeToString(r)
		return &s
	}
	ptr := func(s string) *string { return &s }
	switch m := m.(type) {
	case *Hello:
		f.Version = &[2]uint16{m.Version.Major, m.Version.Minor}
		f.Actor, f.PID, f.Init = &m.Actor, &m.PID, &m.Initiator
		if len(m.Spec) > 0 {
			f.Spec = raw(m.Spec)
		}
	case *Start:
		f.CID, f.Fn, f.Fk, f.Args = &m.CID, &m.Function, ptr(m.FuncKind.String()), raw(m.Args)
		if m.Credit != 0 {
			f.Credit = &m.Credit
		}
		if m.Timeout != 0 {
			ns := int64(m.Timeout)
			f.Timeout = &ns
		}
	case *StartAck:
		f.CID, f.Fk = &m.CID, ptr(m.FuncKind.String())
	case *Started:
		f.CID, f.Value, f.Credit = &m.CID, raw(m.Value), &m.Credit
	case *Yield:
		f.CID, f.Value = &m.CID, raw(m.Value)
	case *Stop:
		f.CID = &m.CID
	case *Return:
		f.CID, f.Value = &m.CID, raw(m.Value)
	case *Error:
		if m.CID != 0 {
			f.CID = &m.CID
		}
		f.Err = goldenErrorFor(m.Err)
	case *Credit:
		f.CID, f.Items = &m.CID, &m.Items
	}
	return g
}

func goldenErrorFor(e *protocol.RemoteError) *goldenError {
	code := string(e.Code)
	g := &goldenError{Code: &code, Type: &e.Type, Msg: &e.Message, Src: &e.Source, Relay: e.Relay}
	if e.Stack != "" {
		g.Stack = &e.Stack
	}
	if !e.Canceller.IsZero() {
		g.Canceller = &e.Canceller
	}
	if e.Name != "" {
		g.Name = &e.Name
	}
	if len(e.Data) > 0 {
		data := hex.EncodeToString(e.Data)
		g.Data = &data
	}
	for _, c := range e.Children {
		g.Children = append(g.Children, goldenErrorFor(c))
	}
	return g
}
