package ipc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

// rawPeer speaks frames by hand, to send what a correct peer never would.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	fr   *envelope.FrameReader
}

func (p *rawPeer) send(m envelope.Message) {
	p.t.Helper()
	b, err := envelope.AppendFrame(nil, m, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendBytes(b)
}

func (p *rawPeer) sendBytes(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// sendBody sends b as the body of one well-formed frame.
func (p *rawPeer) sendBody(b []byte) {
	p.t.Helper()
	p.sendBytes(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
}

func (p *rawPeer) recv() envelope.Message {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := p.fr.ReadMessage()
	if err != nil {
		p.t.Fatalf("raw peer: %v", err)
	}
	return m
}

// expectError reads until an Error message arrives and checks it.
func (p *rawPeer) expectError(cid uint64, code protocol.ErrorCode, words ...string) {
	p.t.Helper()
	for {
		m := p.recv()
		e, ok := m.(*envelope.Error)
		if !ok {
			continue // a StartAck or a grant on the way
		}
		if e.CID != cid || e.Err.Code != code {
			p.t.Fatalf("got error for cid %d code %q (%s), want cid %d code %q", e.CID, e.Err.Code, e.Err.Message, cid, code)
		}
		for _, w := range words {
			if !strings.Contains(e.Err.Message, w) {
				p.t.Fatalf("error %q does not say %q", e.Err.Message, w)
			}
		}
		return
	}
}

// expectReturn reads until the Return of cid arrives.
func (p *rawPeer) expectReturn(cid uint64) protocol.Raw {
	p.t.Helper()
	for {
		switch m := p.recv().(type) {
		case *envelope.Return:
			if m.CID == cid {
				return m.Value
			}
		case *envelope.Error:
			p.t.Fatalf("got error %v while waiting for the return of %d", m.Err, cid)
		}
	}
}

func rawPair(t *testing.T, chInitiator bool, funcs *Table) (*rawPeer, *Channel) {
	return rawPairVersion(t, chInitiator, funcs, protocol.Current())
}

// rawPairVersion is rawPair with a raw peer that says it speaks version v.
func rawPairVersion(t *testing.T, chInitiator bool, funcs *Table, v protocol.Version) (*rawPeer, *Channel) {
	return rawPairWith(t, chInitiator, funcs, v, Options{})
}

// rawPairWith is rawPairVersion with options for the channel under test.
func rawPairWith(t *testing.T, chInitiator bool, funcs *Table, v protocol.Version, opts Options) (*rawPeer, *Channel) {
	a, b := socketPair(t)
	p := &rawPeer{t: t, conn: a.(net.Conn), fr: envelope.NewFrameReader(a, 0)}
	opened := make(chan *Channel, 1)
	go func() {
		opts.Actor, opts.Initiator, opts.Functions = protocol.ActorID{Name: "under-test"}, chInitiator, funcs
		ch, err := Open(context.Background(), b, opts)
		if err != nil {
			t.Error(err)
		}
		opened <- ch
	}()
	p.send(&envelope.Hello{Version: v, Actor: protocol.ActorID{Name: "raw", UUID: "r"}, PID: 1, Initiator: !chInitiator})
	if _, ok := p.recv().(*envelope.Hello); !ok {
		t.Fatal("no hello")
	}
	ch := <-opened
	if ch == nil {
		t.FailNow()
	}
	t.Cleanup(func() {
		ch.Close()
		a.Close()
	})
	return p, ch
}

func encode(t *testing.T, v any) protocol.Raw {
	var out protocol.Raw
	if err := encodePayload(v, func(r protocol.Raw) error { out = append(out, r...); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The channel under test serves; the raw peer calls it badly.
func TestBadInputFromCaller(t *testing.T) {
	wait := NewFunc("test.wait", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// gated sends Started only once the test opens the gate: a Yield sent
	// with its Start always comes before Started.
	gate := make(chan struct{})
	defer close(gate)
	gated := NewContext("test.gated", func(ctx context.Context, _ string, s *Session[string, int, int]) (int, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return 0, s.Started("open")
	})
	p, ch := rawPair(t, false, MustNewTable(add, wait, echo, count, gated))
	addCall := func(cid uint64) {
		t.Helper()
		p.send(&envelope.Start{CID: cid, Function: "test.add", FuncKind: protocol.FuncUnary, Args: encode(t, addArgs{40, 2})})
		if v := p.expectReturn(cid); string(v) != string(encode(t, 42)) {
			t.Fatalf("add returned %x", v)
		}
	}
	addCall(1)

	tests := []struct {
		name   string
		send   func()
		cid    uint64
		code   protocol.ErrorCode
		words  []string
		nextID uint64
	}{
		{"unknown function", func() {
			p.send(&envelope.Start{CID: 3, Function: "nope", FuncKind: protocol.FuncUnary})
		}, 3, protocol.CodeUnknownFunction, []string{`"nope"`}, 5},
		{"wrong kind", func() {
			p.send(&envelope.Start{CID: 7, Function: "test.add", FuncKind: protocol.FuncStream, Credit: 8})
		}, 7, protocol.CodeWrongKind, []string{"test.add is a func, called as a stream"}, 9},
		{"wrong argument type", func() {
			p.send(&envelope.Start{CID: 11, Function: "test.add", FuncKind: protocol.FuncUnary, Args: encode(t, []string{"x"})})
		}, 11, protocol.CodeBadArgument, []string{"want Go type ipc.addArgs, got msgpack array"}, 13},
		{"start reusing a live call id", func() {
			p.send(&envelope.Start{CID: 15, Function: "test.wait", FuncKind: protocol.FuncUnary, Args: encode(t, struct{}{})})
			p.send(&envelope.Start{CID: 15, Function: "test.add", FuncKind: protocol.FuncUnary, Args: encode(t, addArgs{})})
		}, 15, protocol.CodeProtocol, []string{"already in use"}, 17},
		{"start reusing an ended call id", func() {
			p.send(&envelope.Start{CID: 17, Function: "test.add", FuncKind: protocol.FuncUnary, Args: encode(t, addArgs{})})
		}, 17, protocol.CodeProtocol, []string{"already used by a call that has ended"}, 19},
		{"start with the other side's parity", func() {
			p.send(&envelope.Start{CID: 20, Function: "test.add", FuncKind: protocol.FuncUnary})
		}, 0, protocol.CodeProtocol, []string{"call id 20", "parity"}, 21}, // cid 0: the sender never used 20 (PROTOCOL.md §5, 1.2)
		{"yield for a call never started", func() {
			p.send(&envelope.Yield{CID: 99, Value: protocol.Raw{1}})
		}, 0, protocol.CodeProtocol, []string{"yield for call id 99, which was never started"}, 23},
		{"return for a call never made", func() {
			p.send(&envelope.Return{CID: 100, Value: protocol.Raw{1}})
		}, 0, protocol.CodeProtocol, []string{"call id 100, which this side never used"}, 25},
		{"malformed message", func() { p.sendBody([]byte{0x81, 0xa1, 'k', 0xc1}) }, 0, protocol.CodeProtocol, []string{"malformed"}, 27},
		{"unknown message kind", func() {
			p.sendBody([]byte{0x81, 0xa1, 'k', 0xa6, 'l', 'a', 'u', 'n', 'c', 'h'})
		}, 0, protocol.CodeProtocol, []string{`unknown message kind "launch"`}, 29},
		{"hello again", func() {
			p.send(&envelope.Hello{Version: protocol.Current(), Actor: protocol.ActorID{Name: "raw"}, Initiator: true})
		}, 0, protocol.CodeProtocol, []string{"hello after the handshake"}, 31},
		{"yield on a stream from its caller", func() {
			p.send(&envelope.Start{CID: 33, Function: "test.count", FuncKind: protocol.FuncStream, Args: encode(t, 1<<30), Credit: 1})
			p.send(&envelope.Yield{CID: 33, Value: protocol.Raw{1}})
		}, 33, protocol.CodeProtocol, []string{"yield from the caller of a stream"}, 35},
		{"yield before started", func() {
			b, _ := envelope.AppendFrame(nil, &envelope.Start{CID: 37, Function: "test.gated", FuncKind: protocol.FuncContext, Args: encode(t, "hi"), Credit: 4}, 0)
			b, _ = envelope.AppendFrame(b, &envelope.Yield{CID: 37, Value: protocol.Raw{1}}, 0)
			p.sendBytes(b)
		}, 37, protocol.CodeProtocol, []string{"before started"}, 39},
		{"start with a key twice after its cid", func() {
			// {"k": "start", "cid": 41, "fn": "test.add", "fn": "test.add", ...}
			body := []byte{0x86, 0xa1, 'k', 0xa5, 's', 't', 'a', 'r', 't', 0xa3, 'c', 'i', 'd', 41}
			for range 2 {
				body = append(body, 0xa2, 'f', 'n', 0xa8, 't', 'e', 's', 't', '.', 'a', 'd', 'd')
			}
			body = append(body, 0xa2, 'f', 'k', 0xa4, 'f', 'u', 'n', 'c', 0xa4, 'a', 'r', 'g', 's', 0xc0)
			p.sendBody(body)
		}, 41, protocol.CodeProtocol, []string{`field "fn" appears twice`}, 43},
		{"malformed start of an id already used", func() {
			p.sendBody([]byte{0x83, 0xa1, 'k', 0xa5, 's', 't', 'a', 'r', 't', 0xa3, 'c', 'i', 'd', 41, 0xa2, 'f', 'n', 0xc1})
		}, 0, protocol.CodeProtocol, []string{"malformed"}, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			tt.send()
			p.expectError(tt.cid, tt.code, tt.words...)
			addCall(tt.nextID) // the channel still works
		})
	}
	if err := ch.Err(); err != nil {
		t.Fatalf("bad messages ended the channel: %v", err)
	}
}

// The channel under test calls; the raw peer answers badly.
func TestBadInputFromCallee(t *testing.T) {
	tests := []struct {
		name   string
		call   func(ch *Channel) error
		answer func(p *rawPeer, s *envelope.Start)
		words  string
	}{
		{"started twice", func(ch *Channel) error {
			cc, err := echo.Open(context.Background(), ch, "x")
			if err != nil {
				return err
			}
			_, err = cc.Result()
			return err
		}, func(p *rawPeer, s *envelope.Start) {
			p.send(&envelope.StartAck{CID: s.CID, FuncKind: s.FuncKind})
			p.send(&envelope.Started{CID: s.CID, Value: encode(p.t, "a"), Credit: 1})
			p.send(&envelope.Started{CID: s.CID, Value: encode(p.t, "b"), Credit: 1})
		}, "started twice"},
		{"yield before started", func(ch *Channel) error {
			_, err := echo.Open(context.Background(), ch, "x")
			return err
		}, func(p *rawPeer, s *envelope.Start) {
			p.send(&envelope.StartAck{CID: s.CID, FuncKind: s.FuncKind})
			p.send(&envelope.Yield{CID: s.CID, Value: encode(p.t, 1)})
		}, "yield before started"},
		{"yield beyond credit", func(ch *Channel) error {
			s, err := count.Open(context.Background(), ch, 1)
			if err != nil {
				return err
			}
			<-s.c.done // nobody reads, so nothing grants more credit
			return s.c.err
		}, func(p *rawPeer, s *envelope.Start) {
			for range s.Credit + 1 {
				p.send(&envelope.Yield{CID: s.CID, Value: encode(p.t, 1)})
			}
		}, "beyond the credit granted"},
		{"return on a stream", func(ch *Channel) error {
			s, err := count.Open(context.Background(), ch, 1)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, func(p *rawPeer, s *envelope.Start) {
			p.send(&envelope.Return{CID: s.CID})
		}, "return on a stream"},
		{"startack of the wrong kind", func(ch *Channel) error {
			_, err := add.Call(context.Background(), ch, addArgs{})
			return err
		}, func(p *rawPeer, s *envelope.Start) {
			p.send(&envelope.StartAck{CID: s.CID, FuncKind: protocol.FuncStream})
		}, "startack for a stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ch := rawPair(t, true, nil)
			errc := make(chan error, 1)
			go func() { errc <- tt.call(ch) }()
			s, ok := p.recv().(*envelope.Start)
			if !ok {
				t.Fatal("expected a start")
			}
			tt.answer(p, s)
			var err error
			within(t, 5*time.Second, "the call", func() { err = <-errc })
			var perr *ProtocolError
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), tt.words) || perr.CID != s.CID {
				t.Fatalf("got %v, want a protocol error saying %q", err, tt.words)
			}
			// The peer is told, and asked to cancel its task.
			sawCancel := false
			for !sawCancel {
				if c, ok := p.recv().(*envelope.Start); ok && c.Function == "arbor.cancel" {
					sawCancel = true
				}
			}
		})
	}
}

func TestBrokenFramingEndsTheChannel(t *testing.T) {
	tests := []struct {
		name  string
		bytes []byte
		want  any
	}{
		{"length over the limit", []byte{0x7f, 0xff, 0xff, 0xff}, new(*envelope.FrameTooLargeError)},
		{"truncated frame", []byte{0, 0, 0, 9, 0x82}, new(*envelope.TruncatedFrameError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ch := rawPair(t, false, testFuncs)
			p.sendBytes(tt.bytes)
			p.conn.(interface{ CloseWrite() error }).CloseWrite()
			within(t, 2*time.Second, "the channel's end", func() { <-ch.Done() })
			var gone *PeerGoneError
			if !errors.As(ch.Err(), &gone) || !errors.As(ch.Err(), tt.want) {
				t.Fatalf("channel ended with %v", ch.Err())
			}
		})
	}
}

func TestHandshakeFailures(t *testing.T) {
	tests := []struct {
		name  string
		peer  func(p *rawPeer)
		ctx   time.Duration
		check func(t *testing.T, err error)
	}{
		{"major version mismatch", func(p *rawPeer) {
			p.send(&envelope.Hello{Version: protocol.Version{Major: 2, Minor: 1}, Actor: protocol.ActorID{Name: "future"}})
		}, 0, func(t *testing.T, err error) {
			var ve *protocol.VersionError
			if !errors.As(err, &ve) || ve.Remote.Major != 2 || !strings.Contains(err.Error(), "2.1") || !strings.Contains(err.Error(), protocol.Current().String()) {
				t.Fatalf("got %v", err)
			}
		}},
		{"both initiators", func(p *rawPeer) {
			p.send(&envelope.Hello{Version: protocol.Current(), Initiator: true})
		}, 0, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "both ends claim to be the initiator") {
				t.Fatalf("got %v", err)
			}
		}},
		{"not an arbor actor", func(p *rawPeer) {
			p.sendBytes([]byte("usage: worker [flags]\n"))
		}, 0, func(t *testing.T, err error) {
			var he *HandshakeError
			if !errors.As(err, &he) || !strings.Contains(err.Error(), "not an arbor actor") || !strings.Contains(err.Error(), "usage: worker") {
				t.Fatalf("got %v", err)
			}
		}},
		{"first message not hello", func(p *rawPeer) {
			p.send(&envelope.Stop{CID: 1})
		}, 0, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "first message is stop, not hello") {
				t.Fatalf("got %v", err)
			}
		}},
		{"silent peer", func(p *rawPeer) {}, 50 * time.Millisecond, func(t *testing.T, err error) {
			var he *HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketPair(t)
			defer a.Close()
			p := &rawPeer{t: t, conn: a.(net.Conn), fr: envelope.NewFrameReader(a, 0)}
			go io.Copy(io.Discard, a)
			tt.peer(p)
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			var ch *Channel
			var err error
			within(t, 5*time.Second, "Open", func() { ch, err = Open(ctx, b, Options{Initiator: true}) })
			if err == nil {
				ch.Close()
				t.Fatal("Open succeeded")
			}
			tt.check(t, err)
		})
	}
}

// A 1.0 peer still works with this 1.1 side; a group error it cannot read
// as a group still carries the whole text in msg (PROTOCOL.md §4.2).
func TestMinorVersionOlderPeer(t *testing.T) {
	both := NewFunc("test.both", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, errors.Join(errors.New("first"), errors.New("second"))
	})
	p, _ := rawPairVersion(t, false, MustNewTable(both), protocol.Version{Major: 1, Minor: 0})
	p.send(&envelope.Start{CID: 1, Function: "test.both", FuncKind: protocol.FuncUnary, Args: encode(t, struct{}{})})
	for {
		switch m := p.recv().(type) {
		case *envelope.StartAck:
			continue
		case *envelope.Error:
			if m.Err.Message != "first\nsecond" || len(m.Err.Children) != 2 || m.Err.Children[1].Message != "second" {
				t.Fatalf("got %+v", m.Err)
			}
			return
		default:
			t.Fatalf("got %T", m)
		}
	}
}
