package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// failOnce fails the first time it runs for a marker file, and then blocks
// until cancelled: an actor that crashes once.
var failOnce = ipc.NewFunc("test.failOnce", func(ctx context.Context, marker string) (int, error) {
	if _, err := os.Stat(marker); err != nil {
		os.WriteFile(marker, nil, 0o600)
		return 0, errors.New("first run fails")
	}
	<-ctx.Done()
	return 0, nil
})

// nestedSupervisor runs, inside an actor process, a supervisor over a
// crash-looping program, and returns what it returns when it gives up.
var nestedSupervisor = ipc.NewFunc("test.nestedSupervisor", func(ctx context.Context, _ struct{}) (int, error) {
	s := New(Spec{Name: "in-actor", MaxRestarts: 2, Period: time.Minute, MinBackoff: time.Millisecond},
		Child{Name: "crasher", Restart: Permanent, Service: Command(spawn.Options{Binary: "/bin/sh", Args: []string{"-c", "exit 1"}})})
	return 0, s.Serve(ctx)
})

// readyWhen is an actor's readiness function: ready once a file exists.
var readyWhen = ipc.NewFunc("test.readyWhen", func(ctx context.Context, _ struct{}) (struct{}, error) {
	if _, err := os.Stat(os.Getenv("READY_FILE")); err != nil {
		return struct{}{}, errors.New("not yet")
	}
	return struct{}{}, nil
})

// serveUntilCancelled is an actor's work: it blocks until cancelled.
var serveUntilCancelled = ipc.NewFunc("test.serveUntilCancelled", func(ctx context.Context, _ struct{}) (int, error) {
	<-ctx.Done()
	return 0, nil
})

func TestMain(m *testing.M) {
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	spawn.Main(ipc.MustNewTable(failOnce, nestedSupervisor, readyWhen, serveUntilCancelled))
	if mode := os.Getenv(mainModeEnv); mode != "" {
		os.Exit(runMainMode(mode))
	}
	goleak.VerifyTestMain(m)
}

// recorder keeps the events a supervisor emits.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) count(kind EventKind, child string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind && (child == "" || e.Child == child) {
			n++
		}
	}
	return n
}

// backoffs lists the backoffs of a child's Restarting events.
func (r *recorder) backoffs(child string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, e := range r.events {
		if e.Kind == Restarting && e.Child == child {
			out = append(out, e.Backoff)
		}
	}
	return out
}

func (r *recorder) order(kind EventKind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e.Child)
		}
	}
	return out
}

// sh is a child running a shell script.
func sh(name, script string, restart Restart) Child {
	return Child{Name: name, Restart: restart,
		Service: Command(spawn.Options{Name: name, Binary: "/bin/sh", Args: []string{"-c", script}})}
}

// printed returns a logger for Spec.Logger, and a condition that holds
// once a child has printed line on its stdout (as a shell does once it has
// installed a trap, say).
func printed(line string) (hclog.Logger, func() bool) {
	var out proctest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info})
	return logger, func() bool { return strings.Contains(out.String(), ": "+line+": stream=stdout") }
}

// crashOnce runs a script that exits 1 the first time and sleeps after.
func crashOnce(t *testing.T, name string, restart Restart) Child {
	marker := filepath.Join(t.TempDir(), name)
	return sh(name, fmt.Sprintf(`if [ -e %q ]; then exec sleep 30; fi; touch %q; exit 1`, marker, marker), restart)
}

// serve runs s in a goroutine the test owns and returns a function that
// cancels it and returns what Serve returned.
func serve(t *testing.T, s *Supervisor) (stop func() error, result <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			proctest.Within(t, 15*time.Second, "Serve", func() { err = <-errc })
		})
		return err
	}, errc
}

