package ipc

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

// Regression tests for failure paths found in review.

func TestDeeplyNestedResultFailsTheCall(t *testing.T) {
	deep := NewFunc("test.deep", func(ctx context.Context, n int) (any, error) {
		var v any = 1
		for range n {
			v = []any{v}
		}
		return v, nil
	})
	parent, _ := pair(t, transports[0], MustNewTable(deep, add), nil, nil)
	if _, err := deep.Call(context.Background(), parent, 10); err != nil {
		t.Fatalf("10 levels: %v", err)
	}
	var err error
	within(t, 2*time.Second, "the call", func() { _, err = deep.Call(context.Background(), parent, 70) })
	var perr *ProtocolError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Fatalf("got %v, want a protocol error about nesting", err)
	}
	if v, err := add.Call(context.Background(), parent, addArgs{1, 1}); err != nil || v != 2 {
		t.Fatalf("channel broken: %d %v", v, err)
	}
}

func TestDeeplyNestedArgumentFailsTheCall(t *testing.T) {
	deep := NewFunc("test.deeparg", func(ctx context.Context, v any) (int, error) { return 0, nil })
	parent, _ := pair(t, transports[0], MustNewTable(deep), nil, nil)
	var v any = 1
	for range 70 {
		v = []any{v}
	}
	var err error
	within(t, 2*time.Second, "the call", func() { _, err = deep.Call(context.Background(), parent, v) })
	if !errors.Is(err, protocol.ErrProtocol) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("got %v", err)
	}
}

func TestFailedYieldKeepsItsCredit(t *testing.T) {
	s := NewStream("test.big", func(ctx context.Context, _ struct{}, out *Yielder[string]) error {
		for range 4 {
			if err := out.Send(strings.Repeat("x", 4096)); err == nil {
				return errors.New("an oversized item was sent")
			}
		}
		return out.Send("small")
	})
	parent, _ := pair(t, transports[0], MustNewTable(s), nil, func(o *Options) { o.Window = 4; o.MaxFrame = 1024 })
	r, err := s.Open(context.Background(), parent, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	var v string
	within(t, 2*time.Second, "the item after four failed sends", func() { v, err = r.Recv() })
	if err != nil || v != "small" {
		t.Fatalf("got %q %v", v, err)
	}
}

func TestHandshakeOverUnbufferedPipe(t *testing.T) {
	a, b := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	var child *Channel
	go func() {
		var err error
		child, err = Open(ctx, b, Options{})
		errc <- err
	}()
	parent, err := Open(ctx, a, Options{Initiator: true})
	if cerr := <-errc; err != nil || cerr != nil {
		t.Fatalf("handshake over net.Pipe: %v / %v", err, cerr)
	}
	parent.Close()
	child.Close()
}

// stuckPeer opens a channel to a peer that completes the handshake and then
// never reads.
func stuckPeer(t *testing.T, conn io2, peer io2) *Channel {
	t.Helper()
	frame, _ := envelope.AppendFrame(nil, &envelope.Hello{Version: protocol.Current(), Actor: protocol.ActorID{Name: "stuck"}, PID: 1}, 0)
	go peer.Write(frame)
	ch, err := Open(context.Background(), conn, Options{Initiator: true, CancelWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

type io2 interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}

func TestCloseWithAPeerThatDoesNotRead(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			a, b := tr.pair(t)
			defer b.Close()
			ch := stuckPeer(t, a, b)
			f := NewFunc[string, int]("test.any", nil)
			go f.Call(context.Background(), ch, strings.Repeat("x", 4<<20)) // fills the pipe, then blocks
			eventually(t, 2*time.Second, "the write to block", func() bool {
				ch.w.mu.Lock()
				defer ch.w.mu.Unlock()
				return ch.w.writing
			})
			within(t, 3*time.Second, "Close", func() { ch.Close() })
		})
	}
}

