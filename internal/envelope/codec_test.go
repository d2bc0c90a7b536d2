package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/wire"
	"github.com/arbor-go/arbor/protocol"
)

var sampleMessages = []Message{
	&Hello{Version: protocol.Current(), Actor: protocol.ActorID{Name: "root", UUID: "0b9e"}, PID: 4242, Initiator: true},
	&Start{CID: 1, Function: "math.add", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x92, 0x01, 0x02}},
	&Start{CID: 3, Function: "count", FuncKind: protocol.FuncStream, Args: protocol.Raw{0x05}, Credit: 128, Timeout: 1500 * time.Millisecond},
	&StartAck{CID: 1, FuncKind: protocol.FuncUnary},
	&Started{CID: 5, Value: protocol.Raw{0xa2, 'o', 'k'}, Credit: 64},
	&Yield{CID: 3, Value: protocol.Raw{0x2a}},
	&Stop{CID: 3},
	&Return{CID: 1, Value: protocol.Raw{0x03}},
	&Error{CID: 7, Err: &protocol.RemoteError{Code: protocol.CodeCancelled, Type: "*errors.errorString", Message: "context canceled",
		Source: protocol.ActorID{Name: "child", UUID: "u2"}, Relay: []protocol.ActorID{{Name: "mid", UUID: "u3"}}, Canceller: protocol.ActorID{Name: "root", UUID: "u1"}, Stack: "goroutine 1"}},
	&Error{Err: &protocol.RemoteError{Code: protocol.CodeProtocol, Message: "yield for unknown call 9", Source: protocol.ActorID{Name: "a", UUID: "b"}}},
	&Error{CID: 9, Err: &protocol.RemoteError{Type: "*nursery.Error", Message: "2 failures", Source: protocol.ActorID{Name: "mid", UUID: "u3"},
		Name: "app.Group", Data: protocol.Raw{0x81, 0xa1, 'n', 0x02}, Children: []*protocol.RemoteError{
			{Type: "*app.DiskFull", Message: "disk full", Source: protocol.ActorID{Name: "a", UUID: "u4"}, Relay: []protocol.ActorID{{Name: "mid", UUID: "u3"}}, Name: "app.DiskFull", Data: protocol.Raw{0xc0}},
			{Code: protocol.CodeCancelled, Message: "context canceled", Source: protocol.ActorID{Name: "b", UUID: "u5"}},
		}}},
	&Credit{CID: 3, Items: 64},
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages {
		t.Run(m.Kind().String(), func(t *testing.T) {
			body := AppendMessage(nil, m)
			got, err := DecodeMessage(body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip changed the message:\n got %#v\nwant %#v", got, m)
			}
			if again := AppendMessage(nil, got); !bytes.Equal(again, body) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, body)
			}
		})
	}
}