func TestStrategies(t *testing.T) {
	tests := []struct {
		strategy Strategy
		starts   map[string]int // Started events per child once B has restarted
	}{
		{OneForOne, map[string]int{"a": 1, "b": 2, "c": 1}},
		{OneForAll, map[string]int{"a": 2, "b": 2, "c": 2}},
		{RestForOne, map[string]int{"a": 1, "b": 2, "c": 2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.strategy), func(t *testing.T) {
			rec := &recorder{}
			s := New(Spec{Strategy: tt.strategy, MinBackoff: time.Millisecond, Events: rec.add},
				sh("a", "exec sleep 30", Permanent), crashOnce(t, "b", Permanent), sh("c", "exec sleep 30", Permanent))
			stop, _ := serve(t, s)
			proctest.Eventually(t, 10*time.Second, "the restarts", func() bool {
				for child, n := range tt.starts {
					if rec.count(Started, child) < n {
						return false
					}
				}
				return true
			})
			proctest.Eventually(t, 10*time.Second, "every child's process", func() bool {
				for _, c := range s.Snapshot() {
					if c.State != "running" || c.PID == 0 {
						return false
					}
				}
				return true
			})
			if err := stop(); err != nil {
				t.Fatalf("Serve returned %v after its ctx ended", err)
			}
			for child, n := range tt.starts {
				if got := rec.count(Started, child); got != n {
					t.Errorf("child %s started %d times, want %d", child, got, n)
				}
			}
			// The final stop goes in reverse start order.
			stops := rec.order(Stopped)
			if last := stops[len(stops)-3:]; fmt.Sprint(last) != "[c b a]" {
				t.Errorf("stop order %v", stops)
			}
			proctest.NoChildrenLeft(t)
		})
	}
}

func TestRestartTypes(t *testing.T) {
	tests := []struct {
		name      string
		child     func(t *testing.T) Child
		restarted bool
	}{
		{"permanent after a normal exit", func(t *testing.T) Child {
			marker := filepath.Join(t.TempDir(), "m")
			return sh("x", fmt.Sprintf(`if [ -e %q ]; then exec sleep 30; fi; touch %q; exit 0`, marker, marker), Permanent)
		}, true},
		{"transient after a normal exit", func(t *testing.T) Child { return sh("x", "exit 0", Transient) }, false},
		{"transient after a failure", func(t *testing.T) Child { return crashOnce(t, "x", Transient) }, true},
		{"transient with a configured normal status", func(t *testing.T) Child {
			return Child{Name: "x", Restart: Transient,
				Service: Command(spawn.Options{Binary: "/bin/sh", Args: []string{"-c", "exit 4"}}, 4)}
		}, false},
		{"temporary after a failure", func(t *testing.T) Child { return sh("x", "exit 1", Temporary) }, false},
	}
	for _, strategy := range []Strategy{OneForOne, OneForAll, RestForOne} {
		for _, tt := range tests {
			t.Run(strategy.String()+"/"+tt.name, func(t *testing.T) {
				testRestartType(t, strategy, tt.child(t), tt.restarted)
			})
		}
	}
}

