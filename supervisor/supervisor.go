package supervisor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

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
}

// Shutdown values with a special meaning.
const (
	DefaultShutdown               = 5 * time.Second
	BrutalKill      time.Duration = -1
	Infinity        time.Duration = -2
)

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
	// Serve; it must not block for long.
	Events func(Event)
	// Logger logs every event; nil discards them.
	Logger hclog.Logger
}

// Supervisor runs children by a Spec. Build it with New.
type Supervisor struct {
	spec     Spec
	children []Child

	mu    sync.Mutex // guards state, read by Snapshot from other goroutines
	state []childState
}

type childState struct {
	status   string // "starting", "running", "restarting", "stopped", "failed"
	restarts int
	started  time.Time
	lastExit error
	backoff  time.Duration
	service  Service // the running instance, for its PID
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
	return &Supervisor{spec: spec, children: append([]Child(nil), children...), state: make([]childState, len(children))}
}

// IntensityError is a supervisor giving up: a child was restarted more
// often than the intensity allows.
type IntensityError struct {
	Supervisor string
	Child      string
	Restarts   int
	Period     time.Duration
	Last       error // the child's last exit
}

func (e *IntensityError) Error() string {
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

// Serve runs the supervisor until ctx ends or it gives up.
func (s *Supervisor) Serve(ctx context.Context) error {
	exits := make(chan exit)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	runs := make([]*run, len(s.children))
	gens := make([]int, len(s.children))
	var restartTimes []time.Time
	type due struct{ i, gen int }
	restarts := make(chan due)
	var timers sync.WaitGroup

	start := func(i int) {
		gens[i]++
		gen := gens[i]
		c := s.children[i]
		cctx, cancel := context.WithCancel(context.WithValue(ctx, shutdownKey{}, c.Shutdown))
		r := &run{gen: gen, cancel: cancel, done: make(chan struct{})}
		runs[i] = r
		s.set(i, func(st *childState) { st.status, st.started, st.service = "running", time.Now(), c.Service })
		s.emit(Event{Kind: Started, Child: c.Name})
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Service.Serve(cctx)
			close(r.done)
			select {
			case exits <- exit{i: i, gen: gen, err: err}:
			case <-quit:
			}
		}()
	}
	// stop stops children from last to first, each before the next.
	stop := func(which []int) {
		for k := len(which) - 1; k >= 0; k-- {
			i := which[k]
			r := runs[i]
			if r == nil {
				continue
			}
			runs[i] = nil
			gens[i]++ // its exit, when it comes, is stale
			r.cancel()
			limit := s.children[i].Shutdown
			if limit == 0 {
				limit = DefaultShutdown
			}
			if limit > 0 {
				t := time.NewTimer(limit + time.Second)
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
			s.set(i, func(st *childState) { st.status = "stopped" })
			s.emit(Event{Kind: Stopped, Child: s.children[i].Name})
		}
	}
	all := func(from int) []int {
		var out []int
		for i := from; i < len(s.children); i++ {
			out = append(out, i)
		}
		return out
	}
	schedule := func(i int, wait time.Duration) {
		gen := gens[i]
		s.set(i, func(st *childState) { st.status, st.backoff = "restarting", wait })
		s.emit(Event{Kind: Restarting, Child: s.children[i].Name, Backoff: wait})
		timers.Add(1)
		go func() {
			defer timers.Done()
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
				select {
				case restarts <- due{i: i, gen: gen}:
				case <-quit:
				}
			case <-quit:
			}
		}()
	}
	finish := func(err error) error {
		stop(all(0))
		close(quit)
		timers.Wait()
		wg.Wait()
		return err
	}

	for i := range s.children {
		start(i)
	}
	for {
		select {
		case <-ctx.Done():
			return finish(nil)
		case d := <-restarts:
			if d.gen == gens[d.i] && runs[d.i] == nil {
				start(d.i)
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
				s.set(ex.i, func(st *childState) { st.status = "stopped" })
				continue
			}
			now := time.Now()
			restartTimes = append(restartTimes, now)
			for len(restartTimes) > 0 && now.Sub(restartTimes[0]) > s.spec.Period {
				restartTimes = restartTimes[1:]
			}
			if len(restartTimes) > s.spec.MaxRestarts {
				s.set(ex.i, func(st *childState) { st.status = "failed" })
				gaveUp := &IntensityError{Supervisor: s.spec.Name, Child: c.Name, Restarts: s.spec.MaxRestarts,
					Period: s.spec.Period, Last: ex.err}
				s.emit(Event{Kind: GaveUp, Child: c.Name, Err: gaveUp})
				return finish(gaveUp)
			}
			wait := s.nextBackoff(ex.i, up)
			switch s.spec.Strategy {
			case OneForOne:
				schedule(ex.i, wait)
			case OneForAll:
				stop(all(0))
				for i := range s.children {
					schedule(i, wait)
				}
			case RestForOne:
				stop(all(ex.i + 1))
				for i := ex.i; i < len(s.children); i++ {
					schedule(i, wait)
				}
			}
		}
	}
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
	return max(wait+jitter, 0)
}

func (s *Supervisor) set(i int, f func(*childState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.state[i])
}

type shutdownKey struct{}

// shutdownOf returns the Shutdown of the child whose ctx this is.
func shutdownOf(ctx context.Context) time.Duration {
	d, _ := ctx.Value(shutdownKey{}).(time.Duration)
	if d == 0 {
		return DefaultShutdown
	}
	return d
}
