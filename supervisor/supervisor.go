package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
)

// Service is what a supervisor runs: Serve runs until ctx ends (and then
// returns promptly) or the service ends on its own. A nil error is a
// normal exit.
type Service interface {
	Serve(ctx context.Context) error
}

// Strategy says which children a child's failure restarts.
type Strategy int

const (
	// OneForOne restarts only the child that exited.
	OneForOne Strategy = iota
	// OneForAll stops every other child and restarts them all.
	OneForAll
	// RestForOne stops the children started after the one that exited and
	// restarts it and them.
	RestForOne
)

func (s Strategy) String() string {
	switch s {
	case OneForOne:
		return "one-for-one"
	case OneForAll:
		return "one-for-all"
	case RestForOne:
		return "rest-for-one"
	}
	return fmt.Sprintf("strategy(%d)", int(s))
}

// Restart says when a child that exited is restarted.
type Restart int

const (
	// Permanent children are always restarted.
	Permanent Restart = iota
	// Transient children are restarted only after an abnormal exit (a
	// non-nil error).
	Transient
	// Temporary children are never restarted.
	Temporary
)

// Child is one child of a supervisor.
type Child struct {
	Name    string
	Service Service
	Restart Restart
	// Shutdown bounds how long a stopping child may take: processes get
	// SIGKILL when it has passed. Zero means DefaultShutdown; BrutalKill
	// kills at once; Infinity waits as long as the child takes.
	Shutdown time.Duration
	// Significant children end the supervisor when they end for good (a
	// Transient child's normal exit, any Temporary exit), as Spec's
	// AutoShutdown says: OTP's significant children.
	Significant bool
	// Isolate makes the child's restarts its own business: they are
	// counted against the intensity (Spec.MaxRestarts within Period) apart
	// from the other children's, and past it the child alone is marked
	// fatal and left stopped while the supervisor carries on
	// (supervisord's FATAL) instead of the supervisor giving up.
	// RestartChild revives it.
	Isolate bool
	// Ready, if set, tells when the child is ready: after each start the
	// supervisor calls it, with a ctx that ends when the child stops,
	// until it returns nil, waiting ReadyInterval between tries. Until
	// then the child is "starting", and "ready" after (a child without
	// Ready is "running" once started). See TCPReady, HTTPReady,
	// CommandReady and ActorReady.
	Ready func(ctx context.Context) error
	// ReadyInterval is the wait between two tries of Ready; zero means
	// DefaultReadyInterval (100ms).
	ReadyInterval time.Duration
	// DependsOn names children, listed before this one, that must be
	// ready before this one starts, at the supervisor's start and when
	// AddChild adds it; until then it is "waiting". Children stop in the
	// reverse of their order, so what depends on a child stops first.
	DependsOn []string
}

// AutoShutdown says whether significant children end their supervisor.
type AutoShutdown int

const (
	// Never: significant children are like any other.
	Never AutoShutdown = iota
	// AnySignificant: the supervisor stops when any significant child has
	// ended for good.
	AnySignificant
	// AllSignificant: the supervisor stops when every significant child
	// has ended for good.
	AllSignificant
)

// Shutdown values with a special meaning. Infinity is spawn.Forever, so
// either can be given where the other is meant; BrutalKill is a value of
// its own, and spawn reads it (any negative duration but Forever) as no
// wait at all, so neither mix-up waits where a kill was meant.
const (
	DefaultShutdown               = 5 * time.Second
	Infinity        time.Duration = spawn.Forever
	BrutalKill      time.Duration = -2
)

// DefaultReadyInterval is Child.ReadyInterval's default.
const DefaultReadyInterval = 100 * time.Millisecond

// stopReportSlack is how long past a child's Shutdown the supervisor waits
// before it reports StopTimedOut: spawn's own escalation (the signal, then
// SIGKILL after Shutdown) needs a moment to be reaped. The supervisor
// still waits for the child after reporting.
const stopReportSlack = time.Second

