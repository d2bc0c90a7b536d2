// Package interop runs arbor's Python package against Go actors built from
// this repository: Go parents of Python workers, Python parents of Go
// actors (the Python test suite, with this test binary as its Go actor).
package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/internal/pyenv"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// What the Python worker (tests/worker.py) serves, declared for calling.
var (
	square     = ipc.NewFunc[int, int]("square", nil)
	count      = ipc.NewStream[int, int]("count", nil)
	boom       = ipc.NewFunc[string, any]("boom", nil)
	waitCancel = ipc.NewFunc[any, any]("wait_cancel", nil)
	echo       = ipc.NewContext[int, string, int, int, int]("echo", nil)
	callParent = ipc.NewFunc[map[string]any, int]("call_parent", nil)
	whoami     = ipc.NewFunc[any, map[string]any]("whoami", nil)
	noteCanc   = ipc.NewFunc[string, any]("note_canceller", nil)
	nap        = ipc.NewFunc[float64, string]("nap", nil)
)

// dialReport is what dial_python saw through the tree.
type dialReport struct {
	Square int      `msgpack:"square"`
	Type   string   `msgpack:"type"`
	Source string   `msgpack:"source"`
	Relay  []string `msgpack:"relay"` // the names in the error's relay path
}

// dialGoArgs names the Go actor dial_go dials; with Relay, it goes
// through the tree even where the actor's peer socket is at hand.
type dialGoArgs struct {
	Name  string `msgpack:"name"`
	Relay bool   `msgpack:"relay"`
}

// goDialReport is what dial_go saw on the channel it opened.
type goDialReport struct {
	Sum    int      `msgpack:"sum"`
	Source string   `msgpack:"source"`
	Relay  []string `msgpack:"relay"` // the names in fail's error's relay path
}

type pair struct {
	A int `msgpack:"a"`
	B int `msgpack:"b"`
}

