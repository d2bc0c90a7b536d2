package spawn

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/hashicorp/go-hclog"
)

var allTransports = []Transport{Socketpair, Pipes, Stdio, UnixSocket}

func TestSpawnCallStreamStop(t *testing.T) {
	for _, tr := range allTransports {
		t.Run(tr.String(), func(t *testing.T) {
			a := start(t, Options{Name: "worker", Transport: tr})
			ctx := context.Background()
			if got, err := echo.Call(ctx, a.Channel(), "hi"); err != nil || got != "hi" {
				t.Fatalf("echo: %q %v", got, err)
			}
			childPID, err := pid.Call(ctx, a.Channel(), struct{}{})
			if err != nil || childPID != a.PID() {
				t.Fatalf("the actor reports pid %d, the handle %d (%v)", childPID, a.PID(), err)
			}
			s, err := count.Open(ctx, a.Channel(), 1000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for v, err := range s.All() {
				if err != nil || v != n {
					t.Fatalf("item %d: %d %v", n, v, err)
				}
				n++
			}
			if n != 1000 {
				t.Fatalf("got %d items", n)
			}
			if !strings.HasSuffix(a.ID().Name, ".worker") || a.ID().UUID == "" {
				t.Fatalf("actor id %+v", a.ID())
			}
			within(t, 5*time.Second, "Stop", func() {
				if err := a.Stop(ctx); err != nil {
					t.Errorf("stop: %v", err)
				}
			})
			if err := a.Wait(); err != nil {
				t.Fatalf("a gracefully stopped actor should exit cleanly: %v", err)
			}
			if err := a.Stop(ctx); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			noChildrenLeft(t)
		})
	}
}

func TestChildPanicsAtStart(t *testing.T) {
	_, err := Start(context.Background(), Options{Env: withMode("panic-at-start")})
	var se *StartError
	if !errors.As(err, &se) || se.Exit == nil || !strings.Contains(se.Exit.Panic, "boom at start") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "crashed before the handshake") || se.Exit.Code != 2 {
		t.Fatalf("got %v (exit %+v)", err, se.Exit)
	}
	noChildrenLeft(t)
}

func TestChildExitsDuringCall(t *testing.T) {
	a := start(t, Options{})
	began := time.Now()
	_, err := exit.Call(context.Background(), a.Channel(), 3)
	took := time.Since(began)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Signal != 0 || ee.Stopped {
		t.Fatalf("got %v", err)
	}
	var gone *ipc.PeerGoneError
	if !errors.As(err, &gone) {
		t.Fatalf("the call's error should say the channel was lost: %v", err)
	}
	t.Logf("the call failed %v after it was made", took)
	if err := a.Wait(); !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Wait: %v", err)
	}
	noChildrenLeft(t)
}

func TestChildKilled(t *testing.T) {
	a := start(t, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := block.Call(context.Background(), a.Channel(), struct{}{})
		errc <- err
	}()
	// The call is in flight once the child answers a later call.
	if _, err := echo.Call(context.Background(), a.Channel(), "x"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(a.PID(), syscall.SIGKILL)
	var err error
	within(t, 2*time.Second, "the call in flight", func() { err = <-errc })
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || ee.Stopped {
		t.Fatalf("got %v", err)
	}
	noChildrenLeft(t)
}

func TestStopEscalatesToKill(t *testing.T) {
	a := start(t, Options{GracePeriod: 100 * time.Millisecond, KillDelay: 200 * time.Millisecond})
	stuck(t, a)
	within(t, 5*time.Second, "Stop", func() { a.Stop(context.Background()) })
	err := a.Wait()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || !ee.Stopped {
		t.Fatalf("a child that ignores its ctx and SIGTERM should be killed: %v", err)
	}
	noChildrenLeft(t)
}

func TestStopWithExpiredContextKills(t *testing.T) {
	a := start(t, Options{GracePeriod: time.Hour})
	stuck(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	within(t, 5*time.Second, "Stop", func() {
		if err := a.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop: %v", err)
		}
	})
	noChildrenLeft(t)
}

func TestParentKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = withMode("parent-tree")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := readLine(t, bufio.NewReader(out), 20*time.Second)
	if !strings.HasPrefix(line, "pids: ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper parent said %q", line)
	}
	var pids []int
	for _, f := range strings.Fields(strings.TrimPrefix(line, "pids: ")) {
		p, _ := strconv.Atoi(f)
		pids = append(pids, p)
	}
	if len(pids) != 4 {
		t.Fatalf("want 2 children and 2 grandchildren, got %v", pids)
	}
	cmd.Process.Kill()
	cmd.Wait()
	defer func() { // whatever the check finds, leave nothing behind
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}()
	gone(t, "descendants of a killed parent", pids...)
}