// testRestartType runs child (named "x") alone under strategy and checks
// whether its first exit restarts it.
func testRestartType(t *testing.T, strategy Strategy, child Child, restarted bool) {
	rec := &recorder{}
	s := New(Spec{Strategy: strategy, MinBackoff: time.Millisecond, Events: rec.add}, child)
	stop, _ := serve(t, s)
	proctest.Eventually(t, 10*time.Second, "the exit", func() bool { return rec.count(Exited, "x") >= 1 })
	proctest.Eventually(t, 10*time.Second, "the decision", func() bool {
		st := s.Snapshot()[0].State
		return st == "stopped" || st == "restarting" || rec.count(Started, "x") == 2
	})
	if restarted {
		proctest.Eventually(t, 10*time.Second, "the restart", func() bool { return rec.count(Started, "x") == 2 })
	} else if st := s.Snapshot()[0]; st.State != "stopped" || rec.count(Restarting, "x") != 0 {
		t.Fatalf("restarted when it should not be: %+v", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	proctest.NoChildrenLeft(t)
}

func TestIntensityEscalatesThroughTwoLevels(t *testing.T) {
	rec := &recorder{}
	inner := New(Spec{Name: "inner", MaxRestarts: 2, Period: time.Minute, MinBackoff: time.Millisecond, Events: rec.add},
		sh("crasher", "exit 1", Permanent))
	outer := New(Spec{Name: "outer", MaxRestarts: 1, Period: time.Minute, MinBackoff: time.Millisecond, Events: rec.add},
		Child{Name: "inner", Service: inner, Restart: Permanent}, sh("bystander", "exec sleep 30", Permanent))
	var err error
	proctest.Within(t, 20*time.Second, "Serve", func() { err = outer.Serve(context.Background()) })
	var ie *IntensityError
	if !errors.As(err, &ie) || ie.Supervisor != "outer" || ie.Child != "inner" || ie.Restarts != 1 {
		t.Fatalf("got %v", err)
	}
	var innerErr *IntensityError
	if !errors.As(ie.Last, &innerErr) || innerErr.Supervisor != "inner" || innerErr.Child != "crasher" || innerErr.Restarts != 2 {
		t.Fatalf("the outer error does not carry the inner one: %v", ie.Last)
	}
	if n := rec.count(GaveUp, ""); n != 3 { // inner twice, outer once
		t.Fatalf("%d gave-up events, want 3", n)
	}
	if rec.count(Stopped, "bystander") != 1 {
		t.Fatal("the bystander was not stopped when the outer supervisor gave up")
	}
	proctest.NoChildrenLeft(t)
}

func TestBackoffHoldsBackACrashLoop(t *testing.T) {
	rec := &recorder{}
	s := New(Spec{MaxRestarts: 1000, Period: time.Minute, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Events: rec.add},
		sh("looper", "exit 1", Permanent))
	clk := newFakeClock()
	s.clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	// A second of the supervisor's clock: each backoff passes as soon as
	// it is set. Past 10 restarts the loop has not been held back.
	var elapsed time.Duration
	for {
		wait, ok := clk.awaitTimer(t, "a backoff", func() bool { return rec.count(Restarting, "looper") > 10 })
		if !ok || elapsed+wait >= time.Second {
			break
		}
		elapsed += wait
		clk.Advance(wait)
	}
	cancel()
	var err error
	proctest.Within(t, 10*time.Second, "Serve", func() { err = <-errc })
	if err != nil {
		t.Fatal(err)
	}
	// Waits of 50, 100, 200, 200, ... ms (±25%) allow about 6 restarts in a
	// second; without backoff a shell that exits at once restarts hundreds
	// of times.
	n := rec.count(Restarting, "looper")
	t.Logf("%d restarts in 1s", n)
	if n < 2 || n > 10 {
		t.Fatalf("%d restarts in 1s: backoff is not pacing the loop", n)
	}
	proctest.NoChildrenLeft(t)
}

func TestStubbornChildIsKilledAfterItsShutdown(t *testing.T) {
	rec := &recorder{}
	c := sh("stubborn", `trap "" TERM; echo up; while :; do sleep 1; done`, Permanent)
	c.Shutdown = 200 * time.Millisecond
	logger, up := printed("up")
	s := New(Spec{Events: rec.add, Logger: logger}, c)
	stop, _ := serve(t, s)
	proctest.Eventually(t, 5*time.Second, "the child to start", func() bool { return s.Snapshot()[0].PID != 0 })
	proctest.Eventually(t, 5*time.Second, "the shell to install its trap", up)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	proctest.NoChildrenLeft(t)
}

func TestActorChild(t *testing.T) {
	rec := &recorder{}
	marker := filepath.Join(t.TempDir(), "marker")
	s := New(Spec{MinBackoff: time.Millisecond, Events: rec.add},
		Child{Name: "worker", Restart: Permanent, Service: Actor(failOnce, marker, spawn.Options{Name: "worker"})})
	stop, _ := serve(t, s)
	proctest.Eventually(t, 10*time.Second, "the restart", func() bool { return rec.count(Started, "worker") == 2 })
	proctest.Eventually(t, 10*time.Second, "the actor's pid", func() bool { return s.Snapshot()[0].PID != 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if rec.count(Exited, "worker") < 1 {
		t.Fatal("no exit recorded")
	}
	proctest.NoChildrenLeft(t)
}

func TestPoolGrowsAndShrinks(t *testing.T) {
	rec := &recorder{}
	pool := New(Spec{Name: "pool", MaxChildren: 6, Events: rec.add})
	stop, _ := serve(t, pool)
	defer stop()
	ctx := context.Background()
	proctest.Eventually(t, 5*time.Second, "Serve to run", func() bool {
		return !errors.Is(pool.RemoveChild(ctx, "nobody"), ErrNotRunning)
	})
	worker := func(i int) Child { return sh(fmt.Sprint("w", i), "exec sleep 30", Permanent) }
	// Grow to 6 from several goroutines at once.
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pool.AddChild(ctx, worker(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := pool.AddChild(ctx, worker(6)); !errors.Is(err, ErrTooManyChildren) {
		t.Fatalf("a 7th worker: %v", err)
	}
	proctest.Eventually(t, 10*time.Second, "6 running workers", func() bool {
		pids := map[int]bool{}
		for _, c := range pool.Snapshot() {
			if c.PID != 0 {
				pids[c.PID] = true
			}
		}
		return len(pids) == 6
	})
	// Shrink to 2, again concurrently.
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pool.RemoveChild(ctx, fmt.Sprint("w", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(pool.Snapshot()); n != 2 {
		t.Fatalf("%d workers after shrinking to 2", n)
	}
	if err := pool.RemoveChild(ctx, "w0"); !errors.Is(err, ErrNoSuchChild) {
		t.Fatalf("removing a removed worker: %v", err)
	}
	if err := pool.AddChild(ctx, worker(7)); err != nil { // room again
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := pool.AddChild(ctx, worker(8)); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("AddChild after Serve: %v", err)
	}
	proctest.NoChildrenLeft(t)
}

func TestSignificantChildEndsTheSupervisor(t *testing.T) {
	for _, mode := range []AutoShutdown{AnySignificant, AllSignificant} {
		rec := &recorder{}
		job := sh("job", "exit 0", Transient)
		job.Significant = true
		other := sh("other", "exec sleep 30", Permanent)
		s := New(Spec{AutoShutdown: mode, Events: rec.add}, other, job)
		var err error
		proctest.Within(t, 10*time.Second, "Serve", func() { err = s.Serve(context.Background()) })
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if rec.count(Stopped, "other") != 1 {
			t.Fatalf("%v: the other child was not stopped", mode)
		}
	}
	proctest.NoChildrenLeft(t)
}

// slowService ignores its ctx until released, as a wedged in-process
// child would.
type slowService struct{ release <-chan struct{} }

func (s slowService) Serve(ctx context.Context) error {
	<-ctx.Done()
	<-s.release
	return nil
}

func TestStopTimeoutIsReported(t *testing.T) {
	rec := &recorder{}
	release := make(chan struct{})
	events := func(e Event) {
		rec.add(e)
		if e.Kind == StopTimedOut {
			close(release) // the child stays wedged past the report
		}
	}
	s := New(Spec{Events: events}, Child{Name: "slow", Service: slowService{release: release}, Shutdown: 100 * time.Millisecond})
	clk := newFakeClock()
	s.clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	proctest.Eventually(t, 5*time.Second, "the child to run", func() bool { return rec.count(Started, "slow") == 1 })
	cancel()
	wait, _ := clk.awaitTimer(t, "the stop's report timer", nil)
	if want := 100*time.Millisecond + stopReportSlack; wait != want {
		t.Errorf("the stop waits %v before its report, want %v", wait, want)
	}
	clk.Advance(wait)
	var err error
	proctest.Within(t, 15*time.Second, "Serve", func() { err = <-errc })
	if err != nil {
		t.Fatal(err)
	}
	if rec.count(StopTimedOut, "slow") != 1 || rec.count(Stopped, "slow") != 1 {
		t.Fatalf("events: %v", rec.order(StopTimedOut))
	}
}

func TestSupervisorInsideAnActor(t *testing.T) {
	outer := New(Spec{Name: "outer", MaxRestarts: 1, Period: time.Minute, MinBackoff: time.Millisecond},
		Child{Name: "host", Restart: Permanent, Service: Actor(nestedSupervisor, struct{}{}, spawn.Options{Name: "host"})})
	var err error
	proctest.Within(t, 20*time.Second, "Serve", func() { err = outer.Serve(context.Background()) })
	var ie *IntensityError
	var remote *protocol.RemoteError
	if !errors.As(err, &ie) || ie.Child != "host" || !errors.As(err, &remote) ||
		!strings.Contains(remote.Message, "supervisor in-actor gave up: child crasher") || remote.Source.Name != "root.host" {
		t.Fatalf("got %v", err)
	}
	proctest.NoChildrenLeft(t)
}

func TestBrutalKill(t *testing.T) {
	rec := &recorder{}
	c := sh("victim", `trap "" TERM; echo up; while :; do sleep 1; done`, Permanent)
	c.Shutdown = BrutalKill
	s := New(Spec{Events: rec.add}, c)
	stop, _ := serve(t, s)
	proctest.Eventually(t, 5*time.Second, "the child to start", func() bool { return s.Snapshot()[0].PID != 0 })
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped %v after the request", time.Since(began))
	proctest.NoChildrenLeft(t)
}

func TestStopAndRestartChild(t *testing.T) {
	rec := &recorder{}
	s := New(Spec{Events: rec.add}, sh("a", "exec sleep 30", Permanent), sh("b", "exec sleep 30", Permanent))
	stop, _ := serve(t, s)
	defer stop()
	ctx := context.Background()
	proctest.Eventually(t, 5*time.Second, "both running", func() bool {
		snap := s.Snapshot()
		return snap[0].PID != 0 && snap[1].PID != 0
	})
	first := s.Snapshot()[0].PID
	if err := s.RestartChild(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 5*time.Second, "a new process for a", func() bool {
		p := s.Snapshot()[0].PID
		return p != 0 && p != first
	})
	proctest.Gone(t, "a's first process", first)
	if err := s.StopChild(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if st := s.Snapshot()[1]; st.State != "stopped" || rec.count(Restarting, "b") != 0 {
		t.Fatalf("b after StopChild: %+v", st)
	}
	if err := s.RestartChild(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.StopChild(ctx, "nobody"); !errors.Is(err, ErrNoSuchChild) {
		t.Fatalf("StopChild(nobody): %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	proctest.NoChildrenLeft(t)
}

// An isolated child that crash-loops is marked fatal alone; the others
// keep running and the supervisor does not give up. RestartChild revives
// it.
func TestIsolatedChildGoesFatalAlone(t *testing.T) {
	rec := &recorder{}
	crasher := sh("crasher", "exit 3", Permanent)
	crasher.Isolate = true
	s := New(Spec{Events: rec.add, MaxRestarts: 2, Period: time.Minute, MinBackoff: time.Millisecond, MaxBackoff: time.Second},
		sh("steady", "exec sleep 30", Permanent), crasher)
	stop, result := serve(t, s)
	defer stop()
	proctest.Eventually(t, 10*time.Second, "the crasher marked fatal", func() bool { return rec.count(Fatal, "crasher") == 1 })
	snap := s.Snapshot()
	if snap[1].State != "fatal" || snap[0].State != "running" || snap[0].PID == 0 {
		t.Fatalf("after the crash loop: %+v", snap)
	}
	if n := rec.count(Started, "crasher"); n != 3 {
		t.Fatalf("the crasher started %d times, want 3 (2 restarts)", n)
	}
	select {
	case err := <-result:
		t.Fatalf("the supervisor ended: %v", err)
	default:
	}
	if err := s.RestartChild(context.Background(), "crasher"); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "fatal again after the revival", func() bool { return rec.count(Fatal, "crasher") == 2 })
	if n := rec.count(Started, "crasher"); n != 6 {
		t.Fatalf("revived, the crasher started %d times in all, want 6: its history starts afresh", n)
	}
	if b := rec.backoffs("crasher"); len(b) != 4 || b[2] >= b[1] {
		t.Fatalf("backoffs %v: want two runs of two, the second starting again from the minimum", b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	proctest.NoChildrenLeft(t)
}

// A child that depends on another starts only once that one is ready, as
// its Ready check says (a TCP port that accepts late, an actor's readiness
// function); they stop in reverse order (issue 11, readiness and order).
func TestReadinessAndOrder(t *testing.T) {
	rec := &recorder{}
	// The "database" is a program; its port is this test's listener,
	// opened only once the test has seen the program start.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	db := sh("db", "exec sleep 30", Permanent)
	db.Ready, db.ReadyInterval = TCPReady(addr), 10*time.Millisecond
	file := filepath.Join(t.TempDir(), "ready")
	cache := Child{Name: "cache", Service: Actor(serveUntilCancelled, struct{}{}, spawn.Options{Name: "cache", Env: append(os.Environ(), "READY_FILE="+file)})}
	cache.Ready, cache.ReadyInterval = ActorReady(cache.Service, readyWhen), 10*time.Millisecond
	app := sh("app", "exec sleep 30", Permanent)
	app.DependsOn = []string{"db", "cache"}
	s := New(Spec{Events: rec.add}, db, cache, app)
	stop, _ := serve(t, s)
	defer stop()
	states := func() string {
		var out []string
		for _, c := range s.Snapshot() {
			out = append(out, c.Name+"="+string(c.State))
		}
		return strings.Join(out, " ")
	}
	proctest.Eventually(t, 10*time.Second, "db and cache starting", func() bool {
		return states() == "db=starting cache=starting app=waiting"
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	proctest.Eventually(t, 10*time.Second, "db ready", func() bool { return states() == "db=ready cache=starting app=waiting" })
	os.WriteFile(file, nil, 0o600)
	proctest.Eventually(t, 10*time.Second, "app running", func() bool { return states() == "db=ready cache=ready app=running" })
	if got := rec.order(Started); strings.Join(got, ",") != "db,cache,app" {
		t.Fatalf("started %v", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := rec.order(Stopped); strings.Join(got, ",") != "app,cache,db" {
		t.Fatalf("stopped %v, want the reverse of the start", got)
	}
	proctest.NoChildrenLeft(t)
}

// A dependency must be listed before the child that names it.
func TestDependsOnLaterChildIsRefused(t *testing.T) {
	a := sh("a", "exec sleep 30", Permanent)
	a.DependsOn = []string{"b"}
	s := New(Spec{}, a, sh("b", "exec sleep 30", Permanent))
	err := s.Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), `child a depends on "b", which is not a child listed before it`) {
		t.Fatalf("got %v", err)
	}
	proctest.NoChildrenLeft(t)
}

// Edge cases of readiness found in review: a child that exits before its
// check passes lets Serve end; a waiting child starts once a dependency
// without a Ready check comes back by a restart; StopChild holds a waiting
// child; a removed and re-added dependency counts.
func TestReadinessEdges(t *testing.T) {
	t.Run("exits before ready", func(t *testing.T) {
		c := sh("quitter", "exit 0", Temporary)
		c.Ready = func(context.Context) error { return errors.New("never") }
		c.ReadyInterval = time.Millisecond
		s := New(Spec{}, c)
		stop, _ := serve(t, s)
		proctest.Eventually(t, 5*time.Second, "the quitter stopped", func() bool { return s.Snapshot()[0].State == "stopped" })
		if err := stop(); err != nil { // hung before the fix
			t.Fatal(err)
		}
	})
	t.Run("dependency back by a restart", func(t *testing.T) {
		rec := &recorder{}
		s := New(Spec{Events: rec.add, MinBackoff: 50 * time.Millisecond}, crashOnce(t, "a", Permanent))
		stop, _ := serve(t, s)
		defer stop()
		proctest.Eventually(t, 5*time.Second, "a restarting", func() bool { return rec.count(Restarting, "a") == 1 })
		b := sh("b", "exec sleep 30", Permanent)
		b.DependsOn = []string{"a"}
		if err := s.AddChild(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		proctest.Eventually(t, 5*time.Second, "b running", func() bool { return s.Snapshot()[1].State == "running" })
	})
	t.Run("stop while waiting, re-added dependency", func(t *testing.T) {
		gate := filepath.Join(t.TempDir(), "gate")
		a := sh("a", "exec sleep 30", Permanent)
		a.Ready, a.ReadyInterval = func(context.Context) error { _, err := os.Stat(gate); return err }, time.Millisecond
		b := sh("b", "exec sleep 30", Permanent)
		b.DependsOn = []string{"a"}
		s := New(Spec{}, a, b)
		stop, _ := serve(t, s)
		defer stop()
		ctx := context.Background()
		proctest.Eventually(t, 5*time.Second, "b waiting", func() bool { return s.Snapshot()[1].State == "waiting" })
		if st := s.Snapshot()[0]; st.State != "starting" || st.PID == 0 {
			t.Errorf("a, started and not ready yet: %+v; want starting, with its pid", st)
		}
		if err := s.StopChild(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(gate, nil, 0o600)
		proctest.Eventually(t, 5*time.Second, "a ready", func() bool { return s.Snapshot()[0].State == "ready" })
		if st := s.Snapshot()[0]; st.PID == 0 || st.Uptime <= 0 {
			t.Errorf("a, ready: %+v; want its pid and uptime", st)
		}
		if st := s.Snapshot()[1].State; st != "stopped" {
			t.Fatalf("b, stopped while waiting, is %s once a is ready", st)
		}
		if err := s.RemoveChild(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddChild(ctx, Child{Name: "a", Service: Command(spawn.Options{Name: "a", Binary: "/bin/sh", Args: []string{"-c", "exec sleep 30"}})}); err != nil {
			t.Fatal(err)
		}
		c := sh("c", "exec sleep 30", Permanent)
		c.DependsOn = []string{"a"}
		if err := s.AddChild(ctx, c); err != nil {
			t.Fatal(err)
		}
		proctest.Eventually(t, 5*time.Second, "c running", func() bool {
			for _, st := range s.Snapshot() {
				if st.Name == "c" {
					return st.State == "running"
				}
			}
			return false
		})
	})
	proctest.NoChildrenLeft(t)
}

// HTTPReady: ready on a 2xx answer only; https is refused with advice.
func TestHTTPReady(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	check := HTTPReady(srv.URL + "/health")
	ctx := context.Background()
	if err := check(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy: %v", err)
	}
	healthy.Store(true)
	if err := check(ctx); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	if err := HTTPReady(srv.URL + "/other")(ctx); err == nil {
		t.Fatal("a 503 on another path passed")
	}
	if err := HTTPReady("https://example.invalid/")(ctx); err == nil || !strings.Contains(err.Error(), "curl") {
		t.Fatalf("https: %v", err)
	}
}

// The jitter never takes a backoff past MaxBackoff (issue 17, item 6:
// 12.2 s was seen with MaxBackoff 10 s).
func TestBackoffStaysUnderMax(t *testing.T) {
	s := New(Spec{MinBackoff: time.Second, MaxBackoff: 10 * time.Second}, sh("a", "true", Permanent))
	for range 200 {
		if d := s.nextBackoff(0, 0); d > 10*time.Second {
			t.Fatalf("backoff %v past MaxBackoff", d)
		}
	}
}
