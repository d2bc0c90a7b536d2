package nursery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

func TestRunInActorReturnsAValue(t *testing.T) {
	var r *Result[int]
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		var err error
		r, err = RunInActor(n, square, 7, spawn.Options{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Wait(context.Background())
	if err != nil || v != 49 {
		t.Fatalf("got %d, %v", v, err)
	}
	noChildrenLeft(t)
}

func TestChildErrorStopsSiblings(t *testing.T) {
	var daemonDone <-chan struct{}
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		d, err := n.StartActor(spawn.Options{Name: "daemon"})
		if err != nil {
			return err
		}
		daemonDone = d.Done()
		_, err = RunInActor(n, fail, "sda1", spawn.Options{Name: "writer"})
		return err
	})
	var nerr *Error
	if !errors.As(err, &nerr) || len(nerr.Failures) != 1 {
		t.Fatalf("got %s", describe(err))
	}
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Type != "*nursery.DiskFullError" || re.Message != "disk sda1 is full" || re.Source.Name != "root.writer" {
		t.Fatalf("remote error lost detail: %+v", re)
	}
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Actor.Name != "root.writer" {
		t.Fatalf("the failure does not name its actor: %s", describe(err))
	}
	select {
	case <-daemonDone:
	default:
		t.Fatal("the sibling daemon outlived the nursery")
	}
	noChildrenLeft(t)
}

func TestWrongArgumentType(t *testing.T) {
	wrong := ipcFunc[string, int]("test.square")
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		_, err := RunInActor(n, wrong, "seven", spawn.Options{})
		return err
	})
	if !errors.Is(err, protocol.ErrBadArgument) || !strings.Contains(err.Error(), "want Go type int") {
		t.Fatalf("got %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestManyFailuresAreEachReportedOnce(t *testing.T) {
	const children = 25
	results := make([]*Result[int], 0, children)
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		for i := range children {
			r, err := RunInActor(n, fail, "disk"+string(rune('a'+i)), spawn.Options{})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		return nil
	})
	var nerr *Error
	if !errors.As(err, &nerr) {
		t.Fatalf("got %s", describe(err))
	}
	// Every child either failed on its own (and is listed once) or was
	// cancelled by the first failure before it ran (and is not listed).
	seen := map[string]bool{}
	for _, f := range nerr.Failures {
		var ae *ActorError
		var de *protocol.RemoteError
		if !errors.As(f, &ae) || !errors.As(f, &de) || !strings.Contains(de.Message, "is full") {
			t.Fatalf("a failure that is not a child's own error: %s", describe(f))
		}
		if seen[ae.Actor.UUID] {
			t.Fatalf("actor %s listed twice", ae.Actor)
		}
		seen[ae.Actor.UUID] = true
	}
	failed, cancelled := 0, 0
	for _, r := range results {
		_, err := r.Wait(context.Background())
		var re *protocol.RemoteError
		switch {
		case errors.As(err, &re) && strings.Contains(re.Message, "is full"):
			failed++
		case err != nil:
			cancelled++
		default:
			t.Fatal("a failing child succeeded")
		}
	}
	if failed != len(nerr.Failures) || failed+cancelled != children || failed == 0 {
		t.Fatalf("%d listed, %d failed, %d cancelled, of %d", len(nerr.Failures), failed, cancelled, children)
	}
	t.Logf("%d children failed on their own, %d were cancelled first", failed, cancelled)
	noChildrenLeft(t)
}

func TestChildrenFailingToStartAreEachAFailure(t *testing.T) {
	// Children that cannot start fail on their own, whatever the nursery
	// is doing: all 25 are listed once each, though the first failure
	// cancels the nursery while the body is still starting the others.
	const children = 25
	accepted, refused := 0, 0
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		for i := range children {
			_, err := RunInActor(n, fail, "x", spawn.Options{Name: fmt.Sprint("c", i), Binary: "/nonexistent/arbor-worker"})
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrClosed):
				refused++
			default:
				return err
			}
		}
		return nil
	})
	var nerr *Error
	if !errors.As(err, &nerr) || len(nerr.Failures) != children || accepted != children {
		t.Fatalf("%d accepted, %d refused: %s", accepted, refused, describe(err))
	}
	names := map[string]bool{}
	for _, f := range nerr.Failures {
		var ae *ActorError
		var se *spawn.StartError
		if !errors.As(f, &ae) || !errors.As(f, &se) || !strings.Contains(f.Error(), "no such file") {
			t.Fatalf("failure %s", describe(f))
		}
		names[ae.Actor.Name] = true
	}
	if len(names) != accepted {
		t.Fatalf("%d distinct actors among %d failures", len(names), accepted)
	}
	t.Logf("%d children accepted and failed, %d refused after the first failure", accepted, refused)
}