func TestExplainIsAskedOnce(t *testing.T) {
	var calls atomic.Int32
	sink := NewFunc("test.sink", func(ctx context.Context, s string) (int, error) { return len(s), nil })
	parent, child := pair(t, transports[0], MustNewTable(sink), nil, func(o *Options) {
		if o.Initiator {
			o.Explain = func(err error) error {
				calls.Add(1)
				time.Sleep(50 * time.Millisecond) // as spawn waits for an exit status
				return err
			}
		}
	})
	big := strings.Repeat("x", 1<<20)
	for range 8 {
		go sink.Call(context.Background(), parent, big)
	}
	child.conn.Close()
	<-parent.Done()
	parent.Close()
	if n := calls.Load(); n != 1 {
		t.Fatalf("Explain called %d times", n)
	}
}

func TestReportsToAPeerThatDoesNotReadAreBounded(t *testing.T) {
	a, b := socketPair(t)
	defer b.Close()
	ch := stuckPeer(t, a, b)
	defer ch.Close()
	bad := []byte{0, 0, 0, 4, 0x81, 0xa1, 'k', 0x01} // {"k": 1}: a kind of the wrong type
	batch := []byte(strings.Repeat(string(bad), 1000))
	for range 200 {
		b.Write(batch)
	}
	eventually(t, 5*time.Second, "the reader to consume the bad frames", func() bool {
		ch.w.mu.Lock()
		defer ch.w.mu.Unlock()
		return len(ch.w.buf) > maxReportBacklog/2
	})
	time.Sleep(100 * time.Millisecond) // let the reader work through the rest
	ch.w.mu.Lock()
	n := len(ch.w.buf)
	ch.w.mu.Unlock()
	if n > maxReportBacklog+64<<10 {
		t.Fatalf("%d bytes queued for a peer that never reads", n)
	}
}

func TestDecodeNeverPanics(t *testing.T) {
	var m map[any]any
	err := decodePayload("f", "result", protocol.Raw{0x81, 0x91, 0x01, 0x02}, &m) // {[1]: 2}
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("got %v", err)
	}
}

func TestGoexitInServedFunction(t *testing.T) {
	f := NewFunc("test.goexit", func(ctx context.Context, _ struct{}) (int, error) {
		runtime.Goexit()
		return 0, nil
	})
	parent, _ := pair(t, transports[0], MustNewTable(f, add), nil, nil)
	var err error
	within(t, 2*time.Second, "the call", func() { _, err = f.Call(context.Background(), parent, struct{}{}) })
	if err == nil || !strings.Contains(err.Error(), "Goexit") {
		t.Fatalf("got %v", err)
	}
	if v, err := add.Call(context.Background(), parent, addArgs{2, 2}); err != nil || v != 4 {
		t.Fatalf("channel broken: %d %v", v, err)
	}
}

func TestRuntimeFunctionsIgnoreArguments(t *testing.T) {
	parent, _ := pair(t, transports[0], nil, nil, nil)
	ping := NewFunc[int, struct{}]("arbor.ping", nil)
	if _, err := ping.Call(context.Background(), parent, 5); err != nil {
		t.Fatalf("arbor.ping with an argument: %v", err)
	}
	if err := Ping(context.Background(), parent); err != nil {
		t.Fatal(err)
	}
}

func TestPeerGoneIsExited(t *testing.T) {
	err := error(&PeerGoneError{Cause: errors.New("EOF")})
	if !errors.Is(err, protocol.ErrExited) {
		t.Fatal("PeerGoneError should match protocol.ErrExited")
	}
}

func TestCallerCtxWorksWhilePeerDoesNotRead(t *testing.T) {
	a, b := socketPair(t)
	defer b.Close()
	ch := stuckPeer(t, a, b)
	defer ch.Close()
	f := NewFunc[string, int]("test.any", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var err error
	within(t, 3*time.Second, "a call with a 200ms ctx", func() { _, err = f.Call(ctx, ch, strings.Repeat("x", 8<<20)) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}
