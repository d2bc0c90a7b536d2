package spawn

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/hashicorp/go-hclog"
)

// farModeEnv, for relay, is the mode of the far side.
const farModeEnv = "ARBOR_TEST_FAR_MODE"

// relay is a launcher for the tests, in the part of ssh: it runs its
// arguments as the far side, in a session of its own (out of the parent's
// reach, as on another machine), and copies its stdin and stdout to and
// from it. SIGUSR1 cuts the link: it stops copying either way, without
// closing anything, as a network whose cable is pulled.
func relay() {
	os.Setenv(modeEnv, os.Getenv(farModeEnv)) // the far side's, if it has one
	os.Unsetenv(farModeEnv)
	cut := make(chan os.Signal, 1)
	signal.Notify(cut, syscall.SIGUSR1)
	var frozen atomic.Bool
	go func() { <-cut; frozen.Store(true) }()
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		os.Exit(255)
	}
	pass := func(w io.WriteCloser, r io.Reader) {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if frozen.Load() {
				select {} // the link is cut: nothing more crosses, nothing closes
			}
			if n > 0 {
				w.Write(buf[:n])
			}
			if err != nil {
				w.Close()
				return
			}
		}
	}
	go pass(in, os.Stdin)
	pass(os.Stdout, out)
	cmd.Wait()
	os.Exit(0)
}

// streamAll streams n items from a's test.count and fails the test unless
// all of them came.
func streamAll(t *testing.T, a *Actor, n int) {
	t.Helper()
	s, err := count.Open(context.Background(), a.Channel(), n)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != n {
		t.Fatalf("streamed %d of %d items", got, n)
	}
}

// afterTheCut waits, right after a link was cut, for the call blocked
// across it to fail with a lost heartbeat and for the far side (pid remote)
// to exit, and says how long after the cut the far side was gone.
func afterTheCut(t *testing.T, blocked <-chan error, remote int) time.Duration {
	t.Helper()
	gone := make(chan time.Duration, 1)
	go func() { gone <- waitGone(remote, 20*time.Second) }()
	select {
	case err := <-blocked:
		if !errors.As(err, new(*ipc.HeartbeatError)) {
			t.Errorf("a call across the cut link ended with %v, want a lost heartbeat", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a call across the cut link did not end")
	}
	after := <-gone
	if alive(remote) {
		t.Fatalf("the far side still runs %v after the cut", after)
	}
	return after
}

func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLauncher: an actor started through a launcher is an actor like any
// other: it has its name, answers calls, streams, logs to the parent, and
// stops when asked, leaving nothing behind.
func TestLauncher(t *testing.T) {
	for _, launcher := range [][]string{
		{"sh", "-c", `exec "$@"`, "sh"},
		{"setsid", "-w"},
	} {
		t.Run(launcher[0], func(t *testing.T) {
			var out proctest.Buffer
			logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Debug, JSONFormat: true})
			a := start(t, Options{Name: "far", Binary: self(t), Launcher: launcher, Logger: logger})
			ctx := context.Background()
			if got, err := echo.Call(ctx, a.Channel(), "over the launcher"); err != nil || got != "over the launcher" {
				t.Fatalf("echo = %q, %v", got, err)
			}
			streamAll(t, a, 1000)
			if _, err := say.Call(ctx, a.Channel(), "hello"); err != nil {
				t.Fatal(err)
			}
			remote, err := pid.Call(ctx, a.Channel(), struct{}{})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.Wait(); err != nil {
				t.Errorf("a stopped actor's Wait: %v", err)
			}
			gone(t, "the far side", remote)
			proctest.Eventually(t, 5*time.Second, "the far side's log line", func() bool {
				return strings.Contains(out.String(), "logger says hello") && strings.Contains(out.String(), `"@module":"root.far"`)
			})
			noChildrenLeft(t)
		})
	}
}

// TestLauncherCutLink: when the link to a launched actor is cut (no end of
// stream on either side), the heartbeats end the channel on both sides:
// calls fail with a lost heartbeat, and the far side stops and exits by
// itself within two periods and a second.
func TestLauncherCutLink(t *testing.T) {
	const beat = 100 * time.Millisecond
	a := start(t, Options{Name: "far", Binary: self(t), Launcher: []string{self(t)}, Env: withMode("relay"), Heartbeat: beat})
	ctx := context.Background()
	remote, err := pid.Call(ctx, a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() { _, err := block.Call(ctx, a.Channel(), struct{}{}); blocked <- err }()
	if err := syscall.Kill(a.PID(), syscall.SIGUSR1); err != nil { // the relay is the launcher
		t.Fatal(err)
	}
	after := afterTheCut(t, blocked, remote)
	// Logged, not asserted: a loaded machine may take longer. The bound
	// PROTOCOL.md §12.5 promises is two beats and a second.
	t.Logf("the far side exited %v after the cut (bound: 2 x %v + 1s)", after.Round(time.Millisecond), beat)
	// The relay is frozen, as ssh on a dead link would hang: the lost
	// heartbeat ends it, and the actor ends for whoever waits on it.
	select {
	case <-a.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the actor did not end after its heartbeat was lost")
	}
	noChildrenLeft(t)
}

// TestLauncherErrors: what a launcher's failures say.
func TestLauncherErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var se *StartError
	if _, err := Start(ctx, Options{Launcher: []string{"sh", "-c", `exec "$@"`, "sh"}}); !errors.As(err, &se) || !strings.Contains(err.Error(), "Binary is empty") {
		t.Errorf("a launcher without Binary: %v", err)
	}
	// An ssh that cannot connect exits 255, its own failure.
	dir := t.TempDir()
	fake := filepath.Join(dir, "ssh")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'ssh: connect to host far port 22: Connection refused' >&2\nexit 255\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(ctx, Options{Name: "far", Binary: "/opt/app", Launcher: []string{fake, "far"}})
	if !errors.As(err, &se) || se.Exit == nil || !strings.Contains(err.Error(), "ssh could not reach the far side") || !se.Exit.sshFailed ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("an ssh that cannot connect: %v", err)
	}
	noChildrenLeft(t)
}

// TestLaunchArgv: the command a launcher gets, quoted for ssh's remote
// shell and passed as it is to the others.
func TestLaunchArgv(t *testing.T) {
	l := launchFor(Options{Launcher: []string{"ssh", "-T", "host"}, Args: []string{"it's", "a b", "plain"}}, "/opt/my app")
	want := []string{"-T", "host", "env", "ARBOR_SPEC=handshake", `'/opt/my app'`, `'it'\''s'`, `'a b'`, "plain"}
	if l.binary != "ssh" || !l.ssh || strings.Join(l.args, "|") != strings.Join(want, "|") {
		t.Errorf("ssh: %s %q", l.binary, l.args)
	}
	l = launchFor(Options{Launcher: []string{"docker", "exec", "-i", "ctr"}, Args: []string{"a b"}}, "/app")
	want = []string{"exec", "-i", "ctr", "env", "ARBOR_SPEC=handshake", "/app", "a b"}
	if l.binary != "docker" || l.ssh || strings.Join(l.args, "|") != strings.Join(want, "|") {
		t.Errorf("docker: %s %q", l.binary, l.args)
	}
}