func TestFailureCancelsAStreamAtOnce(t *testing.T) {
	var streamEnded, bodyReturned atomic.Int64
	begin := time.Now()
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		d, err := n.StartActor(spawn.Options{Name: "streamer"})
		if err != nil {
			return err
		}
		if _, err := RunInActor(n, fail, "sdb", spawn.Options{}); err != nil {
			return err
		}
		s, err := endless.Open(ctx, d.Channel(), struct{}{})
		if err != nil {
			return err
		}
		for _, err := range s.All() {
			if err != nil {
				break
			}
		}
		streamEnded.Store(int64(time.Since(begin)))
		// The body lingers: the stream must have ended before this.
		time.Sleep(300 * time.Millisecond)
		bodyReturned.Store(int64(time.Since(begin)))
		return ctx.Err()
	})
	if !errors.As(err, new(*Error)) || strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("want only the child's failure, got %s", describe(err))
	}
	if streamEnded.Load() == 0 || streamEnded.Load() >= bodyReturned.Load() {
		t.Fatalf("the stream was not cancelled before the body returned")
	}
	noChildrenLeft(t)
}

func TestBodyErrorStopsEveryChild(t *testing.T) {
	bodyErr := errors.New("the body gave up")
	var watched *Result[string]
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		if _, err := n.StartActor(spawn.Options{}); err != nil {
			return err
		}
		var err error
		if watched, err = RunInActor(n, watch, struct{}{}, spawn.Options{}); err != nil {
			return err
		}
		return bodyErr
	})
	var nerr *Error
	if !errors.As(err, &nerr) || len(nerr.Failures) != 1 || !errors.Is(err, bodyErr) {
		t.Fatalf("got %s", describe(err))
	}
	if _, werr := watched.Wait(context.Background()); !errors.Is(werr, context.Canceled) {
		t.Fatalf("the running function was not cancelled: %s", describe(werr))
	}
	noChildrenLeft(t)
}

func TestTreeErrorShowsItsPath(t *testing.T) {
	begin := time.Now()
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		_, err := RunInActor(n, tree, treeArgs{Depth: 2, Breadth: 2, Path: "t", Failing: "t.1.0"}, spawn.Options{Name: "top"})
		return err
	})
	t.Logf("a depth-3 tree failed and was torn down in %v", time.Since(begin))
	var re *protocol.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("got %s", describe(err))
	}
	if re.Message != "leaf t.1.0 failed" || re.Source.Name != "root.top.n1.n0" {
		t.Fatalf("source %s, message %q", re.Source.Name, re.Message)
	}
	var relay []string
	for _, a := range re.Relay {
		relay = append(relay, a.Name)
	}
	if strings.Join(relay, " ") != "root.top.n1 root.top" {
		t.Fatalf("relay path %v", relay)
	}
	noChildrenLeft(t)
}

func TestWedgedChildIsKilled(t *testing.T) {
	grace, kill := 200*time.Millisecond, 200*time.Millisecond
	var failedAt time.Time
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "wedged"})
		if err != nil {
			return err
		}
		s, err := wedged.Open(ctx, a.Channel(), struct{}{})
		if err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil { // it is in the system call now
			return err
		}
		failedAt = time.Now()
		r, err := RunInActor(n, fail, "sdc", spawn.Options{})
		if err != nil {
			return err
		}
		r.Wait(context.Background())
		return nil
	}, WithDefaults(spawn.Options{GracePeriod: grace, KillDelay: kill}))
	took := time.Since(failedAt)
	if !errors.As(err, new(*Error)) {
		t.Fatalf("got %s", describe(err))
	}
	t.Logf("returned %v after the failing child started (grace %v + kill delay %v)", took, grace, kill)
	if took < grace {
		t.Fatalf("the wedged actor cannot have been killed before its grace period: %v", took)
	}
	noChildrenLeft(t)
}