// A Decoder gives the same messages as DecodeMessage, and a reader that
// decodes the messages of a call (its Start, with a name seen before, its
// StartAck, its Return) allocates nothing for them.
func TestDecoderReusesItsMessages(t *testing.T) {
	var d Decoder
	for _, m := range sampleMessages {
		got, err := d.Decode(AppendMessage(nil, m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Decode gave %#v, %v; want %#v", got, err, m)
		}
	}
	bodies := [][]byte{
		AppendMessage(nil, &Start{CID: 1, Function: "math.add", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x92, 0x01, 0x02}}),
		AppendMessage(nil, &StartAck{CID: 1, FuncKind: protocol.FuncUnary}),
		AppendMessage(nil, &Return{CID: 1, Value: protocol.Raw{0x03}}),
	}
	if allocs := testing.AllocsPerRun(100, func() {
		for _, b := range bodies {
			if _, err := d.Decode(b); err != nil {
				t.Fatal(err)
			}
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per call's messages, want 0", allocs)
	}
	// A name is kept once, and only so many of them.
	for i := range 2 * maxNames {
		d.Decode(AppendMessage(nil, &Start{CID: 1, Function: fmt.Sprint("f", i), FuncKind: protocol.FuncUnary}))
	}
	if len(d.names) != maxNames {
		t.Fatalf("%d names kept, want %d", len(d.names), maxNames)
	}
}

func TestRawNilDecodesAsNilValue(t *testing.T) {
	body := AppendMessage(nil, &Return{CID: 9})
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.(*Return).Value; !bytes.Equal(v, []byte{0xc0}) {
		t.Fatalf("empty value should travel as msgpack nil, got %x", v)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := AppendMessage(nil, &Start{CID: 1, Function: "f", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x01}})
	tests := []struct {
		name string
		body []byte
		want string // substring of the error
		as   any
	}{
		{"empty", nil, "truncated", new(*MalformedError)},
		{"not a map", []byte{0x93, 1, 2, 3}, "expected a map, got array", new(*MalformedError)},
		{"no kind", []byte{0x81, 0xa3, 'c', 'i', 'd', 0x01}, "message has no kind", new(*MalformedError)},
		{"unknown kind", wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 1), "k"), "launch"), `unknown message kind "launch"`, new(*UnknownKindError)},
		{"truncated", valid[:len(valid)-1], "truncated", new(*MalformedError)},
		{"trailing bytes", append(append([]byte{}, valid...), 0xc0), "after the end", new(*MalformedError)},
		{"duplicate field", wire.AppendUint(wire.AppendStr(wire.AppendUint(wire.AppendStr(wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 3), "k"), "stop"), "cid"), 1), "cid"), 2), "appears twice", new(*MalformedError)},
		{"missing cid", wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 1), "k"), "stop"), `"cid"`, new(*MalformedError)},
		{"cid zero", wire.AppendUint(wire.AppendStr(wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 2), "k"), "stop"), "cid"), 0), "reserved", new(*MalformedError)},
		{"cid wrong type", wire.AppendStr(wire.AppendStr(wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 2), "k"), "stop"), "cid"), "x"), "expected an unsigned integer, got string", new(*MalformedError)},
		{"huge string length", []byte{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, "truncated", new(*MalformedError)},
		{"huge map length", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "elements in 0 remaining bytes", new(*MalformedError)},
		{"invalid byte", []byte{0xc1}, "expected a map, got invalid byte 0xc1", new(*MalformedError)},
		{"deep nesting", append(append(wire.AppendStr(wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 3), "k"), "stop"), "x"), bytes.Repeat([]byte{0x91}, 100)...), 0xc0), "nested deeper", new(*MalformedError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMessage(tt.body)
			if err == nil {
				t.Fatalf("decoded %#v, want an error", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			if !errors.As(err, tt.as) {
				t.Fatalf("error %T is not %T", err, tt.as)
			}
		})
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	b := wire.AppendMapLen(nil, 3)
	b = wire.AppendStr(wire.AppendStr(b, "k"), "stop")
	b = wire.AppendStr(b, "future")
	b = wire.AppendArrayLen(b, 2)
	b = wire.AppendStr(wire.AppendStr(b, "a"), "b")
	b = wire.AppendUint(wire.AppendStr(b, "cid"), 12)
	m, err := DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, &Stop{CID: 12}) {
		t.Fatalf("got %#v", m)
	}
}

