package ipc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

func TestDrain(t *testing.T) {
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
	if err := child.Drain(ctx, protocol.ActorID{}, stopping); err != nil {
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
		t.Fatalf("the channel does not serve after Drain: %d %v", v, err)
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