func TestSpawnStopCycles(t *testing.T) {
	cycles := 200
	if testing.Short() {
		cycles = 20
	}
	fds := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(entries)
	}
	sockets := func() map[string]bool {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), "arbor-*"))
		set := map[string]bool{}
		for _, d := range m {
			set[d] = true
		}
		return set
	}
	// One cycle first, so that lazily opened descriptors (the poller's)
	// are not counted as leaks.
	a := start(t, Options{})
	a.Stop(context.Background())
	fdsBefore, socketsBefore := fds(), sockets()
	ctx := context.Background()
	for i := range cycles {
		tr := allTransports[i%len(allTransports)]
		a, err := Start(ctx, Options{Transport: tr})
		if err != nil {
			t.Fatalf("cycle %d (%v): %v", i, tr, err)
		}
		if _, err := echo.Call(ctx, a.Channel(), "x"); err != nil {
			t.Fatalf("cycle %d (%v): %v", i, tr, err)
		}
		if err := a.Stop(ctx); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	if after := fds(); after != fdsBefore {
		t.Fatalf("%d cycles leaked file descriptors: %d before, %d after", cycles, fdsBefore, after)
	}
	// Only new directories count: other tests may create and remove
	// theirs meanwhile.
	for d := range sockets() {
		if !socketsBefore[d] {
			t.Fatalf("socket directory left behind: %s", d)
		}
	}
	noChildrenLeft(t)
}

func capture() (hclog.Logger, *proctest.Buffer) {
	buf := &proctest.Buffer{}
	return hclog.New(&hclog.LoggerOptions{Output: buf, JSONFormat: true, Level: hclog.Trace}), buf
}

func TestWrongSecretIsRefused(t *testing.T) {
	log, buf := capture()
	a := start(t, Options{Transport: UnixSocket, Env: withMode("wrong-secret"), Logger: log})
	if got, err := echo.Call(context.Background(), a.Channel(), "still fine"); err != nil || got != "still fine" {
		t.Fatalf("echo: %q %v", got, err)
	}
	if !strings.Contains(buf.String(), "wrong or missing secret") {
		t.Fatalf("the refused connection was not logged:\n%s", buf)
	}
}