func TestFrames(t *testing.T) {
	var stream []byte
	for _, m := range sampleMessages {
		var err error
		if stream, err = AppendFrame(stream, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	for i, want := range sampleMessages {
		got, err := fr.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %#v", i, got)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	big := &Yield{CID: 1, Value: append([]byte{0xc5, 0x04, 0x00}, make([]byte, 1024)...)}
	b, err := AppendFrame([]byte("keep"), big, 512)
	var tooLarge *FrameTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Incoming || tooLarge.Max != 512 {
		t.Fatalf("outgoing over the limit: %v", err)
	}
	if string(b) != "keep" {
		t.Fatalf("a failed append must leave the buffer as it was, got %q", b)
	}

	t.Run("incoming over the limit", func(t *testing.T) {
		fr := NewFrameReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 1024)
		_, err := fr.Next()
		if !errors.As(err, &tooLarge) || !tooLarge.Incoming || tooLarge.Size != 1<<32-1 {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated header", func(t *testing.T) {
		_, err := NewFrameReader(bytes.NewReader([]byte{0, 0}), 0).Next()
		var tr *TruncatedFrameError
		if !errors.As(err, &tr) || tr.Got != 2 {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated large body allocates what arrived", func(t *testing.T) {
		in := append([]byte{0x00, 0xf0, 0x00, 0x00}, make([]byte, 100)...) // announces 15 MiB
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := NewFrameReader(bytes.NewReader(in), 0).Next()
		runtime.ReadMemStats(&after)
		var tr *TruncatedFrameError
		if !errors.As(err, &tr) || tr.Got != 100 || tr.Want != 15<<20 {
			t.Fatalf("got %v", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Fatalf("reading 100 bytes of an announced 15 MiB frame allocated %d bytes", grew)
		}
	})
}

func TestVersion(t *testing.T) {
	if err := protocol.CheckVersion(protocol.Version{Major: 1, Minor: 7}); err != nil {
		t.Fatalf("minor versions must interoperate: %v", err)
	}
	err := protocol.CheckVersion(protocol.Version{Major: 2, Minor: 0})
	var ve *protocol.VersionError
	if !errors.As(err, &ve) || ve.Remote.Major != 2 || ve.Local != protocol.Current() {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), protocol.Current().String()) || !strings.Contains(err.Error(), "2.0") {
		t.Fatalf("the error must name both versions: %v", err)
	}
}

func TestMalformedErrorNamesTheCall(t *testing.T) {
	b := wire.AppendMapLen(nil, 3)
	b = wire.AppendStr(wire.AppendStr(b, "k"), "return")
	b = wire.AppendUint(wire.AppendStr(b, "cid"), 77)
	b = wire.AppendStr(b, "v")
	for range 100 {
		b = wire.AppendArrayLen(b, 1)
	}
	b = wire.AppendNil(b)
	_, err := DecodeMessage(b)
	var me *MalformedError
	if !errors.As(err, &me) || me.CID != 77 || me.Kind != KindReturn || me.Field != "v" {
		t.Fatalf("got %#v", err)
	}
}

// Error children nest at most MaxErrorDepth deep: the encoder leaves out
// what is deeper, the decoder refuses it.
func TestErrorChildrenDepth(t *testing.T) {
	nest := func(levels int) *protocol.RemoteError {
		e := &protocol.RemoteError{Message: "leaf"}
		for range levels - 1 {
			e = &protocol.RemoteError{Message: "group", Children: []*protocol.RemoteError{e, {Message: "sibling"}}}
		}
		return e
	}
	depth := func(e *protocol.RemoteError) int {
		n := 0
		for ; e != nil; n++ {
			if len(e.Children) == 0 {
				break
			}
			e = e.Children[0]
		}
		return n + 1
	}
	m, err := DecodeMessage(AppendMessage(nil, &Error{CID: 1, Err: nest(MaxErrorDepth + 5)}))
	if err != nil {
		t.Fatal(err)
	}
	if d := depth(m.(*Error).Err); d != MaxErrorDepth {
		t.Fatalf("decoded %d levels, want the encoder to stop at %d", d, MaxErrorDepth)
	}
	// A hand-made message one level deeper than allowed.
	var nested []byte
	for range MaxErrorDepth {
		nested = wire.AppendArrayLen(wire.AppendStr(wire.AppendMapLen(nested, 1), "children"), 1)
	}
	nested = wire.AppendMapLen(nested, 0)
	body := wire.AppendStr(wire.AppendStr(wire.AppendMapLen(nil, 3), "k"), "error")
	body = wire.AppendUint(wire.AppendStr(body, "cid"), 1)
	body = append(wire.AppendStr(body, "err"), nested...)
	var merr *MalformedError
	if _, err := DecodeMessage(body); !errors.As(err, &merr) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("got %v, want a MalformedError about nesting", err)
	}
}
