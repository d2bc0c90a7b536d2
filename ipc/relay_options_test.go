package ipc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbor-go/arbor/protocol"
)

// TestViaNamesTheHops: on a channel whose bytes cross other actors
// (Options.Via), every error the peer sends has them in its relay path, in
// order, after the hops it had already; a channel without Via adds none.
func TestViaNamesTheHops(t *testing.T) {
	fails := NewFunc("t.fails", func(ctx context.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, errors.New("no")
	})
	hops := []protocol.ActorID{{Name: "root.mid", UUID: "u-mid"}, {Name: "root", UUID: "u-root"}}
	parent, _ := pair(t, transports[0], MustNewTable(fails), nil, func(o *Options) {
		if o.Initiator {
			o.Via = hops
		}
	})
	_, err := fails.Call(context.Background(), parent, struct{}{})
	var re *protocol.RemoteError
	if !errors.As(err, &re) || len(re.Relay) != 2 || re.Relay[0] != hops[0] || re.Relay[1] != hops[1] || re.Source.Name != "child" {
		t.Errorf("the error came as %+v; want from child, relayed through root.mid then root", re)
	}
	direct, _ := pair(t, transports[0], MustNewTable(fails), nil, nil)
	_, err = fails.Call(context.Background(), direct, struct{}{})
	if !errors.As(err, &re) || len(re.Relay) != 0 {
		t.Errorf("on a direct channel the error came with relay %v", re.Relay)
	}
}

// TestCancelServedSpares: the calls of a spared function go on through
// CancelServed, the others end cancelled; Close ends the spared ones.
func TestCancelServedSpares(t *testing.T) {
	started := make(chan string, 2)
	waits := func(name string) *Func[struct{}, struct{}] {
		return NewFunc(name, func(ctx context.Context, _ struct{}) (struct{}, error) {
			started <- name
			<-ctx.Done()
			return struct{}{}, ctx.Err()
		})
	}
	kept, cut := waits("t.kept"), waits("t.cut")
	parent, child := pair(t, transports[0], MustNewTable(kept, cut), nil, nil)
	ended := map[string]chan error{"t.kept": make(chan error, 1), "t.cut": make(chan error, 1)}
	for _, f := range []*Func[struct{}, struct{}]{kept, cut} {
		go func() { _, err := f.Call(context.Background(), parent, struct{}{}); ended[f.Name()] <- err }()
	}
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := child.CancelServed(ctx, protocol.ActorID{}, context.Canceled, "t.kept"); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the call not spared to end", func() {
		if err := <-ended["t.cut"]; !errors.Is(err, context.Canceled) {
			t.Errorf("the call not spared ended with %v", err)
		}
	})
	select {
	case err := <-ended["t.kept"]:
		t.Fatalf("the spared call ended: %v", err)
	default:
	}
	child.Close()
	within(t, 10*time.Second, "Close to end the spared call", func() { <-ended["t.kept"] })
}

// TestSessionWaitsWithABound: RecvContext and SendContext on both sides of
// a context return the bounding ctx's error when it ends first, and leave
// the session as it was: the next item still comes, and goes.
func TestSessionWaitsWithABound(t *testing.T) {
	gate := make(chan struct{})
	echo := NewContext("t.echo", func(ctx context.Context, _ struct{}, s *Session[struct{}, int, int]) (struct{}, error) {
		s.Started(struct{}{})
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := s.RecvContext(short); !errors.Is(err, context.DeadlineExceeded) {
			return struct{}{}, errors.New("the callee's bounded Recv did not end with its ctx")
		}
		close(gate)
		v, err := s.RecvContext(ctx)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, s.SendContext(ctx, v+1)
	})
	parent, _ := pair(t, transports[0], MustNewTable(echo), nil, nil)
	cc, err := echo.Open(context.Background(), parent, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	<-gate
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cc.SendContext(ctx, 41); err != nil {
		t.Fatal(err)
	}
	if v, err := cc.RecvContext(ctx); err != nil || v != 42 {
		t.Fatalf("the answer: %d, %v", v, err)
	}
	if _, err := cc.Result(); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := cc.SendContext(done, 1); err == nil {
		t.Error("SendContext with an ended ctx, on a call that has ended, succeeded")
	}
}