// Spec configures a supervisor. Zero values are the documented defaults.
type Spec struct {
	Name     string
	Strategy Strategy
	// MaxRestarts restarts within Period are allowed; one more and the
	// supervisor gives up. Zero means 3 within 5s (OTP's intensity 1 is
	// too strict for programs that take seconds to start).
	MaxRestarts int
	Period      time.Duration
	// MinBackoff and MaxBackoff bound the wait before a child's restart;
	// each consecutive restart doubles it, with ±25% jitter. Zero means
	// 100ms and 10s. A child that stayed up ResetAfter (zero: 10s) starts
	// again from MinBackoff.
	MinBackoff, MaxBackoff, ResetAfter time.Duration
	// Events receives every lifecycle event, from the goroutine running
	// Serve; it must not block for long, nor call AddChild or RemoveChild
	// (which wait for that goroutine).
	Events func(Event)
	// Logger logs every event; nil discards them.
	Logger hclog.Logger
	// AutoShutdown: see Child.Significant. The zero value is Never.
	AutoShutdown AutoShutdown
	// MaxChildren caps AddChild; zero means no cap.
	MaxChildren int
}

// Supervisor runs children by a Spec. Build it with New.
type Supervisor struct {
	spec  Spec
	clock clock     // real; tests may substitute a fake before Serve
	calls chan call // AddChild, RemoveChild, StopChild and RestartChild, served by Serve's loop

	mu       sync.Mutex // guards children, state and serving
	children []Child
	state    []childState
	serving  chan struct{} // closed when the running Serve returns; nil when none runs
}

// ErrNotRunning is returned by AddChild, RemoveChild, StopChild and
// RestartChild when Serve is not running.
var ErrNotRunning = errors.New("supervisor: not running")

// ErrTooManyChildren is returned by AddChild past Spec.MaxChildren.
var ErrTooManyChildren = errors.New("supervisor: at its maximum number of children")

// ErrNoSuchChild is returned by RemoveChild, StopChild and RestartChild
// for a name the supervisor does not have.
var ErrNoSuchChild = errors.New("supervisor: no such child")

type childState struct {
	removed  bool // taken out by RemoveChild: a tombstone, so indexes stay stable
	status   Status
	restarts int
	started  time.Time
	lastExit error
	backoff  time.Duration
	service  Service     // the running instance, for its PID
	recent   []time.Time // an isolated child's restarts within the period
}

// New returns a supervisor for children, which start in the order given.
func New(spec Spec, children ...Child) *Supervisor {
	if spec.MaxRestarts == 0 {
		spec.MaxRestarts = 3
	}
	if spec.Period == 0 {
		spec.Period = 5 * time.Second
	}
	if spec.MinBackoff == 0 {
		spec.MinBackoff = 100 * time.Millisecond
	}
	if spec.MaxBackoff == 0 {
		spec.MaxBackoff = 10 * time.Second
	}
	if spec.ResetAfter == 0 {
		spec.ResetAfter = 10 * time.Second
	}
	if spec.Logger == nil {
		spec.Logger = hclog.NewNullLogger()
	}
	if spec.Name == "" {
		spec.Name = "supervisor"
	}
	return &Supervisor{spec: spec, clock: realClock{}, calls: make(chan call), children: append([]Child(nil), children...),
		state: make([]childState, len(children))}
}

// AddChild adds a child to a running supervisor and starts it: the way to
// grow a pool of identical workers. It fails with ErrTooManyChildren past
// Spec.MaxChildren, and with ErrNotRunning when Serve is not running.
func (s *Supervisor) AddChild(ctx context.Context, c Child) error {
	return s.ask(ctx, addRequest{child: c})
}

// RemoveChild stops a child of a running supervisor and forgets it: the way
// to shrink a pool. It returns once the child has stopped.
func (s *Supervisor) RemoveChild(ctx context.Context, name string) error {
	return s.ask(ctx, removeRequest{name: name})
}

// StopChild stops a child and keeps it stopped (it is not restarted,
// whatever its restart type) until RestartChild. It returns once the child
// has stopped.
func (s *Supervisor) StopChild(ctx context.Context, name string) error {
	return s.ask(ctx, stopRequest{name: name})
}

// RestartChild stops a child, if it runs, and starts it again at once. An
// operator's restart does not count towards the restart intensity.
func (s *Supervisor) RestartChild(ctx context.Context, name string) error {
	return s.ask(ctx, restartRequest{name: name})
}