func TestWedgedGrandchildIsKilledThroughItsParent(t *testing.T) {
	const ms = 200
	var grandchild int
	var failedAt time.Time
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		mid, err := n.StartActor(spawn.Options{Name: "middle"})
		if err != nil {
			return err
		}
		s, err := holdWedged.Open(ctx, mid.Channel(), ms)
		if err != nil {
			return err
		}
		if grandchild, err = s.Recv(); err != nil {
			return err
		}
		failedAt = time.Now()
		r, err := RunInActor(n, fail, "sdd", spawn.Options{})
		if err != nil {
			return err
		}
		r.Wait(context.Background())
		return nil
	}, WithDefaults(spawn.Options{GracePeriod: ms * time.Millisecond, KillDelay: ms * time.Millisecond}))
	took := time.Since(failedAt)
	if !errors.As(err, new(*Error)) {
		t.Fatalf("got %s", describe(err))
	}
	t.Logf("returned %v after the failure (grace and kill delay %d ms at each level)", took, ms)
	if limit := 2*ms*time.Millisecond + 5*time.Second; took > limit {
		t.Fatalf("took %v: the escalation did not bound the teardown (%v)", took, limit)
	}
	deadline := time.Now().Add(2 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			t.Fatalf("the wedged grandchild %d is still alive", grandchild)
		}
		time.Sleep(5 * time.Millisecond)
	}
	noChildrenLeft(t)
}

func TestContextRoundTrips(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{})
		if err != nil {
			return err
		}
		cc, err := pingpong.Open(ctx, a.Channel(), "hi")
		if err != nil {
			return err
		}
		if cc.Started() != "hi ready" {
			t.Errorf("started %q", cc.Started())
		}
		for i := range 10 {
			if err := cc.Send(i); err != nil {
				return err
			}
			if v, err := cc.Recv(); err != nil || v != 2*i {
				t.Errorf("round %d: %d %v", i, v, err)
			}
		}
		cc.CloseSend()
		if _, err := cc.Recv(); err != io.EOF {
			t.Errorf("after CloseSend: %v", err)
		}
		total, err := cc.Result()
		if err != nil || total != 10 {
			t.Errorf("result %d %v", total, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	noChildrenLeft(t)
}

// cancelOneRemote runs cancel on a daemon actor, and checks that the remote
// task noted its cancellation and who asked for it, and that the actor
// then serves the next call. cancel returns the cancelled call's error.
func cancelOneRemote(t *testing.T, cancel func(ctx context.Context, a *spawn.Actor, note string) error) {
	t.Helper()
	note := filepath.Join(t.TempDir(), "note")
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{})
		if err != nil {
			return err
		}
		if err := cancel(ctx, a, note); !errors.Is(err, context.Canceled) {
			t.Errorf("the cancelled call returned %s", describe(err))
		}
		if b, err := os.ReadFile(note); err != nil || !strings.Contains(string(b), "cancelled by actor root") {
			t.Errorf("the remote task noted %q, %v", b, err)
		}
		if v, err := square.Call(ctx, a.Channel(), 3); err != nil || v != 9 {
			t.Errorf("the actor does not serve the next call: %d %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	noChildrenLeft(t)
}

func TestCancelOneRemoteCall(t *testing.T) {
	cancelOneRemote(t, func(ctx context.Context, a *spawn.Actor, note string) error {
		callCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := noteCancel.Call(callCtx, a.Channel(), note)
		return err
	})
}

// TestCancellerCrossesTheTree: the root cancels a call to a middle actor,
// whose nursery cancels its own call to a leaf. The leaf names the root as
// its canceller, not the middle actor that passed the cancellation on
// (arbor.cancel's "by", PROTOCOL.md §9).
func TestCancellerCrossesTheTree(t *testing.T) {
	note := filepath.Join(t.TempDir(), "note")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Open(ctx, func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "middle"})
		if err != nil {
			return err
		}
		callCtx, cancelCall := context.WithCancel(ctx)
		defer cancelCall()
		done := make(chan error, 1)
		go func() { _, err := relayCancel.Call(callCtx, a.Channel(), note); done <- err }()
		proctest.Eventually(t, 20*time.Second, "the leaf to start", func() bool { _, err := os.Stat(note + ".up"); return err == nil })
		cancelCall()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("the cancelled call returned %s", describe(err))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(note)
	if err != nil {
		t.Fatalf("the leaf noted nothing: %v", err)
	}
	if got := string(b); got != "root" {
		t.Errorf("the leaf's canceller is %q, want the root", got)
	}
	noChildrenLeft(t)
}

func TestRemoteSelfCancel(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		_, err := RunInActor(n, selfCancel, struct{}{}, spawn.Options{Name: "quitter"})
		return err
	})
	var re *protocol.RemoteError
	if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Canceller.Name != "root.quitter" {
		t.Fatalf("got %s (%+v)", describe(err), re)
	}
	noChildrenLeft(t)
}

