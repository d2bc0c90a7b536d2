package ipc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/envelope"
	"github.com/arbor-go/arbor/protocol"
)

func TestTables(t *testing.T) {
	custom := NewFunc("arbor.custom", func(context.Context, int) (int, error) { return 7, nil })
	tests := []struct {
		name  string
		build func() error
		want  string
	}{
		{"reserved name in a user table", func() error { _, err := NewTable(custom); return err }, "reserved for the runtime"},
		{"duplicate", func() error { _, err := NewTable(add, add); return err }, "declared twice"},
		{"empty name", func() error {
			_, err := NewTable(NewFunc[int, int]("", func(context.Context, int) (int, error) { return 0, nil }))
			return err
		}, "name is empty"},
		{"no implementation", func() error { _, err := NewTable(NewFunc[int, int]("x", nil)); return err }, "without an implementation"},
		{"runtime name without prefix", func() error { _, err := testFuncs.WithRuntime(add); return err }, "must start with arbor."},
		{"runtime name taken by a built-in", func() error {
			_, err := testFuncs.WithRuntime(NewFunc("arbor.ping", func(context.Context, int) (int, error) { return 0, nil }))
			return err
		}, "declared twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			var te *TableError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a TableError saying %q", err, tt.want)
			}
		})
	}

	withRuntime, err := testFuncs.WithRuntime(custom)
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := pair(t, transports[0], withRuntime, nil, nil)
	if v, err := custom.Call(context.Background(), parent, 0); err != nil || v != 7 {
		t.Fatalf("runtime function: %d, %v", v, err)
	}
	if v, err := add.Call(context.Background(), parent, addArgs{1, 2}); err != nil || v != 3 {
		t.Fatalf("user function in a runtime table: %d, %v", v, err)
	}
}

func TestCancelServed(t *testing.T) {
	running := make(chan struct{}, 3)
	wait := NewFunc("test.wait", func(ctx context.Context, _ struct{}) (int, error) {
		running <- struct{}{}
		<-ctx.Done()
		return 0, context.Cause(ctx)
	})
	parent, child := pair(t, transports[0], MustNewTable(wait, add), nil, nil)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := wait.Call(context.Background(), parent, struct{}{})
			errs <- err
		}()
	}
	for range 3 {
		<-running
	}
	stopping := errors.New("actor stopping")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := child.CancelServed(ctx, protocol.ActorID{}, stopping); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		err := <-errs
		var re *protocol.RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "actor stopping") {
			t.Fatalf("a drained call returned %v", err)
		}
	}
	if v, err := add.Call(context.Background(), parent, addArgs{2, 2}); err != nil || v != 4 {
		t.Fatalf("the channel does not serve after CancelServed: %d %v", v, err)
	}
}

// A call that has returned but cannot queue its result yet (the write
// queue is full) is still being served: CancelServed waits for it. Before,
// it returned at once, the actor closed the channel, and the result was
// lost (seen as a failure missing from a nursery that stopped a child).
func TestCancelServedWaitsForAResultStillBeingSent(t *testing.T) {
	big := make([]byte, MaxQueue+1)
	running, gate := make(chan struct{}, 3), make(chan struct{})
	fill := NewFunc("test.fill", func(context.Context, struct{}) ([]byte, error) {
		running <- struct{}{}
		<-gate
		return big, nil
	})
	p, ch := rawPair(t, false, MustNewTable(fill))
	for i := range 3 {
		p.send(&envelope.Start{CID: uint64(1 + 2*i), Function: "test.fill", FuncKind: protocol.FuncUnary, Args: protocol.Raw{0x80}})
	}
	for range 3 {
		<-running
	}
	// The peer reads nothing for now. The first result goes to the
	// writer, which blocks on the full socket; the second fills the
	// queue; the last waits for room.
	close(gate)
	within(t, 10*time.Second, "a result to wait for room", func() {
		for {
			ch.mu.Lock()
			waiting := len(ch.tasks) == 0 && len(ch.ending) > 0
			ch.mu.Unlock()
			if waiting {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ch.CancelServed(ctx, protocol.ActorID{}, errors.New("stopping")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CancelServed returned %v while a result was still unsent", err)
	}
	// Once the peer reads, every result arrives.
	got := map[uint64]bool{}
	for len(got) < 3 {
		switch m := p.recv().(type) {
		case *envelope.Return:
			if len(m.Value) < MaxQueue {
				t.Fatalf("result of %d: %d bytes", m.CID, len(m.Value))
			}
			got[m.CID] = true
		case *envelope.Error:
			t.Fatalf("call %d failed: %v", m.CID, m.Err)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ch.CancelServed(ctx, protocol.ActorID{}, errors.New("stopping")); err != nil {
		t.Fatal(err)
	}
}

func TestExplain(t *testing.T) {
	exited := errors.New("child exited with status 3")
	hang := NewFunc("test.hang", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	parent, child := pair(t, transports[0], MustNewTable(hang), nil, nil)
	parent.explain = func(cause error) error { return exited }
	errc := make(chan error, 1)
	go func() {
		_, err := hang.Call(context.Background(), parent, struct{}{})
		errc <- err
	}()
	eventually(t, 2*time.Second, "the call to arrive", func() bool {
		child.mu.Lock()
		defer child.mu.Unlock()
		return len(child.tasks) == 1
	})
	child.conn.Close()
	var err error
	within(t, 2*time.Second, "the pending call", func() { err = <-errc })
	var gone *PeerGoneError
	if !errors.As(err, &gone) || !errors.Is(err, exited) {
		t.Fatalf("got %v, want a PeerGoneError caused by the explanation", err)
	}
}