func (s *Supervisor) ask(ctx context.Context, req request) error {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving == nil {
		return ErrNotRunning
	}
	c := call{req: req, reply: make(chan error, 1)}
	select {
	case s.calls <- c:
	case <-serving:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-c.reply
}

// IntensityError is a supervisor giving up: a child was restarted more
// often than the intensity allows.
type IntensityError struct {
	Supervisor string
	Child      string
	Restarts   int
	Period     time.Duration
	Last       error // the child's last exit
	// Isolated is true when only the child was given up on (marked
	// fatal), not the supervisor: see Child.Isolate.
	Isolated bool
}

func (e *IntensityError) Error() string {
	if e.Isolated {
		return fmt.Sprintf("supervisor %s marked child %s fatal: it needed more than %d restarts within %v; last exit: %v",
			e.Supervisor, e.Child, e.Restarts, e.Period, e.Last)
	}
	return fmt.Sprintf("supervisor %s gave up: child %s needed more than %d restarts within %v; last exit: %v",
		e.Supervisor, e.Child, e.Restarts, e.Period, e.Last)
}

func (e *IntensityError) Unwrap() error { return e.Last }

// ErrAlreadyServing is returned by Serve when the supervisor is already
// being served.
var ErrAlreadyServing = errors.New("supervisor: Serve is already running")

// Serve runs the supervisor until ctx ends or it gives up. Children start
// in order, each once the previous one's Serve has been started (a Service
// has no "ready" signal to wait for). Serving again, as a parent
// supervisor's restart does, starts the children afresh.
func (s *Supervisor) Serve(ctx context.Context) error {
	serving, err := s.begin()
	if err != nil {
		return err
	}
	defer func() {
		s.mu.Lock()
		s.serving = nil
		s.mu.Unlock()
		close(serving) // askers waiting to send get ErrNotRunning
	}()
	return newLoop(s).run(ctx)
}

// begin claims the supervisor for one Serve and readies its children for a
// fresh start. serving is closed, once Serve ends, by its caller.
func (s *Supervisor) begin() (serving chan struct{}, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving != nil {
		return nil, ErrAlreadyServing
	}
	// A fresh start: children removed by RemoveChild are dropped now that
	// no index is in flight, and restart history is forgotten.
	var kept []Child
	for i, c := range s.children {
		if !s.state[i].removed {
			kept = append(kept, c)
		}
	}
	s.children, s.state = kept, make([]childState, len(kept))
	for i, c := range s.children {
		if err := s.checkDeps(i, c); err != nil {
			return nil, err
		}
	}
	s.serving = make(chan struct{})
	return s.serving, nil
}

// checkDeps checks that child c, at index i, depends only on children
// listed before it. It is called with mu held.
func (s *Supervisor) checkDeps(i int, c Child) error {
	for _, d := range c.DependsOn {
		found := false
		for k := 0; k < i && k < len(s.children); k++ {
			found = found || s.children[k].Name == d && !s.state[k].removed
		}
		if !found {
			return fmt.Errorf("supervisor %s: child %s depends on %q, which is not a child listed before it", s.spec.Name, c.Name, d)
		}
	}
	return nil
}

// shutdownFor is a child's Shutdown with its default: supervisors get
// Infinity, as in OTP, since stopping their own children takes what it
// takes; everything else DefaultShutdown.
func shutdownFor(c Child) time.Duration {
	if c.Shutdown != 0 {
		return c.Shutdown
	}
	if _, ok := c.Service.(*Supervisor); ok {
		return Infinity
	}
	return DefaultShutdown
}

// serveRecovered runs a service, turning a panic into an error that keeps
// the stack.
func serveRecovered(ctx context.Context, svc Service) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("service panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return svc.Serve(ctx)
}

// nextBackoff doubles the child's backoff (or resets it after a long
// enough run) and adds jitter.
func (s *Supervisor) nextBackoff(i int, up time.Duration) time.Duration {
	var wait time.Duration
	s.set(i, func(st *childState) {
		st.restarts++
		switch {
		case st.backoff == 0 || up >= s.spec.ResetAfter:
			st.backoff = s.spec.MinBackoff
		default:
			st.backoff = min(2*st.backoff, s.spec.MaxBackoff)
		}
		wait = st.backoff
	})
	jitter := time.Duration((rand.Float64() - 0.5) / 2 * float64(wait)) // ±25%
	return min(max(wait+jitter, 0), s.spec.MaxBackoff)                  // the jitter never takes it past MaxBackoff
}

func (s *Supervisor) set(i int, f func(*childState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.state[i])
}

type shutdownKey struct{}

// childKey carries, to the Service of a child, what the supervisor knows of
// it: Command and Actor name the process after the child, and send its
// output to the supervisor's logger, unless their options say otherwise.
type childKey struct{}

type childInfo struct {
	name string
	log  hclog.Logger
}

// shutdownOf returns the Shutdown of the child whose ctx this is.
func shutdownOf(ctx context.Context) time.Duration {
	d, _ := ctx.Value(shutdownKey{}).(time.Duration)
	if d == 0 {
		return DefaultShutdown
	}
	return d
}