func TestPipeline(t *testing.T) {
	const count = 1000
	next := [2]int{}
	got := 0
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		agg, err := n.StartActor(spawn.Options{Name: "aggregator"})
		if err != nil {
			return err
		}
		s, err := merge.Open(ctx, agg.Channel(), count)
		if err != nil {
			return err
		}
		for it, err := range s.All() {
			if err != nil {
				return err
			}
			if it[1] != next[it[0]] {
				t.Errorf("source %d: got %d, want %d", it[0], it[1], next[it[0]])
			}
			next[it[0]]++
			got++
		}
		return nil
	})
	if err != nil || got != 2*count {
		t.Fatalf("received %d of %d: %v", got, 2*count, err)
	}
	noChildrenLeft(t)
}

func TestDaemonsStopGracefullyWhenTheBodyEnds(t *testing.T) {
	var watched error
	done := make(chan struct{})
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{})
		if err != nil {
			return err
		}
		// The daemon is busy when the body returns; its function must see
		// the stop as a cancellation.
		go func() {
			defer close(done)
			_, watched = watch.Call(context.WithoutCancel(ctx), a.Channel(), struct{}{})
		}()
		if _, err := square.Call(ctx, a.Channel(), 1); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	var re *protocol.RemoteError
	if !errors.As(watched, &re) || !errors.Is(watched, context.Canceled) || !strings.Contains(re.Message, "stopped by its parent") ||
		re.Canceller.Name != "root" {
		t.Fatalf("the daemon's function saw %s", describe(watched))
	}
	noChildrenLeft(t)
}

func TestParentCtxCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Open(ctx, func(ctx context.Context, n *Nursery) error {
		if _, err := RunInActor(n, watch, struct{}{}, spawn.Options{}); err != nil {
			return err
		}
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestDaemonExitingOnItsOwnIsAFailure(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		d, err := n.StartActor(spawn.Options{Name: "quitter"})
		if err != nil {
			return err
		}
		_, err = exitNow.Call(ctx, d.Channel(), 3)
		return err // the call's error and the daemon's exit are one failure
	})
	var nerr *Error
	var exit *spawn.ExitError
	if !errors.As(err, &nerr) || len(nerr.Failures) != 1 || !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("got %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestStoppingYourOwnDaemonIsNotAFailure(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		d, err := n.StartActor(spawn.Options{})
		if err != nil {
			return err
		}
		return d.Stop(ctx)
	})
	if err != nil {
		t.Fatalf("got %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestCancelIsNotAFailure(t *testing.T) {
	var r *Result[string]
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		var err error
		if r, err = RunInActor(n, watch, struct{}{}, spawn.Options{}); err != nil {
			return err
		}
		n.Cancel()
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatalf("got %s", describe(err))
	}
	if _, err := r.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("the running function: %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestBodyPanicStopsEverything(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		if _, err := n.StartActor(spawn.Options{}); err != nil {
			return err
		}
		panic("body bug")
	})
	if !errors.As(err, new(*Error)) || !strings.Contains(err.Error(), "panicked: body bug") {
		t.Fatalf("got %s", describe(err))
	}
	noChildrenLeft(t)
}

