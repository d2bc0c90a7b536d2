package spawn

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/sshtest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
)

// farEnv is set on the far side: the test binary is built with -race, whose
// runtime otherwise sleeps a second before exiting.
const farEnv = "GORACE=atexit_sleep_ms=0"

// TestSSH: an actor on the far side of a real sshd, on this host's loopback
// and on another "host" (a network namespace over a veth pair), answers
// calls, streams, fails with its error boxed, has its calls cancelled, and
// stops when asked with the actor it started there, leaving no process on
// either side.
func TestSSH(t *testing.T) {
	for _, where := range []struct {
		name  string
		netns bool
	}{{"loopback", false}, {"netns", true}} {
		t.Run(where.name, func(t *testing.T) { testSSH(t, sshtest.Start(t, sshtest.Options{Netns: where.netns})) })
	}
}

func testSSH(t *testing.T, srv *sshtest.Server) {
	a := start(t, Options{Name: "far", Binary: self(t), Launcher: srv.Launcher(farEnv)})
	ctx := context.Background()
	remote, err := pid.Call(ctx, a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if remote == a.PID() {
		t.Fatalf("the far side's pid %d is the launcher's", remote)
	}
	streamAll(t, a, 10000)
	// A failure arrives boxed, with its source.
	_, err = fail.Call(ctx, a.Channel(), "disk full on the far side")
	var re *protocol.RemoteError
	if !errors.As(err, &re) || re.Source.Name != "root.far" || re.Message != "disk full on the far side" {
		t.Errorf("a failing call over ssh returned %v", err)
	}
	// A cancelled call ends, and the channel goes on.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = block.Call(cctx, a.Channel(), struct{}{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its deadline over ssh returned %v", err)
	}
	if got, err := echo.Call(ctx, a.Channel(), "still here"); err != nil || got != "still here" {
		t.Errorf("echo after the cancellation: %q, %v", got, err)
	}
	// The far side starts an actor of its own there: the stop reaches it
	// across.
	grandchild := openTree(t, a)
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Errorf("Wait after a stop over ssh: %v", err)
	}
	gone(t, "the far side and its own actor", remote, grandchild)
	noChildrenLeft(t)
}

// TestSSHClientKilled: the ssh client SIGKILLed mid-stream. The stream
// fails with the channel lost, and the far side, whose sshd session ends,
// exits by itself.
func TestSSHClientKilled(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	a := start(t, Options{Name: "far", Binary: self(t), Launcher: srv.Launcher(farEnv)})
	ctx := context.Background()
	remote, err := pid.Call(ctx, a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := count.Open(ctx, a.Channel(), 1<<40) // without end, in effect
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(a.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if !errors.As(err, new(*ipc.PeerGoneError)) {
			t.Errorf("the stream ended with %v, want the channel lost", err)
		}
		break
	}
	waitGone(remote, 20*time.Second)
	if alive(remote) {
		t.Fatalf("the far side still runs %v after its ssh client was killed", time.Since(killed))
	}
	t.Logf("the far side had exited %v after its ssh client was killed", time.Since(killed).Round(time.Millisecond))
	noChildrenLeft(t)
}

// TestSSHLinkCut: two hosts (network namespaces), an actor on the far one
// through a real sshd, and the link between them taken down mid-call. No
// end of stream reaches either side: the heartbeats end the channel, and
// no process is left on the far side after two beats and a second.
func TestSSHLinkCut(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{Netns: true})
	const beat = 200 * time.Millisecond
	a := start(t, Options{Name: "far", Binary: self(t), Launcher: srv.Launcher(farEnv), Heartbeat: beat})
	ctx := context.Background()
	remote, err := pid.Call(ctx, a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() { _, err := block.Call(ctx, a.Channel(), struct{}{}); blocked <- err }()
	srv.Cut(t)
	cut := time.Now()
	after := afterTheCut(t, blocked, remote)
	t.Logf("the far side exited %v after the link was cut (bound: 2 x %v + 1s); the parent saw the lost heartbeat %v after",
		after.Round(time.Millisecond), beat, time.Since(cut).Round(time.Millisecond))
	// The ssh client would retransmit for minutes: the lost heartbeat ends
	// it, and the actor ends for whoever waits on it (a nursery).
	select {
	case <-a.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the actor did not end after its heartbeat was lost")
	}
	noChildrenLeft(t)
}

// waitGone waits, at most max, for pid to exit, and says how long it took.
func waitGone(pid int, max time.Duration) time.Duration {
	start := time.Now()
	for alive(pid) && time.Since(start) < max {
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}
