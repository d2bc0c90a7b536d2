package ipc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// openBoth opens a channel on each end of a pipe pair at once.
func openBoth(t *testing.T, popts, copts Options) (parent, child *Channel, perr, cerr error) {
	t.Helper()
	a, b := pipePair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		child, cerr = Open(ctx, b, copts)
	}()
	parent, perr = Open(ctx, a, popts)
	<-done
	t.Cleanup(func() {
		if parent != nil {
			parent.Close()
		}
		if child != nil {
			child.Close()
		}
	})
	return parent, child, perr, cerr
}

// TestSpecInTheHello: a child that takes its identity from the parent's
// hello (ARBOR_SPEC=handshake, PROTOCOL.md §12.7) introduces itself with
// it; a child that does not expect one ignores it (a 1.2 peer).
func TestSpecInTheHello(t *testing.T) {
	spec, err := msgpack.Marshal(map[string]any{"actor": map[string]string{"name": "root.remote", "uuid": "u-remote"}})
	if err != nil {
		t.Fatal(err)
	}
	parentOpts := Options{Actor: protocol.ActorID{Name: "root", UUID: "u-root"}, Initiator: true, HelloSpec: spec}
	var seen protocol.Raw
	parent, child, perr, cerr := openBoth(t, parentOpts, Options{SpecFromHello: func(s protocol.Raw, o *Options) error {
		seen = append(protocol.Raw(nil), s...)
		var v struct {
			Actor protocol.ActorID `msgpack:"actor"`
		}
		err := msgpack.Unmarshal(s, &v)
		o.Actor, o.Heartbeat = v.Actor, time.Second
		return err
	}})
	if perr != nil || cerr != nil {
		t.Fatalf("open: parent %v, child %v", perr, cerr)
	}
	if string(seen) != string(spec) {
		t.Errorf("the child was given spec %x, want %x", seen, spec)
	}
	want := protocol.ActorID{Name: "root.remote", UUID: "u-remote"}
	if child.Self() != want || parent.Peer() != want || child.Peer().Name != "root" {
		t.Errorf("child %v, parent's peer %v, child's peer %v", child.Self(), parent.Peer(), child.Peer())
	}
	if child.beat != time.Second {
		t.Errorf("the heartbeat the spec set is %v", child.beat)
	}
	if err := Ping(context.Background(), parent); err != nil {
		t.Fatal(err)
	}
	if err := Ping(context.Background(), child); err != nil {
		t.Fatal(err)
	}

	// A responder that expects no spec ignores one.
	_, plain, perr, cerr := openBoth(t, parentOpts, Options{Actor: protocol.ActorID{Name: "plain", UUID: "u-plain"}})
	if perr != nil || cerr != nil || plain.Self().Name != "plain" {
		t.Fatalf("open without SpecFromHello: parent %v, child %v", perr, cerr)
	}
}

// TestSpecMissingFromTheHello: a child waiting for its spec, whose parent's
// hello carries none, fails its handshake saying so, and so does the parent.
func TestSpecMissingFromTheHello(t *testing.T) {
	_, _, perr, cerr := openBoth(t, Options{Actor: protocol.ActorID{Name: "root"}, Initiator: true},
		Options{SpecFromHello: func(_ protocol.Raw, o *Options) error { o.Actor = protocol.ActorID{Name: "x", UUID: "u"}; return nil }})
	var he *HandshakeError
	if !errors.As(cerr, &he) || !strings.Contains(cerr.Error(), "carries no spec") {
		t.Errorf("the child's handshake ended with %v", cerr)
	}
	if perr == nil {
		t.Error("the parent's handshake succeeded with a child that never said hello")
	}
}