func TestWaitOnTheBodyCtxSeesTheChildsError(t *testing.T) {
	var waited error
	Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		r, err := RunInActor(n, fail, "sde", spawn.Options{})
		if err != nil {
			return err
		}
		_, waited = r.Wait(ctx)
		return waited
	})
	var re *protocol.RemoteError
	if !errors.As(waited, &re) || re.Message != "disk sde is full" {
		t.Fatalf("Wait returned %s", describe(waited))
	}
	noChildrenLeft(t)
}

func TestParentCancelIsNotAFailure(t *testing.T) {
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		err := Open(ctx, func(ctx context.Context, n *Nursery) error {
			if _, err := RunInActor(n, watch, struct{}{}, spawn.Options{}); err != nil {
				return err
			}
			cancel()
			return ctx.Err()
		})
		if err != context.Canceled {
			t.Fatalf("got %s, want the bare ctx error", describe(err))
		}
	}
	noChildrenLeft(t)
}

func TestGoexitInTheBodyLeavesNoActor(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		err = Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			if _, err := n.StartActor(spawn.Options{}); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	var err error
	within(t, 10*time.Second, "Open", func() { err = <-done })
	_ = err // Goexit unwinds past Open's return; what matters is the cleanup
	noChildrenLeft(t)
}

func TestStartActorRacingTheBodysReturn(t *testing.T) {
	for range 3 {
		started := make(chan error, 1)
		within(t, 10*time.Second, "Open", func() {
			Open(context.Background(), func(ctx context.Context, n *Nursery) error {
				going := make(chan struct{})
				go func() {
					close(going)
					_, err := n.StartActor(spawn.Options{})
					started <- err
				}()
				<-going
				return nil // while StartActor is starting its actor
			})
		})
		<-started // ErrClosed, or an actor that Open stopped
		noChildrenLeft(t)
	}
}

func TestMiddleActorKilled(t *testing.T) {
	var grandchild int
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		mid, err := n.StartActor(spawn.Options{Name: "middle"})
		if err != nil {
			return err
		}
		s, err := holdWedged.Open(ctx, mid.Channel(), 100)
		if err != nil {
			return err
		}
		if grandchild, err = s.Recv(); err != nil {
			return err
		}
		syscall.Kill(mid.PID(), syscall.SIGKILL)
		_, err = s.Recv() // fails: its producer is gone
		return err
	})
	var nerr *Error
	var exit *spawn.ExitError
	if !errors.As(err, &nerr) || len(nerr.Failures) != 1 || !errors.As(err, &exit) || exit.Signal != syscall.SIGKILL {
		t.Fatalf("want one failure, the middle actor's death: %s", describe(err))
	}
	deadline := time.Now().Add(2 * time.Second)
	for alive(grandchild) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d outlived its killed parent", grandchild)
		}
		time.Sleep(5 * time.Millisecond)
	}
	noChildrenLeft(t)
}

func TestCancelOneRemoteContext(t *testing.T) {
	cancelOneRemote(t, func(ctx context.Context, a *spawn.Actor, note string) error {
		callCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		cc, err := noteCancelCtx.Open(callCtx, a.Channel(), note)
		if err != nil {
			return err
		}
		cancel()
		_, err = cc.Result()
		return err
	})
}