// What this binary serves as a Go actor, to Python parents (and to the
// Python workers that call back).
var (
	add     = ipc.NewFunc("add", func(ctx context.Context, p pair) (int, error) { return p.A + p.B, nil })
	goCount = ipc.NewStream("count", func(ctx context.Context, n int, out *ipc.Yielder[int]) error {
		for i := 0; n < 0 || i < n; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	goEcho = ipc.NewContext("echo", func(ctx context.Context, factor int, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started("ready"); err != nil {
			return 0, err
		}
		n := 0
		for {
			v, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			if err := s.Send(v * factor); err != nil {
				return n, err
			}
			n++
		}
	})
	fail = ipc.NewFunc("fail", func(ctx context.Context, msg string) (any, error) {
		return nil, errors.New(msg)
	})
	block = ipc.NewFunc("block", func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	// hold is block as a context, whose started value tells the caller
	// that it has begun.
	hold = ipc.NewContext("hold", func(ctx context.Context, _ int, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started("held"); err != nil {
			return 0, err
		}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// relay runs the Python worker in an actor below this one and calls its
	// note_canceller, so that a cancellation of relay reaches Python two
	// levels down.
	relay = ipc.NewFunc("relay", func(ctx context.Context, file string) (any, error) {
		err := nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			a, err := n.StartActor(spawn.Options{Name: "py", Binary: os.Getenv(pythonEnv), Args: []string{filepath.Join(pyenv.Dir(), "tests", "worker.py")}})
			if err != nil {
				return err
			}
			_, err = noteCanc.Call(ctx, a.Channel(), file)
			return err
		})
		return nil, err
	})
	// dialPython dials a Python actor from this one, a sibling of it, and
	// reports what square and boom give on the relayed channel.
	dialPython = ipc.NewFunc("dial_python", func(ctx context.Context, name string) (dialReport, error) {
		ch, err := spawn.Dial(ctx, name, nil)
		if err != nil {
			return dialReport{}, err
		}
		defer ch.Close()
		var r dialReport
		if r.Square, err = square.Call(ctx, ch, 7); err != nil {
			return r, err
		}
		_, err = boom.Call(ctx, ch, "from a sibling")
		var re *protocol.RemoteError
		if !errors.As(err, &re) {
			return r, fmt.Errorf("boom: %v (%T), want a RemoteError", err, err)
		}
		r.Type, r.Source = re.Type, re.Source.Name
		for _, hop := range re.Relay {
			r.Relay = append(r.Relay, hop.Name)
		}
		return r, nil
	})
	// stopByName stops an actor of the tree by name (a relayed arbor.stop
	// for a Python actor).
	stopByName = ipc.NewFunc("stop_by_name", func(ctx context.Context, name string) (struct{}, error) {
		return struct{}{}, spawn.StopActor(ctx, name)
	})
	// dialGo finds a Go actor of the tree (this binary) by name, dials it,
	// and reports what add and fail give on the channel.
	dialGo = ipc.NewFunc("dial_go", func(ctx context.Context, a dialGoArgs) (goDialReport, error) {
		e, err := spawn.Find(ctx, a.Name)
		if err != nil {
			return goDialReport{}, err
		}
		if a.Relay {
			e.Addr = "" // as if across a launcher: through the tree
		}
		ch, err := spawn.DialEntry(ctx, e, nil)
		if err != nil {
			return goDialReport{}, err
		}
		defer ch.Close()
		return callGo(ctx, ch)
	})
	// waitForName is spawn.WaitFor, from an actor of the tree.
	waitForName = ipc.NewFunc("wait_for", func(ctx context.Context, name string) (spawn.Entry, error) {
		return spawn.WaitFor(ctx, name)
	})
	// children starts n Go actors below this one, which stay until this
	// actor stops, and returns their pids.
	children = ipc.NewFunc("children", func(ctx context.Context, n int) ([]int, error) {
		var pids []int
		for i := range n {
			a, err := spawn.Start(ctx, spawn.Options{Name: fmt.Sprint("grandchild-", i)})
			if err != nil {
				return pids, err
			}
			pids = append(pids, a.PID())
		}
		return pids, nil
	})
)

// callGo calls add and fail of the Go actor at the other end of ch.
func callGo(ctx context.Context, ch *ipc.Channel) (goDialReport, error) {
	var r goDialReport
	var err error
	if r.Sum, err = add.Call(ctx, ch, pair{A: 20, B: 22}); err != nil {
		return r, err
	}
	_, err = fail.Call(ctx, ch, "from afar")
	var re *protocol.RemoteError
	if !errors.As(err, &re) {
		return r, fmt.Errorf("fail: %v (%T), want a RemoteError", err, err)
	}
	r.Source = re.Source.Name
	for _, hop := range re.Relay {
		r.Relay = append(r.Relay, hop.Name)
	}
	return r, nil
}

func TestMain(m *testing.M) {
	spawn.Main(ipc.MustNewTable(add, goCount, goEcho, fail, block, children, relay, dialPython, stopByName, dialGo, waitForName, hold))
	goleak.VerifyTestMain(m)
}

// startWorker starts tests/worker.py as an actor of n.
func startWorker(t *testing.T, n *nursery.Nursery, name string, logger hclog.Logger) *spawn.Actor {
	t.Helper()
	a, err := n.StartActor(spawn.Options{
		Name:      name,
		Binary:    pyenv.Require(t),
		Args:      []string{filepath.Join(pyenv.Dir(), "tests", "worker.py")},
		Logger:    logger,
		Functions: ipc.MustNewTable(add),
	})
	if err != nil {
		t.Fatalf("starting the Python worker: %v", err)
	}
	return a
}

func open(t *testing.T, body func(ctx context.Context, n *nursery.Nursery) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := nursery.Open(ctx, body)
	proctest.NoChildrenLeft(t)
	return err
}

func TestGoCallsPython(t *testing.T) {
	pyenv.Require(t)
	var logs proctest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", logger)
		ch := w.Channel()

		if got, err := square.Call(ctx, ch, 12); err != nil || got != 144 {
			t.Errorf("square(12) = %d, %v; want 144", got, err)
		}
		// The worker calls back its parent on the same channel.
		if got, err := callParent.Call(ctx, ch, map[string]any{"fn": "add", "args": map[string]any{"a": 2, "b": 40}}); err != nil || got != 42 {
			t.Errorf("call_parent(add 2 40) = %d, %v; want 42", got, err)
		}
		me, err := whoami.Call(ctx, ch, nil)
		if err != nil || me["name"] != "root.py" || fmt.Sprint(me["pid"]) != fmt.Sprint(w.PID()) {
			t.Errorf("whoami = %v, %v; want root.py with pid %d", me, err, w.PID())
		}

		// A stream longer than a window: flow control both ways.
		if err := countsInOrder(ctx, ch, 5000); err != nil {
			return err
		}

		cc, err := echo.Open(ctx, ch, 3)
		if err != nil {
			return err
		}
		if cc.Started() != "ready" {
			t.Errorf("started value %q", cc.Started())
		}
		for i := range 2000 { // past the Python side's window
			if err := cc.Send(i); err != nil {
				return err
			}
			if v, err := cc.Recv(); err != nil || v != 3*i {
				return fmt.Errorf("echo %d: %d, %v", i, v, err)
			}
		}
		cc.CloseSend()
		if got, err := cc.Result(); err != nil || got != 2000 {
			t.Errorf("echo result %d, %v; want 2000", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "asked who I am") {
		t.Errorf("the worker's log line did not reach the parent's logger:\n%s", logs.String())
	}
}

func TestPythonExceptionArrivesAsRemoteError(t *testing.T) {
	pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		ch := startWorker(t, n, "py", nil).Channel()
		_, err := boom.Call(ctx, ch, "sensor offline")
		var re *protocol.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("boom: %v (%T), want a RemoteError", err, err)
		}
		if re.Type != "ValueError" || re.Message != "sensor offline" || re.Source.Name != "root.py" {
			t.Errorf("boom: type %q, message %q, source %q", re.Type, re.Message, re.Source.Name)
		}
		if !strings.Contains(re.Stack, "Traceback") || !strings.Contains(re.Stack, "worker.py") {
			t.Errorf("boom: no Python traceback in the stack:\n%s", re.Stack)
		}
		// The failed call broke nothing else on the channel.
		if got, err := square.Call(ctx, ch, 3); err != nil || got != 9 {
			t.Errorf("square after a failure = %d, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGoCancelsPython(t *testing.T) {
	pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		ch := startWorker(t, n, "py", nil).Channel()

		// A func: cancelled while it blocks.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := waitCancel.Call(cctx, ch, nil); done <- err }()
		// The call is running once the worker has acknowledged it; there is
		// no event for that here, so cancel at once: either way it must end.
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("a cancelled call returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a cancelled call to Python did not return")
		}

		// A stream without end, read a little and abandoned.
		sctx, stop := context.WithCancel(ctx)
		s, err := count.Open(sctx, ch, -1)
		if err != nil {
			stop()
			return err
		}
		for range 10 {
			if _, err := s.Recv(); err != nil {
				stop()
				return err
			}
		}
		stop()
		for {
			if _, err := s.Recv(); err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("the cancelled stream ended with %v", err)
				}
				break
			}
		}
		// The channel still works.
		if got, err := square.Call(ctx, ch, 5); err != nil || got != 25 {
			t.Errorf("square after cancellations = %d, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pythonEnv passes the Python interpreter to the Go actor that runs relay.
const pythonEnv = "ARBOR_TEST_PYTHON"

// TestCancellerReachesPython: the root cancels a call to a Go actor, whose
// nursery cancels its call to a Python worker below it. The Python function
// names the root as its canceller: arbor.cancel and arbor.stop carry "by"
// across the middle actor (PROTOCOL.md §9).
func TestCancellerReachesPython(t *testing.T) {
	py := pyenv.Require(t)
	note := filepath.Join(t.TempDir(), "note")
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		mid, err := n.StartActor(spawn.Options{Name: "middle", Env: append(os.Environ(), pythonEnv+"="+py)})
		if err != nil {
			return err
		}
		callCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := relay.Call(callCtx, mid.Channel(), note); done <- err }()
		proctest.Eventually(t, 20*time.Second, "the Python function to start", func() bool { _, err := os.Stat(note + ".up"); return err == nil })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("the cancelled call returned %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(note)
	if err != nil {
		t.Fatalf("the Python function noted nothing: %v", err)
	}
	if string(b) != "root" {
		t.Errorf("the Python function's canceller is %q, want the root", b)
	}
}

// TestPythonThroughALauncher: a Python actor started through a launcher
// (protocol 1.3: ARBOR_SPEC=handshake, its spec in the parent's hello,
// heartbeats) has its name, answers, lives through a call longer than
// several heartbeats, and stops when asked.
func TestPythonThroughALauncher(t *testing.T) {
	py := pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "far-py", Binary: py, Args: []string{filepath.Join(pyenv.Dir(), "tests", "worker.py")},
			Launcher: []string{"sh", "-c", `exec "$@"`, "sh"}, Heartbeat: 50 * time.Millisecond})
		if err != nil {
			return err
		}
		if got, err := square.Call(ctx, a.Channel(), 7); err != nil || got != 49 {
			t.Errorf("square through a launcher = %d, %v", got, err)
		}
		// Six beats long: both sides' heartbeats must keep the channel.
		if got, err := nap.Call(ctx, a.Channel(), 0.3); err != nil || got != "root.far-py" {
			t.Errorf("nap through a launcher = %q, %v", got, err)
		}
		return a.Stop(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImpostorRefused: a child whose hello names another actor than the
// one it was started as is refused, and the error says both.
func TestImpostorRefused(t *testing.T) {
	py := pyenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := spawn.Start(ctx, spawn.Options{Name: "impostor", Binary: py, Args: []string{filepath.Join(pyenv.Dir(), "tests", "impostor.py")}})
	if err == nil {
		a.Stop(ctx)
		t.Fatal("a child with another uuid was accepted")
	}
	for _, want := range []string{`"00000000-0000-4000-8000-000000000000"`, `started as "root.impostor"`, "introduced itself as another actor"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %s", err, want)
		}
	}
	proctest.NoChildrenLeft(t)
}

func TestPythonWorkerKilled(t *testing.T) {
	pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", nil)
		done := make(chan error, 1)
		go func() { _, err := waitCancel.Call(ctx, w.Channel(), nil); done <- err }()
		if err := syscall.Kill(w.PID(), syscall.SIGKILL); err != nil {
			return err
		}
		select {
		case err := <-done:
			var gone *ipc.PeerGoneError
			if !errors.As(err, &gone) {
				t.Errorf("a call to a killed worker returned %v, want a PeerGoneError", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call to a killed worker did not return")
		}
		return nil
	})
	// The nursery reports the killed worker.
	if err == nil || !strings.Contains(err.Error(), "root.py") {
		t.Errorf("nursery: %v, want the killed worker's failure", err)
	}
}

// suiteTimeout bounds the Python suite (about 30 s on a loaded 2-core
// machine), well inside go test's own 10 minutes, so that a hang in it fails
// with the Python threads' tracebacks instead of a Go stack dump.
const suiteTimeout = 4 * time.Minute

// TestPythonSuite runs the Python package's own tests, with this binary as
// the Go actor they start.
func TestPythonSuite(t *testing.T) {
	py := pyenv.Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	// -X faulthandler: SIGABRT, sent when the suite runs out of time, makes
	// Python print every thread's traceback before it dies.
	cmd := exec.CommandContext(ctx, py, "-X", "faulthandler", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGABRT) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = pyenv.Dir()
	cmd.Env = append(os.Environ(), "ARBOR_GO_ACTOR="+self, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("python tests did not finish in %v; their output, with the tracebacks of every thread:\n%s", suiteTimeout, out)
	}
	if err != nil {
		t.Fatalf("python tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("python tests did not report OK:\n%s", out)
	}
	proctest.NoChildrenLeft(t)
}

// TestGoDialsPython: Dial reaches a Python actor, which has no peer socket,
// through the tree (PROTOCOL.md §13.3): calls, streams and contexts work end
// to end, a Python exception arrives as a RemoteError from the actor, and
// closing the relayed channel leaves the actor's own channel working. From
// the root the relay passes no actor between the ends; from a Go sibling it
// passes the root, which the error's relay path names.
func TestGoDialsPython(t *testing.T) {
	py := pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", nil)
		ch, err := spawn.Dial(ctx, "root.py", nil)
		if err != nil {
			return fmt.Errorf("Dial to the Python actor: %w", err)
		}
		if ch.Peer().Name != "root.py" {
			t.Errorf("the relayed channel's peer is %v", ch.Peer())
		}
		if got, err := square.Call(ctx, ch, 12); err != nil || got != 144 {
			t.Errorf("square(12) through the tree = %d, %v; want 144", got, err)
		}
		if err := countsInOrder(ctx, ch, 3000); err != nil { // past both windows, and many relay items
			return err
		}
		cc, err := echo.Open(ctx, ch, 2)
		if err != nil {
			return err
		}
		for i := range 50 {
			if err := cc.Send(i); err != nil {
				return err
			}
			if v, err := cc.Recv(); err != nil || v != 2*i {
				return fmt.Errorf("echo %d: %d, %v", i, v, err)
			}
		}
		cc.CloseSend()
		if got, err := cc.Result(); err != nil || got != 50 {
			t.Errorf("echo result %d, %v; want 50", got, err)
		}
		_, err = boom.Call(ctx, ch, "sensor offline")
		var re *protocol.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("boom through the tree: %v (%T), want a RemoteError", err, err)
		}
		if re.Type != "ValueError" || re.Message != "sensor offline" || re.Source.Name != "root.py" || len(re.Relay) != 0 {
			t.Errorf("boom: type %q, message %q, source %q, relay %v; want ValueError from root.py, no relay",
				re.Type, re.Message, re.Source.Name, re.Relay)
		}
		if err := ch.Close(); err != nil {
			t.Errorf("closing the relayed channel: %v", err)
		}
		if got, err := square.Call(ctx, w.Channel(), 3); err != nil || got != 9 {
			t.Errorf("square on the worker's own channel after the relay = %d, %v", got, err)
		}

		sib, err := n.StartActor(spawn.Options{Name: "sibling", Env: append(os.Environ(), pythonEnv+"="+py)})
		if err != nil {
			return err
		}
		got, err := dialPython.Call(ctx, sib.Channel(), "root.py")
		if err != nil {
			return fmt.Errorf("the sibling's Dial: %w", err)
		}
		if got.Square != 49 || got.Type != "ValueError" || got.Source != "root.py" || !slices.Equal(got.Relay, []string{"root"}) {
			t.Errorf("from the sibling: %+v; want square 49 and a ValueError from root.py relayed through root", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGoStopsPythonByName: a Go sibling stops the Python actor by name
// (spawn.StopActor: arbor.stop on a relayed channel, on its own behalf). The
// Python actor cancels what it serves, naming the sibling, and exits with
// status 0.
func TestGoStopsPythonByName(t *testing.T) {
	py := pyenv.Require(t)
	note := filepath.Join(t.TempDir(), "note")
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		// Outside the nursery, which would take the stop it did not ask for
		// for a failure.
		w, err := spawn.Start(ctx, spawn.Options{Name: "py", Binary: py, Args: []string{filepath.Join(pyenv.Dir(), "tests", "worker.py")}})
		if err != nil {
			return err
		}
		defer w.Stop(ctx)
		done := make(chan error, 1)
		go func() { _, err := noteCanc.Call(ctx, w.Channel(), note); done <- err }()
		proctest.Eventually(t, 20*time.Second, "the Python function to start", func() bool { _, err := os.Stat(note + ".up"); return err == nil })
		sib, err := n.StartActor(spawn.Options{Name: "sibling", Env: append(os.Environ(), pythonEnv+"="+py)})
		if err != nil {
			return err
		}
		if _, err := stopByName.Call(ctx, sib.Channel(), "root.py"); err != nil {
			return fmt.Errorf("the sibling's StopActor: %w", err)
		}
		return stoppedBy(t, "the stopped Python actor", w, done, "root.sibling")
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(note); err != nil || string(b) != "root.sibling" {
		t.Errorf("the Python function's canceller is %q (%v), want root.sibling", b, err)
	}
}

// TestGoBelowPythonFindsAndDials: a Go actor below a Python one (root.py.go,
// started by the Python worker) is in the tree's registry, which the Python
// actor's registration passes up, and finds and dials actors elsewhere in
// the tree: through the Python actor's arbor.relay, up to the root and down
// to a Python sibling, which has no peer socket, or a Go one (relayed, and
// directly, with the tree's secret the Python actor passed on). The root
// reaches the Go grandchild through the Python actor, which the error's
// relay path names; once the Python actor has stopped, its subtree has left
// the registry.
func TestGoBelowPythonFindsAndDials(t *testing.T) {
	py := pyenv.Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	err = open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", nil)
		startWorker(t, n, "pysib", nil)
		if _, err := n.StartActor(spawn.Options{Name: "sibling", Env: append(os.Environ(), pythonEnv+"="+py)}); err != nil {
			return err
		}
		startChild := ipc.NewFunc[map[string]any, map[string]any]("start_child", nil)
		callChild := ipc.NewFunc[map[string]any, goDialReport]("call_child", nil)
		callChildPy := ipc.NewFunc[map[string]any, dialReport]("call_child", nil)
		got, err := startChild.Call(ctx, w.Channel(), map[string]any{"binary": self, "name": "go"})
		if err != nil {
			return fmt.Errorf("the Python actor's start_child: %w", err)
		}

		// Registered by the Python actor, with where it takes peers.
		e, err := spawn.Find(ctx, "root.py.go")
		if err != nil {
			return fmt.Errorf("Find of the Go grandchild: %w", err)
		}
		if e.UUID != got["uuid"] || e.Parent != w.ID().UUID || e.Addr == "" || e.PID == 0 || e.Host == "" {
			t.Errorf("the Go grandchild's entry %+v; want uuid %v, parent %s, a peer address, a pid and a host", e, got["uuid"], w.ID().UUID)
		}
		list, err := spawn.List(ctx, "root.py")
		if err != nil {
			return err
		}
		var names []string
		for _, e := range list {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, []string{"root.py", "root.py.go"}) {
			t.Errorf("List(root.py) = %v", names)
		}

		// From the grandchild, up through the Python actor.
		fromBelow, err := callChildPy.Call(ctx, w.Channel(), map[string]any{"name": "go", "fn": "dial_python", "args": "root.pysib"})
		if err != nil {
			return fmt.Errorf("the grandchild's Dial to the Python sibling: %w", err)
		}
		if fromBelow.Square != 49 || fromBelow.Type != "ValueError" || fromBelow.Source != "root.pysib" || !slices.Equal(fromBelow.Relay, []string{"root", "root.py"}) {
			t.Errorf("from the grandchild to root.pysib: %+v; want square 49 and a ValueError from root.pysib relayed through root, root.py", fromBelow)
		}
		for _, relayed := range []bool{true, false} {
			r, err := callChild.Call(ctx, w.Channel(), map[string]any{"name": "go", "fn": "dial_go", "args": dialGoArgs{Name: "root.sibling", Relay: relayed}})
			if err != nil {
				return fmt.Errorf("the grandchild's Dial to the Go sibling (relayed: %v): %w", relayed, err)
			}
			want := []string{"root", "root.py"}
			if !relayed {
				want = nil // its own socket
			}
			if r.Sum != 42 || r.Source != "root.sibling" || !slices.Equal(r.Relay, want) {
				t.Errorf("from the grandchild to root.sibling (relayed: %v): %+v; want sum 42 and an error from root.sibling relayed through %v", relayed, r, want)
			}
		}

		// From the root, down through the Python actor.
		e.Addr = ""
		ch, err := spawn.DialEntry(ctx, e, nil)
		if err != nil {
			return fmt.Errorf("the root's Dial to the grandchild through the Python actor: %w", err)
		}
		r, err := callGo(ctx, ch)
		if err != nil {
			ch.Close()
			return err
		}
		if r.Sum != 42 || r.Source != "root.py.go" || !slices.Equal(r.Relay, []string{"root.py"}) {
			t.Errorf("from the root to root.py.go: %+v; want sum 42 and an error from root.py.go relayed through root.py", r)
		}
		if err := ch.Close(); err != nil {
			t.Errorf("closing the relayed channel: %v", err)
		}

		if err := w.Stop(ctx); err != nil {
			return fmt.Errorf("stopping the Python actor: %w", err)
		}
		for _, name := range []string{"root.py", "root.py.go"} {
			if _, err := spawn.Find(ctx, name); !errors.Is(err, spawn.ErrNotFound) {
				t.Errorf("Find(%s) after the Python actor stopped: %v, want ErrNotFound", name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pyDialReport is what the Python worker's dial_report saw through the tree.
type pyDialReport struct {
	Found  string   `msgpack:"found"`  // the uuid arbor.find gave
	Waited string   `msgpack:"waited"` // and arbor.wait_for
	Listed []string `msgpack:"listed"` // the names arbor.list_actors gave
	Peer   string   `msgpack:"peer"`   // the dialed channel's peer
	Hops   []string `msgpack:"hops"`   // the relay's hops
	Sum    int      `msgpack:"sum"`
	Count  int      `msgpack:"count"` // the stream's items that were in order
	Type   string   `msgpack:"type"`
	Msg    string   `msgpack:"msg"`
	Source string   `msgpack:"source"`
	Relay  []string `msgpack:"relay"`  // the names in the error's relay path
	Closed bool     `msgpack:"closed"` // the relay's call had ended once the channel was closed
}

type dialReportArgs struct {
	Name string `msgpack:"name"`
	Go   bool   `msgpack:"go"`
}

var (
	dialFromPython = ipc.NewFunc[dialReportArgs, pyDialReport]("dial_report", nil)
	stopFromPython = ipc.NewFunc[string, any]("stop_by_name", nil)
)

// TestPythonDialsByName: a Python actor finds a Go sibling and a Python one
// by name (arbor.find, wait_for, list_actors, through its Go parent) and
// dials each (arbor.dial): always through the tree, up to the root and down
// (PROTOCOL.md §13.3). A func, a stream past the windows and an error work
// end to end; the Go error arrives as a RemoteError whose relay names the
// root; closing the channel ends the relay's call.
func TestPythonDialsByName(t *testing.T) {
	py := pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", nil)
		pysib := startWorker(t, n, "pysib", nil)
		sib, err := n.StartActor(spawn.Options{Name: "sibling", Env: append(os.Environ(), pythonEnv+"="+py)})
		if err != nil {
			return err
		}
		cases := []struct {
			name string
			goes bool
			uuid string
			want pyDialReport
		}{
			{"root.sibling", true, sib.ID().UUID, pyDialReport{Sum: 42, Msg: "from python"}},
			{"root.pysib", false, pysib.ID().UUID, pyDialReport{Sum: 49, Type: "ValueError", Msg: "from python"}},
		}
		for _, c := range cases {
			got, err := dialFromPython.Call(ctx, w.Channel(), dialReportArgs{Name: c.name, Go: c.goes})
			if err != nil {
				return fmt.Errorf("the Python actor's dial to %s: %w", c.name, err)
			}
			t.Logf("%s: %+v", c.name, got)
			if got.Found != c.uuid || got.Waited != c.uuid || !slices.Equal(got.Listed, []string{c.name}) {
				t.Errorf("%s: found %s, waited for %s, listed %v; want %s twice, and itself", c.name, got.Found, got.Waited, got.Listed, c.uuid)
			}
			if got.Peer != c.name || !slices.Equal(got.Hops, []string{"root"}) || !got.Closed {
				t.Errorf("%s: peer %q, hops %v, closed %v; want the actor, through root, closed", c.name, got.Peer, got.Hops, got.Closed)
			}
			if got.Sum != c.want.Sum || got.Count != 3000 {
				t.Errorf("%s: sum %d, %d items in order; want %d and 3000", c.name, got.Sum, got.Count, c.want.Sum)
			}
			if got.Type != c.want.Type && !c.goes || got.Msg != c.want.Msg || got.Source != c.name || !slices.Equal(got.Relay, []string{"root"}) {
				t.Errorf("%s: error %q %q from %q relayed through %v; want %q from it through root", c.name, got.Type, got.Msg, got.Source, got.Relay, c.want.Msg)
			}
		}
		if got, err := square.Call(ctx, w.Channel(), 3); err != nil || got != 9 {
			t.Errorf("square on the worker's own channel after its dials = %d, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPythonStopsGoByName: a Python actor stops a Go sibling by name
// (arbor.stop_actor: arbor.stop on a relayed channel, on its own behalf).
// The Go actor cancels the call it serves, naming the Python actor, and
// exits with status 0.
func TestPythonStopsGoByName(t *testing.T) {
	py := pyenv.Require(t)
	err := open(t, func(ctx context.Context, n *nursery.Nursery) error {
		w := startWorker(t, n, "py", nil)
		// Outside the nursery, which would take the stop it did not ask for
		// for a failure.
		sib, err := spawn.Start(ctx, spawn.Options{Name: "sibling", Env: append(os.Environ(), pythonEnv+"="+py)})
		if err != nil {
			return err
		}
		defer sib.Stop(ctx)
		held, err := hold.Open(ctx, sib.Channel(), 0) // returns once the call has begun
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { _, err := held.Result(); done <- err }()
		if _, err := stopFromPython.Call(ctx, w.Channel(), "root.sibling"); err != nil {
			return fmt.Errorf("the Python actor's stop_actor: %w", err)
		}
		return stoppedBy(t, "the stopped Go sibling", sib, done, "root.py")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stoppedBy checks an actor stopped by name: the call it was serving (its
// error on done) ends cancelled by the actor named by, and it exits; it
// returns how it exited.
func stoppedBy(t *testing.T, what string, a *spawn.Actor, done <-chan error, by string) error {
	t.Helper()
	select {
	case err := <-done:
		var re *protocol.RemoteError
		if !errors.As(err, &re) || re.Code != protocol.CodeCancelled || re.Canceller.Name != by {
			t.Errorf("the call %s served ended with %v; want cancelled by %s", what, err, by)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not end its call", what)
	}
	select {
	case <-a.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit", what)
	}
	return a.Wait()
}

// countsInOrder streams n items of count from the actor on ch and checks
// that each came, in order.
func countsInOrder(ctx context.Context, ch *ipc.Channel, n int) error {
	s, err := count.Open(ctx, ch, n)
	if err != nil {
		return err
	}
	want := 0
	for v, err := range s.All() {
		if err != nil {
			return err
		}
		if v != want {
			return fmt.Errorf("item %d is %d", want, v)
		}
		want++
	}
	if want != n {
		return fmt.Errorf("the stream ended after %d items, want %d", want, n)
	}
	return nil
}
