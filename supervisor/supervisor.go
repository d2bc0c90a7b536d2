package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sort"
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
	spec Spec
	reqs chan request // AddChild and RemoveChild, served by Serve's loop

	mu       sync.Mutex // guards children, state and serving
	children []Child
	state    []childState
	serving  chan struct{} // closed when the running Serve returns; nil when none runs
}

// request is a change of children asked of a running supervisor.
type request struct {
	add   *Child
	name  string // the child RemoveChild, StopChild or RestartChild acts on
	op    op
	reply chan error
}

// op is what a request does to the child it names.
type op uint8

const (
	opRemove op = iota + 1
	opStop
	opRestart
)

// ErrNotRunning is returned by AddChild and RemoveChild when Serve is not
// running.
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
	return &Supervisor{spec: spec, reqs: make(chan request), children: append([]Child(nil), children...),
		state: make([]childState, len(children))}
}

// AddChild adds a child to a running supervisor and starts it: the way to
// grow a pool of identical workers. It fails with ErrTooManyChildren past
// Spec.MaxChildren, and with ErrNotRunning when Serve is not running.
func (s *Supervisor) AddChild(ctx context.Context, c Child) error {
	return s.ask(ctx, request{add: &c})
}

// RemoveChild stops a child of a running supervisor and forgets it: the way
// to shrink a pool. It returns once the child has stopped.
func (s *Supervisor) RemoveChild(ctx context.Context, name string) error {
	return s.ask(ctx, request{name: name, op: opRemove})
}

// StopChild stops a child and keeps it stopped (it is not restarted,
// whatever its restart type) until RestartChild. It returns once the child
// has stopped.
func (s *Supervisor) StopChild(ctx context.Context, name string) error {
	return s.ask(ctx, request{name: name, op: opStop})
}

// RestartChild stops a child, if it runs, and starts it again at once. An
// operator's restart does not count towards the restart intensity.
func (s *Supervisor) RestartChild(ctx context.Context, name string) error {
	return s.ask(ctx, request{name: name, op: opRestart})
}