// A child given Args but no Binary (this program again, with arguments)
// gets them, under a nursery with defaults of its own.
func TestRunInActorKeepsArgs(t *testing.T) {
	var got []string
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		r, err := RunInActor(n, childArgs, struct{}{}, spawn.Options{Args: []string{"--flag"}})
		if err != nil {
			return err
		}
		got, err = r.Wait(ctx)
		return err
	}, WithDefaults(spawn.Options{GracePeriod: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "--flag" {
		t.Fatalf("the child got arguments %q, want [--flag]", got)
	}
	noChildrenLeft(t)
}

// A failing actor is named once in the nursery's error, not again by each
// wrapper (issue 10, item 5).
func TestActorNamedOnce(t *testing.T) {
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		_, err := RunInActor(n, fail, "sda1", spawn.Options{Name: "jobs"})
		return err
	})
	var ae *ActorError
	if !errors.As(err, &ae) {
		t.Fatalf("got %s", describe(err))
	}
	if c := strings.Count(err.Error(), ae.Actor.String()); c != 1 {
		t.Fatalf("the actor is named %d times in %q", c, err.Error())
	}
	// An error that does not name the actor gets its name.
	plain := &ActorError{Actor: ae.Actor, Err: errors.New("disk full")}
	if plain.Error() != "actor "+ae.Actor.String()+": disk full" {
		t.Fatalf("%q", plain.Error())
	}
	noChildrenLeft(t)
}

// A stream producer with credit to spare stops as soon as its call is
// cancelled: Send fails at once, not when the credit runs out (issue 10,
// item 7). Before, it went on for the whole window: 1024 items, 20 s.
func TestCancelledStreamProducerStopsAtOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stopped")
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "producer"})
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		s, err := slowForever.Open(sctx, a.Channel(), file)
		if err != nil {
			return err
		}
		for _, err := range s.All() {
			if err != nil {
				break
			}
		}
		// Poll for the note (no event to wait on), bounded.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(file); err == nil {
				return nil
			}
		}
		return errors.New("the producer still sent items 3 s after its call was cancelled")
	})
	if err != nil {
		t.Fatal(err)
	}
	noChildrenLeft(t)
}

// Children run without a name are told apart (issue 10, item 10), and a
// Result can be waited for in a select.
func TestRunInActorNamesAndDone(t *testing.T) {
	var names []string
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		var results []*Result[int]
		for x := range 3 {
			r, err := RunInActor(n, square, x, spawn.Options{})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		for _, r := range results {
			select {
			case <-r.Done():
			case <-time.After(20 * time.Second):
				return errors.New("no result")
			}
			names = append(names, r.Actor().Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 || names[0] == names[1] || names[1] == names[2] || names[0] == names[2] {
		t.Fatalf("children named %q: want three names", names)
	}
	if !strings.HasPrefix(names[0], "root.test-square-") {
		t.Fatalf("%q: want the function's name and a number", names[0])
	}
	noChildrenLeft(t)
}

// n.Go: a parent-side goroutine owned by the nursery (issue 10, item 10).
// Open waits for it; its error fails the nursery and cancels the actors;
// its panic is a failure with the stack.
func TestGo(t *testing.T) {
	t.Run("awaited", func(t *testing.T) {
		var finished atomic.Bool
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			return n.Go(func(ctx context.Context) error {
				time.Sleep(100 * time.Millisecond) // the body has long returned
				finished.Store(true)
				return nil
			})
		})
		if err != nil || !finished.Load() {
			t.Fatalf("Open returned %v before its goroutine finished (%v)", err, finished.Load())
		}
	})
	t.Run("its error fails the nursery", func(t *testing.T) {
		readerFailed := errors.New("reader failed")
		var watched *Result[string]
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			var err error
			if watched, err = RunInActor(n, watch, struct{}{}, spawn.Options{}); err != nil {
				return err
			}
			return n.Go(func(ctx context.Context) error { return readerFailed })
		})
		var nerr *Error
		if !errors.As(err, &nerr) || len(nerr.Failures) != 1 || !errors.Is(err, readerFailed) {
			t.Fatalf("got %s", describe(err))
		}
		if _, werr := watched.Wait(context.Background()); !errors.Is(werr, context.Canceled) {
			t.Fatalf("the actor was not cancelled: %s", describe(werr))
		}
	})
	t.Run("a panic keeps its stack", func(t *testing.T) {
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			return n.Go(func(ctx context.Context) error { panic("boom") })
		})
		if err == nil || !strings.Contains(err.Error(), "panicked: boom") || !strings.Contains(err.Error(), "nursery_test.go") {
			t.Fatalf("got %v", err)
		}
	})
	noChildrenLeft(t)
}