func TestNotAnActor(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"exits with output", Options{Binary: "/bin/sh", Args: []string{"-c", "echo 'usage: tool [flags]'; exit 1"}},
			[]string{"not an arbor actor", "usage: tool [flags]", "status 1"}},
		{"stdio transport", Options{Binary: "/bin/sh", Args: []string{"-c", "echo 'hello from a shell'; sleep 5"}, Transport: Stdio},
			[]string{"not an arbor actor", "hello from a shell"}},
		{"missing binary", Options{Binary: "/nonexistent/arbor-actor"}, []string{"running the program", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			within(t, 10*time.Second, "Start", func() { _, err = Start(context.Background(), tt.opts) })
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a StartError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			noChildrenLeft(t)
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	began := time.Now()
	_, err := Start(context.Background(), Options{Env: withMode("hang"), HandshakeTimeout: 300 * time.Millisecond})
	if !strings.Contains(err.Error(), "no handshake within the timeout") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	t.Logf("gave up after %v", time.Since(began))
	noChildrenLeft(t)
}

func TestMainNotCalled(t *testing.T) {
	_, err := Start(context.Background(), Options{Env: withMode("no-main")})
	var se *StartError
	if !errors.As(err, &se) || se.Exit == nil || se.Exit.Code != 7 {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(strings.Join(se.Exit.Stderr, "\n"), "spawn.Main was not called") {
		t.Fatalf("the child's own error should explain: %v", se.Exit.Stderr)
	}
	noChildrenLeft(t)
}

func TestLogs(t *testing.T) {
	for _, tr := range []Transport{Socketpair, Stdio} {
		t.Run(tr.String(), func(t *testing.T) {
			log, buf := capture()
			a := start(t, Options{Name: "talker", Transport: tr, Logger: log})
			if n, err := say.Call(context.Background(), a.Channel(), "long"); err != nil || n != 4 {
				t.Fatalf("say: %d %v", n, err)
			}
			a.Stop(context.Background())
			out := buf.String()
			var sawJSON, sawPrint, sawLong bool
			for _, line := range strings.Split(out, "\n") {
				switch {
				case strings.Contains(line, `"logger says long"`):
					sawJSON = strings.Contains(line, `"@level":"warn"`) && strings.Contains(line, `"answer":42`) &&
						strings.Contains(line, `"@module":"root.talker"`)
				case strings.Contains(line, "stdout says long"):
					sawPrint = strings.Contains(line, `"@level":"info"`)
				case strings.Contains(line, "xxxxxxxx"):
					sawLong = true
				}
			}
			if !sawJSON || !sawPrint || !sawLong {
				t.Fatalf("json record kept level and fields: %v; print forwarded: %v; long line forwarded: %v\n%s",
					sawJSON, sawPrint, sawLong, out)
			}
		})
	}
}

func TestPanicOutputLoggedAsError(t *testing.T) {
	log, buf := capture()
	Start(context.Background(), Options{Env: withMode("panic-at-start"), Logger: log})
	found := false
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "panic: boom at start") && strings.Contains(line, `"@level":"error"`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("panic output not logged at error level:\n%s", buf)
	}
}

// openTree starts the test.tree stream on a and returns the grandchild's
// pid.
func openTree(t *testing.T, a *Actor) int {
	t.Helper()
	s, err := tree.Open(context.Background(), a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestStopStopsGrandchildrenFirst(t *testing.T) {
	a := start(t, Options{})
	g := openTree(t, a)
	within(t, 5*time.Second, "Stop", func() { a.Stop(context.Background()) })
	if err := a.Wait(); err != nil {
		t.Fatalf("the child should have stopped cleanly: %v", err)
	}
	// The child stopped its grandchild before it exited, so nothing is
	// left even without the parent-death signal.
	if alive(g) {
		t.Fatalf("grandchild %d outlived its parent's graceful stop", g)
	}
	noChildrenLeft(t)
}

func TestLifeline(t *testing.T) {
	a := start(t, Options{})
	g := openTree(t, a)
	began := time.Now()
	a.Channel().Close() // the child's parent "disappears" without killing it
	within(t, 3*time.Second, "the orphaned child's exit", func() { a.Wait() })
	t.Logf("the orphaned child exited %v after losing its parent", time.Since(began))
	gone(t, "grandchild of an orphaned child", g)
	noChildrenLeft(t)
}

func TestStopStopsTheChildsOwnActors(t *testing.T) {
	a := start(t, Options{})
	marker := filepath.Join(t.TempDir(), "marker")
	g, err := keeper.Call(context.Background(), a.Channel(), marker)
	if err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "Stop", func() { a.Stop(context.Background()) })
	if b, err := os.ReadFile(marker); err != nil || string(b) != "stopped gracefully" {
		t.Fatalf("the child's own actor was not stopped gracefully: %q %v", b, err)
	}
	gone(t, "the child's own actor", g)
	noChildrenLeft(t)
}

func TestLeftoverHelperDoesNotHoldStop(t *testing.T) {
	// A program that leaves a helper in its process group holding its
	// stderr: the helper goes with the program, and nothing waits on it.
	var err error
	began := time.Now()
	within(t, 5*time.Second, "Start", func() {
		_, err = Start(context.Background(), Options{Binary: "/bin/sh", Args: []string{"-c", "sleep 30 & echo usage; exit 1"}})
	})
	if err == nil || !strings.Contains(err.Error(), "not an arbor actor") {
		t.Fatalf("got %v", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("Start waited %v for a helper holding the child's output", took)
	}
	noChildrenLeft(t)
}

func TestFailedStartsLeakNoDescriptors(t *testing.T) {
	count := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(entries)
	}
	// With the collector off, finalizers cannot close what Start forgot.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, tr := range allTransports {
		before := count()
		for range 10 {
			if _, err := Start(context.Background(), Options{Binary: "/nonexistent/x", Transport: tr}); err == nil {
				t.Fatal("started a missing binary")
			}
		}
		if after := count(); after != before {
			t.Fatalf("%v: 10 failed starts leaked %d descriptors", tr, after-before)
		}
	}
}

func TestOtherProcessCannotTakeTheActorsSocket(t *testing.T) {
	// A process of the same user that read the spec (secret included) from
	// the child's environment connects first, from another pid.
	log, buf := capture()
	a := start(t, Options{Transport: UnixSocket, Env: withMode("impostor"), Logger: log})
	if got, err := echo.Call(context.Background(), a.Channel(), "genuine"); err != nil || got != "genuine" {
		t.Fatalf("echo: %q %v", got, err)
	}
	if !strings.Contains(buf.String(), "does not come from the actor's process") {
		t.Fatalf("the impostor was not refused:\n%s", buf)
	}
}

func TestStartCommand(t *testing.T) {
	t.Run("exit status and output", func(t *testing.T) {
		log, buf := capture()
		c, err := StartCommand(context.Background(), Options{Name: "job", Binary: "/bin/sh",
			Args: []string{"-c", "echo working; echo 'disk full' >&2; exit 3"}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if c.Channel() != nil {
			t.Fatal("a plain program has no channel")
		}
		var ee *ExitError
		if err := c.Wait(); !errors.As(err, &ee) || ee.Code != 3 || len(ee.Stderr) != 1 || ee.Stderr[0] != "disk full" {
			t.Fatalf("got %v (%+v)", err, ee)
		}
		if !strings.Contains(buf.String(), "working") || !strings.Contains(buf.String(), `"@module":"root.job"`) {
			t.Fatalf("output not forwarded under the command's name:\n%s", buf)
		}
	})
	t.Run("stop signal, then kill", func(t *testing.T) {
		log, buf := capture()
		c, err := StartCommand(context.Background(), Options{Binary: "/bin/sh", Logger: log,
			Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}, GracePeriod: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		proctest.Eventually(t, 5*time.Second, "the trap to be set", func() bool { return strings.Contains(buf.String(), "ready") })
		within(t, 5*time.Second, "Stop", func() { c.Stop(context.Background()) })
		var ee *ExitError
		if err := c.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || !ee.Stopped {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("raw streams and stdin", func(t *testing.T) {
		// Byte for byte: no newline added, \r kept, a 100 KiB line whole.
		var out, errOut proctest.Buffer
		long := strings.Repeat("x", 100<<10)
		c, err := StartCommand(context.Background(), Options{Binary: "/bin/sh",
			Args:   []string{"-c", `cat; printf 'a\r\nb' >&2`},
			Stdin:  strings.NewReader(long),
			Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
		if out.String() != long || errOut.String() != "a\r\nb" {
			t.Fatalf("stdout %d bytes (want %d), stderr %q", len(out.String()), len(long), errOut.String())
		}
	})
	t.Run("a file is the program's own stream", func(t *testing.T) {
		if _, err := os.Stat("/proc/self/fd/1"); err != nil {
			t.Skip("no /proc")
		}
		f, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := StartCommand(context.Background(), Options{Binary: "/bin/sh",
			Args: []string{"-c", `ls -l /proc/self/fd/1`}, Stdout: f})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(f.Name())
		if !strings.Contains(string(b), f.Name()) {
			t.Fatalf("the program's stdout is not the file itself: %q", b)
		}
	})
	t.Run("stop signal honoured", func(t *testing.T) {
		c, err := StartCommand(context.Background(), Options{Binary: "/bin/sleep", Args: []string{"30"}, StopSignal: syscall.SIGINT})
		if err != nil {
			t.Fatal(err)
		}
		within(t, 5*time.Second, "Stop", func() { c.Stop(context.Background()) })
		var ee *ExitError
		if err := c.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGINT || !ee.Stopped {
			t.Fatalf("got %v", err)
		}
	})
	noChildrenLeft(t)
}

// stuck starts a stubborn call on a and waits until it is stuck.
func stuck(t *testing.T, a *Actor) {
	t.Helper()
	s, err := stubborn.Open(context.Background(), a.Channel(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Recv(); err != nil || v != "stuck" {
		t.Fatalf("the stubborn call did not start: %q, %v", v, err)
	}
}

// Connections that send nothing do not hold up the child's own: secrets
// are read at once, each with its own bound (issue 17, item 4). Before,
// twelve of them, read one after another for a second each, made the
// start fail after the 10 s handshake timeout, saying "not an arbor actor".
func TestSilentConnectionsDoNotHoldUpTheStart(t *testing.T) {
	// Read one after another, the silent ones would take 12 s: past the
	// handshake timeout given here.
	a := start(t, Options{Transport: UnixSocket, Env: withMode("silent-crowd"), HandshakeTimeout: 5 * time.Second})
	if got, err := echo.Call(context.Background(), a.Channel(), "through"); err != nil || got != "through" {
		t.Fatalf("echo: %q %v", got, err)
	}
}