func (s *Supervisor) ask(ctx context.Context, r request) error {
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving == nil {
		return ErrNotRunning
	}
	r.reply = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-serving:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.reply
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

// exit is a child's Serve returning.
type exit struct {
	i   int
	gen int
	err error
}

// run is one running instance of a child.
type run struct {
	gen    int
	cancel context.CancelFunc
	done   chan struct{}
}

// ErrAlreadyServing is returned by Serve when the supervisor is already
// being served.
var ErrAlreadyServing = errors.New("supervisor: Serve is already running")

// Serve runs the supervisor until ctx ends or it gives up. Children start
// in order, each once the previous one's Serve has been started (a Service
// has no "ready" signal to wait for). Serving again, as a parent
// supervisor's restart does, starts the children afresh.
func (s *Supervisor) Serve(ctx context.Context) error {
	serving := make(chan struct{})
	s.mu.Lock()
	if s.serving != nil {
		s.mu.Unlock()
		return ErrAlreadyServing
	}
	s.serving = serving
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
			s.serving = nil
			s.mu.Unlock()
			close(serving)
			return err
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.serving = nil
		s.mu.Unlock()
		close(serving) // askers waiting to send get ErrNotRunning
	}()

	exits := make(chan exit)
	readies := make(chan exit) // a child's Ready passed (err unused)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	runs := make([]*run, len(s.children))
	gens := make([]int, len(s.children))
	status := func(i int) Status {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.state[i].removed {
			return StatusRemoved
		}
		return s.state[i].status
	}
	var restartTimes []time.Time
	// due is a group of children whose backoff has passed, to start in
	// order; gens voids the start of any member stopped meanwhile.
	type due struct{ group, gens []int }
	restarts := make(chan due)
	var timers sync.WaitGroup

	start := func(i int) {
		gens[i]++
		gen := gens[i]
		c := s.children[i]
		// Each child's ctx is cancelled only by stop, one child at a time,
		// so that children stop in reverse start order.
		cctx := context.WithValue(context.WithoutCancel(ctx), shutdownKey{}, shutdownFor(c))
		cctx = context.WithValue(cctx, childKey{}, childInfo{name: c.Name, log: s.spec.Logger})
		cctx, cancel := context.WithCancel(cctx)
		r := &run{gen: gen, cancel: cancel, done: make(chan struct{})}
		runs[i] = r
		status := StatusRunning
		if c.Ready != nil {
			status = StatusStarting
		}
		s.set(i, func(st *childState) { st.status, st.started, st.service = status, time.Now(), c.Service })
		s.emit(Event{Kind: Started, Child: c.Name})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := serveRecovered(cctx, c.Service)
			cancel() // what watches this run (its Ready check) ends with it
			close(r.done)
			select {
			case exits <- exit{i: i, gen: gen, err: err}:
			case <-quit:
			}
		}()
		if c.Ready != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !waitReady(cctx, c) {
					return // stopped, or exited, first
				}
				select {
				case readies <- exit{i: i, gen: gen}:
				case <-quit:
				}
			}()
		}
	}
	// ready reports whether the child named name is ready: started and,
	// if it has a Ready check, past it.
	ready := func(name string) bool {
		for k, c := range s.children {
			if c.Name == name {
				st := status(k)
				if st == StatusRemoved {
					continue // a tombstone; the child may have been added again
				}
				return st == StatusReady || st == StatusRunning && c.Ready == nil
			}
		}
		return false
	}
	// startable reports whether everything child i depends on is ready.
	startable := func(i int) bool {
		for _, d := range s.children[i].DependsOn {
			if !ready(d) {
				return false
			}
		}
		return true
	}
	// startOrWait starts child i, or marks it waiting for what it
	// depends on.
	startOrWait := func(i int) {
		if startable(i) {
			start(i)
			return
		}
		s.set(i, func(st *childState) { st.status = StatusWaiting })
	}
	// startWaiting starts, in order, the waiting children whose
	// dependencies are now ready.
	startWaiting := func() {
		for i := range runs {
			if status(i) == StatusWaiting && startable(i) {
				start(i)
			}
		}
	}
	// stop stops children from last to first, each before the next, and
	// voids their pending restarts.
	stop := func(which []int) {
		for k := len(which) - 1; k >= 0; k-- {
			i := which[k]
			gens[i]++ // its exit, or a restart pending for it, is now stale
			r := runs[i]
			if r == nil {
				if status(i) == StatusWaiting { // held stopped: not to start when its dependencies are ready
					s.set(i, func(st *childState) { st.status = StatusStopped })
				}
				continue
			}
			runs[i] = nil
			r.cancel()
			limit := shutdownFor(s.children[i])
			if limit > 0 {
				t := time.NewTimer(limit + stopReportSlack)
				select {
				case <-r.done:
				case <-t.C:
					s.emit(Event{Kind: StopTimedOut, Child: s.children[i].Name})
					<-r.done
				}
				t.Stop()
			} else {
				<-r.done
			}
			s.set(i, func(st *childState) { st.status = StatusStopped })
			s.emit(Event{Kind: Stopped, Child: s.children[i].Name})
		}
	}
	// active lists, from index from on, the children running or waiting
	// for a restart: those a strategy takes down and brings back.
	active := func(from int) []int {
		var out []int
		for i := from; i < len(runs); i++ {
			if st := status(i); runs[i] != nil || st == StatusRestarting {
				out = append(out, i)
			}
		}
		return out
	}
	// ended reports whether the significant children say the supervisor
	// is done.
	ended := func(i int) bool {
		if !s.children[i].Significant {
			return false
		}
		switch s.spec.AutoShutdown {
		case AnySignificant:
			return true
		case AllSignificant:
			for k, c := range s.children {
				if st := status(k); c.Significant && st != StatusStopped && st != StatusRemoved && st != StatusFatal {
					return false
				}
			}
			return true
		}
		return false
	}
	// schedule starts group, in order, once wait has passed. Temporary
	// children are not brought back: they end when taken down.
	schedule := func(group []int, wait time.Duration) {
		var members, memberGens []int
		for _, i := range group {
			if s.children[i].Restart == Temporary {
				continue // never the child that failed: its exit ended it for good
			}
			members = append(members, i)
			memberGens = append(memberGens, gens[i])
			s.set(i, func(st *childState) { st.status, st.backoff = StatusRestarting, wait })
			s.emit(Event{Kind: Restarting, Child: s.children[i].Name, Backoff: wait})
		}
		timers.Add(1)
		go func() {
			defer timers.Done()
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
				select {
				case restarts <- due{group: members, gens: memberGens}:
				case <-quit:
				}
			case <-quit:
			}
		}()
	}
	serveRequest := func(r request) {
		switch {
		case r.add != nil:
			s.mu.Lock()
			n := 0
			for k := range s.children {
				if !s.state[k].removed {
					n++
				}
			}
			if s.spec.MaxChildren > 0 && n >= s.spec.MaxChildren {
				s.mu.Unlock()
				r.reply <- fmt.Errorf("%w (%d)", ErrTooManyChildren, s.spec.MaxChildren)
				return
			}
			for k, c := range s.children {
				if c.Name == r.add.Name && !s.state[k].removed {
					s.mu.Unlock()
					r.reply <- fmt.Errorf("supervisor: a child named %q already exists", c.Name)
					return
				}
			}
			if err := s.checkDeps(len(s.children), *r.add); err != nil {
				s.mu.Unlock()
				r.reply <- err
				return
			}
			s.children = append(s.children, *r.add)
			s.state = append(s.state, childState{})
			s.mu.Unlock()
			runs = append(runs, nil)
			gens = append(gens, 0)
			startOrWait(len(runs) - 1)
			r.reply <- nil
		default:
			found := -1
			s.mu.Lock()
			for k, c := range s.children {
				if c.Name == r.name && !s.state[k].removed {
					found = k
				}
			}
			s.mu.Unlock()
			if found < 0 {
				r.reply <- fmt.Errorf("%w: %q", ErrNoSuchChild, r.name)
				return
			}
			stop([]int{found})
			switch r.op {
			case opRemove:
				s.set(found, func(st *childState) { st.removed = true })
			case opRestart:
				s.set(found, func(st *childState) { st.recent, st.backoff = nil, 0 }) // a fresh history
				start(found)
			}
			r.reply <- nil
		}
	}
	finish := func(err error) error {
		var all []int
		for i := range runs {
			all = append(all, i)
		}
		stop(all)
		close(quit)
		timers.Wait()
		wg.Wait()
		return err
	}

	for i := range s.children {
		startOrWait(i)
	}
	for {
		// After any event a waiting child's dependencies may be ready: a
		// restart, an AddChild, a RestartChild bring back children
		// without a Ready check.
		startWaiting()
		select {
		case <-ctx.Done():
			return finish(nil)
		case r := <-readies:
			if r.gen == gens[r.i] && runs[r.i] != nil {
				s.set(r.i, func(st *childState) { st.status = StatusReady })
				s.emit(Event{Kind: Ready, Child: s.children[r.i].Name})
			}
		case r := <-s.reqs:
			serveRequest(r)
		case d := <-restarts:
			for k, i := range d.group {
				if d.gens[k] == gens[i] && runs[i] == nil {
					startOrWait(i) // a dependent that came back first waits again
				}
			}
		case ex := <-exits:
			if ex.gen != gens[ex.i] {
				continue // a child this supervisor stopped on purpose
			}
			c := s.children[ex.i]
			runs[ex.i] = nil
			var up time.Duration
			s.set(ex.i, func(st *childState) { st.lastExit, up = ex.err, time.Since(st.started) })
			s.emit(Event{Kind: Exited, Child: c.Name, Err: ex.err})
			if c.Restart == Temporary || c.Restart == Transient && ex.err == nil {
				s.set(ex.i, func(st *childState) { st.status = StatusStopped })
				if ended(ex.i) {
					return finish(nil)
				}
				continue
			}
			now := time.Now()
			if c.Isolate {
				fatal := false
				s.set(ex.i, func(st *childState) {
					st.recent = within(append(st.recent, now), now, s.spec.Period)
					if fatal = len(st.recent) > s.spec.MaxRestarts; fatal {
						st.status, st.recent = StatusFatal, nil
					}
				})
				if fatal {
					s.emit(Event{Kind: Fatal, Child: c.Name, Err: &IntensityError{Supervisor: s.spec.Name, Child: c.Name,
						Restarts: s.spec.MaxRestarts, Period: s.spec.Period, Last: ex.err, Isolated: true}})
					if ended(ex.i) { // a significant child ended for good
						return finish(nil)
					}
					continue
				}
			} else if restartTimes = within(append(restartTimes, now), now, s.spec.Period); len(restartTimes) > s.spec.MaxRestarts {
				s.set(ex.i, func(st *childState) { st.status = StatusFailed })
				gaveUp := &IntensityError{Supervisor: s.spec.Name, Child: c.Name, Restarts: len(restartTimes) - 1,
					Period: s.spec.Period, Last: ex.err}
				s.emit(Event{Kind: GaveUp, Child: c.Name, Err: gaveUp})
				return finish(gaveUp)
			}
			wait := s.nextBackoff(ex.i, up)
			switch s.spec.Strategy {
			case OneForOne:
				schedule([]int{ex.i}, wait)
			case OneForAll:
				group := append(active(0), ex.i)
				sort.Ints(group)
				stop(group)
				schedule(group, wait)
			case RestForOne:
				group := append([]int{ex.i}, active(ex.i+1)...)
				stop(group)
				schedule(group, wait)
			}
		}
	}
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

// waitReady tries c's Ready check until it passes (true) or ctx ends.
func waitReady(ctx context.Context, c Child) bool {
	interval := c.ReadyInterval
	if interval <= 0 {
		interval = DefaultReadyInterval
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if c.Ready(ctx) == nil {
			return ctx.Err() == nil
		}
		t.Reset(interval)
	}
}

// within drops from times, oldest first, those more than period before now.
func within(times []time.Time, now time.Time, period time.Duration) []time.Time {
	for len(times) > 0 && now.Sub(times[0]) > period {
		times = times[1:]
	}
	return times
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