// WithLimit(2): never more than two actors at once, and every child still
// runs (issue 10, item 10).
func TestWithLimit(t *testing.T) {
	proctest.Children(t) // skips here, on the test's goroutine, where there is no /proc
	var most atomic.Int64
	sum := 0
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		watching, stop := context.WithCancel(ctx)
		defer stop()
		if err := n.Go(func(context.Context) error {
			for watching.Err() == nil {
				live := 0
				for _, pid := range proctest.Children(t) {
					if alive(pid) {
						live++
					}
				}
				if int64(live) > most.Load() {
					most.Store(int64(live))
				}
				time.Sleep(2 * time.Millisecond) // sampling: no event tells us
			}
			return nil
		}); err != nil {
			return err
		}
		var results []*Result[int]
		for range 5 {
			r, err := RunInActor(n, nap, 150, spawn.Options{})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		for _, r := range results {
			v, err := r.Wait(ctx)
			if err != nil {
				return err
			}
			sum += v
		}
		return nil
	}, WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if sum != 5*150 || most.Load() > 2 || most.Load() == 0 {
		t.Fatalf("sum %d, at most %d actors at once: want 750 and 1 or 2", sum, most.Load())
	}
	noChildrenLeft(t)
}

// A child that fails while it is being cancelled is a failure like any
// other: the cancellations a failure causes are not listed, but an error
// that is not a cancellation is (issue 10, item 1). Before, the nursery
// listed only the first failure and B's Result held a bare
// context.Canceled.
func TestFailureWhileCancelledIsListed(t *testing.T) {
	up := filepath.Join(t.TempDir(), "up")
	var b *Result[int]
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		var err error
		if b, err = RunInActor(n, stubborn, up, spawn.Options{Name: "b"}); err != nil {
			return err
		}
		_, err = RunInActor(n, failOnceUp, up, spawn.Options{Name: "a"})
		return err
	})
	var nerr *Error
	if !errors.As(err, &nerr) || len(nerr.Failures) != 2 {
		t.Fatalf("want both failures listed, got %s", describe(err))
	}
	for i, want := range []string{"the first failure", "stubborn: my own failure"} {
		if !strings.Contains(nerr.Failures[i].Error(), want) {
			t.Errorf("failure %d is %q, want %q", i, nerr.Failures[i], want)
		}
	}
	_, berr := b.Wait(context.Background())
	var re *protocol.RemoteError
	if !errors.As(berr, &re) || !strings.Contains(re.Message, "my own failure") {
		t.Fatalf("b's result lost its error: %s", describe(berr))
	}
	noChildrenLeft(t)
}

// A stream in an actor of its own (issue 10, item 10): the actor lives as
// long as the stream, a failing stream is a failure of the nursery, and a
// stream nobody reads to its end is stopped when the body returns.
func TestOpenStreamInActor(t *testing.T) {
	t.Run("read to the end", func(t *testing.T) {
		var got []int
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			s, err := OpenStreamInActor(n, numbers, [2]int{0, 5}, spawn.Options{})
			if err != nil {
				return err
			}
			for v, err := range s.All() {
				if err != nil {
					return err
				}
				got = append(got, v)
			}
			return nil
		})
		if err != nil || fmt.Sprint(got) != "[0 1 2 3 4]" {
			t.Fatalf("got %v, %s", got, describe(err))
		}
		noChildrenLeft(t)
	})
	t.Run("failure", func(t *testing.T) {
		// No reader returns the stream's error: the nursery reports it.
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			s, err := OpenStreamInActor(n, brokenStream, struct{}{}, spawn.Options{Name: "bad"})
			if err != nil {
				return err
			}
			<-s.Done()
			return nil
		})
		var ae *ActorError
		if !errors.As(err, &ae) || ae.Actor.Name != "root.bad" || !strings.Contains(err.Error(), "the stream failed") {
			t.Fatalf("got %s", describe(err))
		}
		noChildrenLeft(t)
	})
	t.Run("unread", func(t *testing.T) {
		start := time.Now()
		err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
			s, err := OpenStreamInActor(n, endless, struct{}{}, spawn.Options{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		})
		if err != nil {
			t.Fatalf("got %s", describe(err))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Open took %v", d)
		}
		noChildrenLeft(t)
	})
}

