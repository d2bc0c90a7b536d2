package spawn

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/internal/sshtest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/hashicorp/go-hclog"
)

// TestDialInAcrossNamespace: a process on another "host" (a network
// namespace over a veth pair) dials in over mutual TLS, answers, and starts
// an actor of its own there; another process there, with another
// listener's credential, is refused while the listener and the joined
// child go on. Then the link is cut mid-call: no end of stream reaches
// either side, the heartbeats end the calls on this side, the child leaves
// the tree, and on the far side it and its actor exit.
func TestDialInAcrossNamespace(t *testing.T) {
	ns := sshtest.NewNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const beat = 200 * time.Millisecond
	var log proctest.Buffer
	l, cred := listenFor(t, ctx, net.JoinHostPort(ns.Here, "0"),
		ListenOptions{Heartbeat: beat, Logger: hclog.New(&hclog.LoggerOptions{Output: &log})}, "far-job")
	cmd, stderr := startScheduled(t, ns.Command(self(t)), cred.Env()...)
	j, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("accept: %v\n%s", err, stderr)
	}
	far, err := pid.Call(ctx, j.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if far != cmd.Process.Pid {
		t.Errorf("the joined child says its pid is %d; the process started in the namespace is %d", far, cmd.Process.Pid)
	}
	if e, err := Find(ctx, "root.far-job"); err != nil || e.PID != far {
		t.Errorf("Find(root.far-job) = %+v, %v; want pid %d", e, err, far)
	}
	// Its own actor, which the stream keeps until it is cancelled: the
	// call is in progress when the link is cut.
	kept, err := tree.Open(ctx, j.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := kept.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !alive(grandchild) {
		t.Fatalf("the joined child's actor %d is not running", grandchild)
	}

	// Peers across the link: the joined child reaches an actor here, whose
	// socket (abstract, so local to a network namespace) it cannot connect
	// to, through the tree; and that actor reaches it the same way.
	here := start(t, Options{Name: "here"})
	type peerArgs struct{ Name, Op, Arg string }
	if who, err := peerDo.Call(ctx, j.Channel(), peerArgs{"root.here", "who", ""}); err != nil || who != "root.far-job" {
		t.Errorf("the joined child's call to root.here: the callee saw %q, %v", who, err)
	}
	if who, err := peerDo.Call(ctx, here.Channel(), peerArgs{"root.far-job", "who", ""}); err != nil || who != "root.here" {
		t.Errorf("root.here's call to the joined child: the callee saw %q, %v", who, err)
	}
	here.Stop(ctx)

	// From the same host, a certificate another listener issued, presented
	// by a process that trusts this listener (its authority's certificate
	// is no secret): with the other authority's, the process itself would
	// refuse this listener, which would never see the certificate.
	_, foreign := listenFor(t, ctx, "127.0.0.1:0", ListenOptions{}, "intruder")
	intruder, intruderErr := startScheduled(t, ns.Command(self(t)),
		connectEnv+"="+l.Addr(), credentialEnv+"="+foreignCertificate(cred, foreign))
	var exit *exec.ExitError
	if err := intruder.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("the process with another listener's credential exited with %v, want status 2\n%s", err, intruderErr)
	}
	// The listener logs the refusal once the handshake has failed on its
	// side, which may be after the intruder has gone.
	proctest.Eventually(t, 10*time.Second, "the refusal in the listener's log", func() bool {
		return strings.Contains(log.String(), "refused a dial-in")
	})
	if s := log.String(); !strings.Contains(s, ErrCredential.Error()) || !strings.Contains(s, "from="+ns.There+":") {
		t.Errorf("the refusal does not give ErrCredential and the namespace's address %s:\n%s", ns.There, s)
	}
	if got, err := echo.Call(ctx, j.Channel(), "still here"); err != nil || got != "still here" {
		t.Errorf("echo after the refusal: %q, %v", got, err)
	}

	blocked := make(chan error, 1)
	go func() { _, err := block.Call(ctx, j.Channel(), struct{}{}); blocked <- err }()
	ns.Cut(t)
	cut := time.Now()
	exited := make(chan time.Duration, 2) // the far side: the child, then its actor, in either order
	for _, p := range []int{far, grandchild} {
		go func() { exited <- waitGone(p, 20*time.Second) }() // started at the cut
	}
	var noticed time.Duration
	select {
	case err := <-blocked:
		noticed = time.Since(cut)
		if !errors.As(err, new(*ipc.HeartbeatError)) {
			t.Errorf("a call across the cut link ended with %v, want a lost heartbeat", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a call across the cut link did not end")
	}
	if _, err := kept.Recv(); !errors.As(err, new(*ipc.HeartbeatError)) {
		t.Errorf("the stream across the cut link ended with %v, want a lost heartbeat", err)
	}
	select {
	case <-j.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the joined child did not end after its heartbeat was lost")
	}
	if _, err := Find(ctx, "root.far-job"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the lost child is still registered: %v", err)
	}
	farGone := max(<-exited, <-exited)
	if alive(far) || alive(grandchild) {
		t.Fatalf("on the far side the child (%d, alive %t) or its actor (%d, alive %t) still runs %v after the cut",
			far, alive(far), grandchild, alive(grandchild), farGone)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the joined child, its parent gone: %v\n%s", err, stderr)
	}
	t.Logf("the far side (child and its actor) exited %v after the link was cut (heartbeat %v, lifeline grace %v); this side saw the lost heartbeat %v after",
		farGone.Round(time.Millisecond), beat, lifelineGrace, noticed.Round(time.Millisecond))
	noChildrenLeft(t)
}
