package spawn

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/internal/vectortest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// sproutFar has parent start a child named name through the relay
// launcher (so that it has no peer socket, and only the tree reaches it),
// and returns its pid; the child lives until the test ends.
func sproutFar(t *testing.T, parent *Actor, name string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := sprout.Open(ctx, parent.Channel(), struct {
		Name     string
		Launched bool
	}{name, true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); s.Close() })
	pid, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// farThroughMid starts root.mid, which starts root.mid.far through the
// relay launcher, and dials far, relayed through mid; all of it ends with
// the test.
func farThroughMid(t *testing.T) (mid *Actor, farPID int, ch *ipc.Channel) {
	t.Helper()
	mid = start(t, Options{Name: "mid"})
	farPID = sproutFar(t, mid, "far")
	ch, err := Dial(context.Background(), "root.mid.far", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return mid, farPID, ch
}

// blockIn calls test.block on ch and returns once the actor serves it
// (calls are served in order of arrival: an echo after it has come back);
// the channel it returns gives the call's error.
func blockIn(t *testing.T, ch *ipc.Channel) <-chan error {
	t.Helper()
	blocked := make(chan error, 1)
	go func() { _, err := block.Call(context.Background(), ch, struct{}{}); blocked <- err }()
	if _, err := echo.Call(context.Background(), ch, "the block call is in"); err != nil {
		t.Fatal(err)
	}
	return blocked
}

func names(ids []protocol.ActorID) string {
	var out []string
	for _, id := range ids {
		out = append(out, id.Name)
	}
	return strings.Join(out, " ")
}

// TestRelayThroughTheTree: an actor reaches one that no socket reaches
// (across a launcher, below another branch) through the tree: left → root
// → mid → far. Calls, streams and who calls work as on a direct channel,
// and an error from far keeps its type and source, with a relay path that
// names each hop.
func TestRelayThroughTheTree(t *testing.T) {
	ctx := context.Background()
	left := start(t, Options{Name: "left"})
	mid := start(t, Options{Name: "mid"})
	sproutFar(t, mid, "far")
	if e, err := Find(ctx, "root.mid.far"); err != nil || e.Addr != "" {
		t.Fatalf("root.mid.far: %+v, %v; want an entry with no peer socket", e, err)
	}
	do := func(op, arg string) (string, error) {
		return peerDo.Call(ctx, left.Channel(), struct{ Name, Op, Arg string }{"root.mid.far", op, arg})
	}
	if who, err := do("who", ""); err != nil || who != "root.left" {
		t.Errorf("far saw its caller as %q, %v; want root.left", who, err)
	}
	if sum, err := do("count", "5000"); err != nil || sum != strconv.Itoa(4999*5000/2) {
		t.Errorf("a stream through the relay summed to %s, %v", sum, err)
	}
	_, err := do("fail", "boom")
	var re *protocol.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("far's failure came back as %v (%T)", err, err)
	}
	if re.Message != "boom" || re.Type != "*errors.errorString" || re.Source.Name != "root.mid.far" {
		t.Errorf("far's failure: message %q, type %q, source %s; want boom, *errors.errorString, root.mid.far", re.Message, re.Type, re.Source.Name)
	}
	if got, want := names(re.Relay), "root.mid root root.left"; got != want {
		t.Errorf("far's failure was relayed through %q; want %q", got, want)
	}

	// The root reaches far too, through mid alone.
	ch, err := Dial(ctx, "root.mid.far", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = fail.Call(ctx, ch, "again")
	if !errors.As(err, &re) || names(re.Relay) != "root.mid" {
		t.Errorf("the root's call failed with %v, relayed through %q; want root.mid", err, names(re.Relay))
	}
	if got, err := echo.Call(ctx, ch, "after the failure"); err != nil || got != "after the failure" {
		t.Errorf("a call after the failed one: %q, %v", got, err)
	}
}

// TestRelayedCancellation: a call through a relay whose caller gives up is
// cancelled at the far end; a sibling that stops the far actor by name
// through the relay ends every call to it with an error naming the
// sibling, and the far actor leaves the tree.
func TestRelayedCancellation(t *testing.T) {
	ctx := context.Background()
	left := start(t, Options{Name: "left"})
	_, farPID, ch := farThroughMid(t)

	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := block.Call(cctx, ch, struct{}{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a relayed call past its deadline: %v", err)
	}
	if got, err := echo.Call(ctx, ch, "still here"); err != nil || got != "still here" {
		t.Fatalf("after the cancelled call: %q, %v", got, err)
	}

	blocked := blockIn(t, ch)
	if _, err := stopPeer.Call(ctx, left.Channel(), "root.mid.far"); err != nil {
		t.Fatal(err)
	}
	var re *protocol.RemoteError
	select {
	case err := <-blocked:
		if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Canceller.Name != "root.left" {
			t.Errorf("the stopped actor's call ended with %v, want a cancellation by root.left", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stopped actor's call did not end")
	}
	within(t, 20*time.Second, "the relayed channel to end", func() { <-ch.Done() })
	proctest.Eventually(t, 20*time.Second, "far to exit", func() bool { return !alive(farPID) })
	proctest.Eventually(t, 20*time.Second, "far to leave the registry", func() bool {
		_, err := Find(ctx, "root.mid.far")
		return errors.Is(err, ErrNotFound)
	})
}

// TestRelayHopKilled: a hop of a relay killed with SIGKILL ends the
// relayed channel with an error that says which hop went, next to the
// dialer or further on, and the far actor below it is torn down.
func TestRelayHopKilled(t *testing.T) {
	ctx := context.Background()
	t.Run("next hop", func(t *testing.T) {
		mid, farPID, ch := farThroughMid(t)
		blocked := blockIn(t, ch)
		syscall.Kill(mid.PID(), syscall.SIGKILL)
		hopLost(t, blocked, "root.mid.far", "actor root.mid (pid "+strconv.Itoa(mid.PID())+") killed by signal killed")
		proctest.Eventually(t, 20*time.Second, "far to exit", func() bool { return !alive(farPID) })
	})
	t.Run("further on", func(t *testing.T) {
		left := start(t, Options{Name: "left"})
		mid := start(t, Options{Name: "mid"})
		farPID := sproutFar(t, mid, "far")
		marker := t.TempDir() + "/connected"
		blocked := make(chan error, 1)
		go func() {
			_, err := peerDo.Call(ctx, left.Channel(), struct{ Name, Op, Arg string }{"root.mid.far", "block", marker})
			blocked <- err
		}()
		proctest.Eventually(t, 20*time.Second, "left to reach far", func() bool { _, err := os.Stat(marker); return err == nil })
		syscall.Kill(mid.PID(), syscall.SIGKILL)
		// The root saw mid go; left, whose relay the root carried, passed
		// that on.
		err := hopLost(t, blocked, "root", "actor root.mid (pid "+strconv.Itoa(mid.PID())+") killed by signal killed")
		var re *protocol.RemoteError
		if errors.As(err, &re) && (re.Type != "*ipc.PeerGoneError" || names(re.Relay) != "root.left") {
			t.Errorf("left's call failed with a %s relayed through %q; want the root's *ipc.PeerGoneError, through root.left", re.Type, names(re.Relay))
		}
		proctest.Eventually(t, 20*time.Second, "far to exit", func() bool { return !alive(farPID) })
	})
}

// TestRelayDialerKilled: a dialer SIGKILLed with a call open through a
// relay: the hops end the relay, the far actor's call is cancelled (it
// runs its cleanup) and the far actor goes on serving.
func TestRelayDialerKilled(t *testing.T) {
	ctx := context.Background()
	left := start(t, Options{Name: "left"})
	_, farPID, ch := farThroughMid(t)
	marker := t.TempDir() + "/linger"
	go peerDo.Call(ctx, left.Channel(), struct{ Name, Op, Arg string }{"root.mid.far", "linger", marker})
	proctest.Eventually(t, 20*time.Second, "far to serve left's call", func() bool { _, err := os.Stat(marker + ".up"); return err == nil })
	syscall.Kill(left.PID(), syscall.SIGKILL)
	proctest.Eventually(t, 20*time.Second, "far's call to be cancelled", func() bool { _, err := os.Stat(marker); return err == nil })
	if !alive(farPID) {
		t.Fatal("far exited with its dialer")
	}
	if got, err := echo.Call(ctx, ch, "still serving"); err != nil || got != "still serving" {
		t.Errorf("far after its dialer's death: %q, %v", got, err)
	}
}

// hopLost waits for the error of a call through a relay that a lost hop
// ended, and checks it: from source (a *ipc.PeerGoneError here, or a
// remote error from the actor that saw the hop go), saying why.
func hopLost(t *testing.T, blocked <-chan error, source, why string) error {
	t.Helper()
	select {
	case err := <-blocked:
		t.Logf("the relayed call ended with: %v", err)
		var gone *ipc.PeerGoneError
		var re *protocol.RemoteError
		fromSource := errors.As(err, &gone) && source == "root.mid.far" || errors.As(err, &re) && re.Source.Name == source
		if !fromSource || !strings.Contains(err.Error(), why) {
			t.Errorf("the relayed call ended with %v; want the relay lost, from %s, saying %q", err, source, why)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the relayed call did not end")
	}
	return nil
}

// TestRelayVector: arbor.relay's args, started value and items on the wire
// are those of the golden vectors start-relay, started-relay and
// yield-relay (PROTOCOL.md §13.3), encoded as ipc encodes payloads.
func TestRelayVector(t *testing.T) {
	root := protocol.ActorID{Name: "root", UUID: "0f8e6a52-3c1d-4b7a-9e21-5d4c3b2a1908"}
	pool := protocol.ActorID{Name: "root.pool", UUID: "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}
	for _, c := range []struct {
		vector, field string
		value         any
	}{
		{"start-relay", "args", relayArgs{To: "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f", Name: "root.pool.worker-1", Hops: []protocol.ActorID{root}}},
		{"started-relay", "v", relayStarted{Hops: []protocol.ActorID{root, pool}}},
		{"yield-relay", "v", []byte{0, 0, 0, 0x3c}},
	} {
		want := vectortest.Payload(t, c.vector, c.field)
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true) // as ipc's payloads
		if err := enc.Encode(c.value); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: Go encodes\n%x\nthe vector holds\n%x", c.vector, buf.Bytes(), want)
		}
	}
}

// TestRelayHopStopKeepsAnswers: an actor a relay passes through that is
// stopped stops the actor the relay leads to first, as a parent does, and
// that actor's answers come back through the relay: the call ends with far's
// own cancellation, not with the relay cut under it.
func TestRelayHopStopKeepsAnswers(t *testing.T) {
	ctx := context.Background()
	mid, _, ch := farThroughMid(t)
	blocked := blockIn(t, ch)
	stopped := make(chan error, 1)
	go func() { stopped <- mid.Stop(ctx) }()
	select {
	case err := <-blocked:
		var re *protocol.RemoteError
		if !errors.As(err, &re) || re.Code != protocol.CodeCancelled || re.Source.Name != "root.mid.far" || names(re.Relay) != "root.mid" {
			t.Errorf("the call ended with %T %v; want far's own cancellation, relayed through root.mid", err, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end")
	}
	within(t, 20*time.Second, "mid to stop", func() { <-stopped })
}

// TestTunnelWriteBounds: a write to a relay that grants no credit ends at
// the write deadline, as on a socket, and at Close, so that neither a
// channel's StallTimeout nor its Close can be held by a frozen peer.
func TestTunnelWriteBounds(t *testing.T) {
	blocked := func(ctx context.Context, _ []byte) error { <-ctx.Done(); return context.Cause(ctx) }
	recv := func(ctx context.Context) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }
	tn := newTunnel(blocked, recv, func() error { return nil }, nil)
	tn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var err error
	within(t, 10*time.Second, "a write past its deadline", func() { _, err = tn.Write([]byte("x")) })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a write past its deadline: %v", err)
	}
	tn.SetWriteDeadline(time.Time{})
	wrote := make(chan error, 1)
	go func() { _, err := tn.Write([]byte("y")); wrote <- err }()
	within(t, 10*time.Second, "Close, with a write waiting", func() { tn.Close() })
	within(t, 10*time.Second, "the waiting write to fail", func() { err = <-wrote })
	if err == nil {
		t.Error("a write waiting at Close succeeded")
	}
	// After Close, whatever deadline is set, writes fail at once.
	tn.SetWriteDeadline(time.Time{})
	within(t, 10*time.Second, "a write after Close", func() { _, err = tn.Write([]byte("z")) })
	if err == nil {
		t.Error("a write after Close succeeded")
	}
}

// pipePair opens a channel over net.Pipe: a is the initiator, b serves
// funcs.
func pipePair(t *testing.T, funcs *ipc.Table) (a, b *ipc.Channel) {
	t.Helper()
	ca, cb := net.Pipe()
	errs := make(chan error, 1)
	go func() {
		var err error
		b, err = ipc.Open(context.Background(), cb, ipc.Options{Actor: protocol.ActorID{Name: "b"}, Functions: funcs})
		errs <- err
	}()
	a, err := ipc.Open(context.Background(), ca, ipc.Options{Actor: protocol.ActorID{Name: "a"}, Initiator: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// relayCall is a relay's call as the dialer holds it.
type relayCall = ipc.ContextCall[relayStarted, []byte, []byte, struct{}]

// throughAHop opens target, over in-memory channels, through a hop that
// relays to it with pass, as an actor between the two does; the call ends
// with the test.
func throughAHop(t *testing.T, target *ipc.Context[struct{}, relayStarted, []byte, []byte, struct{}]) *relayCall {
	t.Helper()
	toTarget, _ := pipePair(t, ipc.MustNewTable(target))
	hop := ipc.NewContext("t.hop", func(ctx context.Context, _ struct{}, s *ipc.Session[relayStarted, []byte, []byte]) (struct{}, error) {
		on, err := target.Open(ctx, toTarget, struct{}{})
		if err != nil {
			return struct{}{}, err
		}
		defer on.Close()
		s.Started(on.Started())
		return struct{}{}, pass(s, on)
	})
	dialer, _ := pipePair(t, ipc.MustNewTable(hop))
	c, err := hop.Open(context.Background(), dialer, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRelayKeepsTheReturn: a far side that returns while the hop's
// forward direction waits for its credit ends the relay with its return,
// not with the forward's failed send.
func TestRelayKeepsTheReturn(t *testing.T) {
	full := make(chan struct{}) // the hop's forward is waiting for the target's credit
	target := ipc.NewContext("t.target", func(ctx context.Context, _ struct{}, s *ipc.Session[relayStarted, []byte, []byte]) (struct{}, error) {
		s.Started(relayStarted{})
		<-full // reads nothing until then
		return struct{}{}, nil
	})
	c := throughAHop(t, target)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		// The target's credit is a window of items, and the hop grants
		// the dialer a window more once it has taken one: with two sent,
		// the forward holds more than the target takes, and waits.
		for i := range 3 * ipc.DefaultWindow {
			if c.Send([]byte("0123456789")) != nil {
				return // the relay has ended
			}
			if i == 2*ipc.DefaultWindow-1 {
				close(full)
			}
		}
	}()
	var err error
	within(t, 20*time.Second, "the relay's result", func() { _, err = c.Result() })
	<-sent
	if err != nil {
		t.Errorf("the target returned, but the relay's result is %v", err)
	}
}

// TestRelaySlowConsumer: a stream through a relay whose consumer stops
// reading holds only its own credit: other calls on the relayed channel,
// and on the tree's channels the relay crosses, go on; then the stream
// resumes where it stopped and loses nothing.
func TestRelaySlowConsumer(t *testing.T) {
	ctx := context.Background()
	mid, _, ch := farThroughMid(t)
	const n = 100000
	s, err := count.Open(ctx, ch, n)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Recv(); err != nil || v != 0 {
		t.Fatalf("the first item: %d, %v", v, err)
	}
	// Not reading the stream: far sends until its credit is spent.
	for i := range 50 {
		if got, err := echo.Call(ctx, ch, "beside the stream"); err != nil || got != "beside the stream" {
			t.Fatalf("call %d on the relayed channel, its stream unread: %q, %v", i, got, err)
		}
		if _, err := echo.Call(ctx, mid.Channel(), "on the tree"); err != nil {
			t.Fatalf("call %d to the hop, the relay through it unread: %v", i, err)
		}
	}
	sum := 0
	for v, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	if want := (n - 1) * n / 2; sum != want {
		t.Errorf("the rest of the stream summed to %d, want %d", sum, want)
	}
}

// TestRelayRefusesABigItem: an item past relayChunk, from either end,
// fails the relay at the hop, which says why and cancels the other end's
// call.
func TestRelayRefusesABigItem(t *testing.T) {
	for _, fromTarget := range []bool{false, true} {
		t.Run(map[bool]string{false: "from the dialer", true: "from the target"}[fromTarget], func(t *testing.T) {
			cancelled := make(chan error, 1)
			target := ipc.NewContext("t.target", func(ctx context.Context, _ struct{}, s *ipc.Session[relayStarted, []byte, []byte]) (struct{}, error) {
				s.Started(relayStarted{})
				if fromTarget {
					s.Send(make([]byte, relayChunk+1))
				}
				<-ctx.Done()
				cancelled <- context.Cause(ctx)
				return struct{}{}, ctx.Err()
			})
			c := throughAHop(t, target)
			if !fromTarget {
				c.Send(make([]byte, relayChunk+1))
			}
			var err error
			within(t, 20*time.Second, "the relay's result", func() { _, err = c.Result() })
			if err == nil || !strings.Contains(err.Error(), "past the bound") {
				t.Errorf("the relay ended with %v; want the item refused", err)
			}
			within(t, 20*time.Second, "the target's call to be cancelled", func() { <-cancelled })
		})
	}
}