// A nursery inside an actor that fails twice reaches the root as a group:
// each failure keeps its source and relay path (issue 10, item 2). Before,
// the root saw only one of the two leaves.
func TestNestedGroupStaysAGroup(t *testing.T) {
	dir := t.TempDir()
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		_, err := RunInActor(n, pairFails, dir, spawn.Options{Name: "mid"})
		return err
	})
	var group *protocol.RemoteError
	if !errors.As(err, &group) || group.Source.Name != "root.mid" || len(group.Children) != 2 {
		t.Fatalf("want a group from root.mid with two children, got %s (%+v)", describe(err), group)
	}
	if group.Type != "*nursery.Error" {
		t.Errorf("group type %q", group.Type)
	}
	seen := map[string]bool{}
	for _, c := range group.Children {
		seen[c.Source.Name] = true
		if len(c.Relay) != 1 || c.Relay[0].Name != "root.mid" {
			t.Errorf("child from %s has relay %v, want [root.mid]", c.Source, c.Relay)
		}
		// The registered type crosses with its fields.
		var dfe *DiskFullError
		if !errors.As(c, &dfe) || "root.mid."+dfe.Disk != c.Source.Name {
			t.Errorf("child %s: errors.As gives %+v", c.Source, dfe)
		}
	}
	if !seen["root.mid.a"] || !seen["root.mid.b"] {
		t.Fatalf("children from %v, want root.mid.a and root.mid.b", seen)
	}
	noChildrenLeft(t)
}

// Registered sentinels keep errors.Is across processes; a registered type
// keeps errors.As with its fields (issue 10, item 3).
func TestErrorTypesCross(t *testing.T) {
	var eof, missing, disk error
	err := Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "w"})
		if err != nil {
			return err
		}
		_, eof = sentinel.Call(ctx, a.Channel(), os.Args[0])
		_, missing = sentinel.Call(ctx, a.Channel(), filepath.Join(t.TempDir(), "none"))
		_, disk = fail.Call(ctx, a.Channel(), "sdb")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(eof, io.EOF) {
		t.Errorf("io.EOF lost: %s", describe(eof))
	}
	if !errors.Is(missing, fs.ErrNotExist) || errors.Is(missing, io.EOF) {
		t.Errorf("fs.ErrNotExist lost: %s", describe(missing))
	}
	var dfe *DiskFullError
	if !errors.As(disk, &dfe) || dfe.Disk != "sdb" {
		t.Errorf("errors.As: %+v from %s", dfe, describe(disk))
	}
	noChildrenLeft(t)
}

// TestThroughALauncher: a nursery whose actors run through a launcher
// (spawn.Options.Launcher) keeps its guarantees: a failure stops the
// siblings, and a subtree's error keeps its type, source and relay path.
func TestThroughALauncher(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	far := WithDefaults(spawn.Options{Binary: self, Launcher: []string{"sh", "-c", `exec "$@"`, "sh"}})
	var daemonDone <-chan struct{}
	err = Open(context.Background(), func(ctx context.Context, n *Nursery) error {
		d, err := n.StartActor(spawn.Options{Name: "daemon"})
		if err != nil {
			return err
		}
		daemonDone = d.Done()
		_, err = RunInActor(n, tree, treeArgs{Depth: 2, Breadth: 2, Path: "t", Failing: "t.1.0"}, spawn.Options{Name: "top"})
		return err
	}, far)
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Message != "leaf t.1.0 failed" || re.Source.Name != "root.top.n1.n0" {
		t.Fatalf("got %s", describe(err))
	}
	var relay []string
	for _, a := range re.Relay {
		relay = append(relay, a.Name)
	}
	if strings.Join(relay, " ") != "root.top.n1 root.top" {
		t.Fatalf("relay path %v", relay)
	}
	select {
	case <-daemonDone:
	default:
		t.Fatal("the sibling daemon outlived the nursery")
	}
	noChildrenLeft(t)
}
