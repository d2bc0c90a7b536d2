package supervisor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// request is what AddChild, RemoveChild, StopChild and RestartChild ask of
// a running supervisor's loop: one of the types below.
type request interface{ isRequest() }

// addRequest adds a child and starts it (or marks it waiting).
type addRequest struct{ child Child }

// removeRequest stops a child and forgets it.
type removeRequest struct{ name string }

// stopRequest stops a child and keeps it stopped.
type stopRequest struct{ name string }

// restartRequest stops a child, if it runs, and starts it again at once.
type restartRequest struct{ name string }

func (addRequest) isRequest()     {}
func (removeRequest) isRequest()  {}
func (stopRequest) isRequest()    {}
func (restartRequest) isRequest() {}

// call is a request on its way to the loop, with where its answer goes.
type call struct {
	req   request
	reply chan error // buffered, so the loop never waits on an asker
}

// exit is a child's Serve returning, or (on readies) its Ready check
// passing, err unused.
type exit struct {
	i   int
	gen int
	err error
}

// run is one running instance of a child.
type run struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when its Serve has returned
}

// slot is the loop's own record of a child, at the child's index.
type slot struct {
	// gen is bumped by each start and each stop: an exit, a Ready pass or
	// a due restart that carries an older gen is stale.
	gen int
	run *run // nil when the child is not running
}

// due is a group of children whose backoff has passed, to start in order;
// gens voids the start of any member stopped meanwhile.
type due struct{ group, gens []int }

// loop is one run of Serve. Its goroutine, the one that called Serve, owns
// it and is the only one to change the supervisor's children and their
// state; the goroutines it starts (children, Ready checks, backoff timers)
// only send it messages, and it waits for all of them before it returns.
type loop struct {
	s     *Supervisor
	clock clock
	slots []slot
	// restartTimes are the restarts of children not isolated, within the
	// period: the supervisor's restart intensity.
	restartTimes []time.Time

	exits    chan exit
	readies  chan exit
	restarts chan due
	quit     chan struct{} // closed once every child is stopped: senders give up
	children sync.WaitGroup
	timers   sync.WaitGroup
}

func newLoop(s *Supervisor) *loop {
	return &loop{s: s, clock: s.clock, slots: make([]slot, len(s.children)),
		exits: make(chan exit), readies: make(chan exit), restarts: make(chan due), quit: make(chan struct{})}
}

// run starts the children and serves events until ctx ends or the
// supervisor is done, then stops every child and returns what Serve
// returns. ctx is Serve's: children get its values, not its cancellation.
func (l *loop) run(ctx context.Context) error {
	for i := range l.slots {
		l.startOrWait(ctx, i)
	}
	for {
		// After any event a waiting child's dependencies may be ready: a
		// restart, an AddChild, a RestartChild bring back children
		// without a Ready check.
		l.startWaiting(ctx)
		select {
		case <-ctx.Done():
			return l.finish(nil)
		case r := <-l.readies:
			l.onReady(r)
		case c := <-l.s.calls:
			c.reply <- l.serveRequest(ctx, c.req)
		case d := <-l.restarts:
			l.onDue(ctx, d)
		case ex := <-l.exits:
			if done, err := l.onExit(ex); done {
				return l.finish(err)
			}
		}
	}
}

// finish stops every child, waits for every goroutine the loop started,
// and returns err.
func (l *loop) finish(err error) error {
	all := make([]int, len(l.slots))
	for i := range all {
		all[i] = i
	}
	l.stop(all)
	close(l.quit)
	l.timers.Wait()
	l.children.Wait()
	return err
}

func (l *loop) status(i int) Status {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.state[i].removed {
		return StatusRemoved
	}
	return l.s.state[i].status
}

// start starts child i, and its Ready check if it has one.
func (l *loop) start(ctx context.Context, i int) {
	l.slots[i].gen++
	gen := l.slots[i].gen
	c := l.s.children[i]
	// Each child's ctx is cancelled only by stop, one child at a time, so
	// that children stop in reverse start order.
	cctx := context.WithValue(context.WithoutCancel(ctx), shutdownKey{}, shutdownFor(c))
	cctx = context.WithValue(cctx, childKey{}, childInfo{name: c.Name, log: l.s.spec.Logger})
	cctx, cancel := context.WithCancel(cctx)
	r := &run{cancel: cancel, done: make(chan struct{})}
	l.slots[i].run = r
	status := StatusRunning
	if c.Ready != nil {
		status = StatusStarting
	}
	now := l.clock.Now()
	l.s.set(i, func(st *childState) { st.status, st.started, st.service = status, now, c.Service })
	l.s.emit(Event{Kind: Started, Child: c.Name})
	l.children.Add(1)
	go func() {
		defer l.children.Done()
		err := serveRecovered(cctx, c.Service)
		cancel() // what watches this run (its Ready check) ends with it
		close(r.done)
		select {
		case l.exits <- exit{i: i, gen: gen, err: err}:
		case <-l.quit:
		}
	}()
	if c.Ready != nil {
		l.children.Add(1)
		go func() {
			defer l.children.Done()
			if !waitReady(cctx, l.clock, c) {
				return // stopped, or exited, first
			}
			select {
			case l.readies <- exit{i: i, gen: gen}:
			case <-l.quit:
			}
		}()
	}
}

// ready reports whether the child named name is ready: started and, if it
// has a Ready check, past it.
func (l *loop) ready(name string) bool {
	for k, c := range l.s.children {
		if c.Name == name {
			st := l.status(k)
			if st == StatusRemoved {
				continue // a tombstone; the child may have been added again
			}
			return st == StatusReady || st == StatusRunning && c.Ready == nil
		}
	}
	return false
}

// startable reports whether everything child i depends on is ready.
func (l *loop) startable(i int) bool {
	for _, d := range l.s.children[i].DependsOn {
		if !l.ready(d) {
			return false
		}
	}
	return true
}

// startOrWait starts child i, or marks it waiting for what it depends on.
func (l *loop) startOrWait(ctx context.Context, i int) {
	if l.startable(i) {
		l.start(ctx, i)
		return
	}
	l.s.set(i, func(st *childState) { st.status = StatusWaiting })
}

// startWaiting starts, in order, the waiting children whose dependencies
// are now ready.
func (l *loop) startWaiting(ctx context.Context) {
	for i := range l.slots {
		if l.status(i) == StatusWaiting && l.startable(i) {
			l.start(ctx, i)
		}
	}
}

// stop stops children from last to first, each before the next, and voids
// their pending restarts.
func (l *loop) stop(which []int) {
	for k := len(which) - 1; k >= 0; k-- {
		l.stopOne(which[k])
	}
}

func (l *loop) stopOne(i int) {
	l.slots[i].gen++ // its exit, or a restart pending for it, is now stale
	r := l.slots[i].run
	if r == nil {
		if l.status(i) == StatusWaiting { // held stopped: not to start when its dependencies are ready
			l.s.set(i, func(st *childState) { st.status = StatusStopped })
		}
		return
	}
	l.slots[i].run = nil
	r.cancel()
	name := l.s.children[i].Name
	if limit := shutdownFor(l.s.children[i]); limit > 0 {
		t := l.clock.NewTimer(limit + stopReportSlack)
		select {
		case <-r.done:
		case <-t.C():
			l.s.emit(Event{Kind: StopTimedOut, Child: name})
			<-r.done
		}
		t.Stop()
	} else {
		<-r.done
	}
	l.s.set(i, func(st *childState) { st.status = StatusStopped })
	l.s.emit(Event{Kind: Stopped, Child: name})
}

// active lists, from index from on, the children running or waiting for a
// restart: those a strategy takes down and brings back.
func (l *loop) active(from int) []int {
	var out []int
	for i := from; i < len(l.slots); i++ {
		if l.slots[i].run != nil || l.status(i) == StatusRestarting {
			out = append(out, i)
		}
	}
	return out
}

// ended reports whether, child i having ended for good, the significant
// children say the supervisor is done.
func (l *loop) ended(i int) bool {
	if !l.s.children[i].Significant {
		return false
	}
	switch l.s.spec.AutoShutdown {
	case AnySignificant:
		return true
	case AllSignificant:
		for k, c := range l.s.children {
			if st := l.status(k); c.Significant && st != StatusStopped && st != StatusRemoved && st != StatusFatal {
				return false
			}
		}
		return true
	}
	return false
}

// schedule starts group, in order, once wait has passed. Temporary
// children are not brought back: they end when taken down.
func (l *loop) schedule(group []int, wait time.Duration) {
	var d due
	for _, i := range group {
		if l.s.children[i].Restart == Temporary {
			continue // never the child that failed: its exit ended it for good
		}
		d.group = append(d.group, i)
		d.gens = append(d.gens, l.slots[i].gen)
		l.s.set(i, func(st *childState) { st.status, st.backoff = StatusRestarting, wait })
		l.s.emit(Event{Kind: Restarting, Child: l.s.children[i].Name, Backoff: wait})
	}
	t := l.clock.NewTimer(wait)
	l.timers.Add(1)
	go func() {
		defer l.timers.Done()
		defer t.Stop()
		select {
		case <-t.C():
			select {
			case l.restarts <- d:
			case <-l.quit:
			}
		case <-l.quit:
		}
	}()
}

// onReady marks a child ready, unless the run whose check passed has ended.
func (l *loop) onReady(r exit) {
	if r.gen == l.slots[r.i].gen && l.slots[r.i].run != nil {
		l.s.set(r.i, func(st *childState) { st.status = StatusReady })
		l.s.emit(Event{Kind: Ready, Child: l.s.children[r.i].Name})
	}
}

// onDue starts the members of a group whose backoff has passed, but those
// stopped or started again meanwhile.
func (l *loop) onDue(ctx context.Context, d due) {
	for k, i := range d.group {
		if d.gens[k] == l.slots[i].gen && l.slots[i].run == nil {
			l.startOrWait(ctx, i) // a dependent that came back first waits again
		}
	}
}

// onExit decides what a child's exit leads to: nothing (a child this
// supervisor stopped on purpose), its end, a restart of it and of the
// group its strategy names, or the supervisor's end (done), returning err.
func (l *loop) onExit(ex exit) (done bool, err error) {
	if ex.gen != l.slots[ex.i].gen {
		return false, nil // a child this supervisor stopped on purpose
	}
	c := l.s.children[ex.i]
	l.slots[ex.i].run = nil
	var up time.Duration
	exited := l.clock.Now()
	l.s.set(ex.i, func(st *childState) { st.lastExit, up = ex.err, exited.Sub(st.started) })
	l.s.emit(Event{Kind: Exited, Child: c.Name, Err: ex.err})
	if c.Restart == Temporary || c.Restart == Transient && ex.err == nil {
		l.s.set(ex.i, func(st *childState) { st.status = StatusStopped })
		return l.ended(ex.i), nil
	}
	now := l.clock.Now()
	if c.Isolate {
		if l.isolatedFatal(ex.i, now, ex.err) {
			return l.ended(ex.i), nil // a significant child ended for good
		}
	} else if gaveUp := l.overIntensity(ex.i, now, ex.err); gaveUp != nil {
		return true, gaveUp
	}
	l.restart(ex.i, l.s.nextBackoff(ex.i, up))
	return false, nil
}

// isolatedFatal counts a restart of isolated child i against its own
// intensity, and past it marks the child fatal and reports true.
func (l *loop) isolatedFatal(i int, now time.Time, last error) bool {
	spec := &l.s.spec
	fatal := false
	l.s.set(i, func(st *childState) {
		st.recent = within(append(st.recent, now), now, spec.Period)
		if fatal = len(st.recent) > spec.MaxRestarts; fatal {
			st.status, st.recent = StatusFatal, nil
		}
	})
	if fatal {
		name := l.s.children[i].Name
		l.s.emit(Event{Kind: Fatal, Child: name, Err: &IntensityError{Supervisor: spec.Name, Child: name,
			Restarts: spec.MaxRestarts, Period: spec.Period, Last: last, Isolated: true}})
	}
	return fatal
}

// overIntensity counts a restart of child i against the supervisor's
// intensity, and past it marks the child failed and returns why the
// supervisor gives up.
func (l *loop) overIntensity(i int, now time.Time, last error) *IntensityError {
	spec := &l.s.spec
	if l.restartTimes = within(append(l.restartTimes, now), now, spec.Period); len(l.restartTimes) <= spec.MaxRestarts {
		return nil
	}
	l.s.set(i, func(st *childState) { st.status = StatusFailed })
	name := l.s.children[i].Name
	gaveUp := &IntensityError{Supervisor: spec.Name, Child: name, Restarts: len(l.restartTimes) - 1,
		Period: spec.Period, Last: last}
	l.s.emit(Event{Kind: GaveUp, Child: name, Err: gaveUp})
	return gaveUp
}

// restart takes down the group that child i's exit restarts, by the
// strategy, and schedules it to start again after wait.
func (l *loop) restart(i int, wait time.Duration) {
	switch l.s.spec.Strategy {
	case OneForOne:
		l.schedule([]int{i}, wait)
	case OneForAll:
		group := append(l.active(0), i)
		sort.Ints(group)
		l.stop(group)
		l.schedule(group, wait)
	case RestForOne:
		group := append([]int{i}, l.active(i+1)...)
		l.stop(group)
		l.schedule(group, wait)
	}
}

// serveRequest serves what AddChild, RemoveChild, StopChild or
// RestartChild asked, and returns their answer.
func (l *loop) serveRequest(ctx context.Context, req request) error {
	switch r := req.(type) {
	case addRequest:
		return l.add(ctx, r.child)
	case removeRequest:
		return l.withChild(r.name, func(i int) {
			l.stopOne(i)
			l.s.set(i, func(st *childState) { st.removed = true })
		})
	case stopRequest:
		return l.withChild(r.name, l.stopOne)
	case restartRequest:
		return l.withChild(r.name, func(i int) {
			l.stopOne(i)
			l.s.set(i, func(st *childState) { st.recent, st.backoff = nil, 0 }) // a fresh history
			l.start(ctx, i)
		})
	}
	panic(fmt.Sprintf("supervisor: unknown request %T", req)) // request is sealed: a bug here
}

// withChild calls f with the index of the child named name, or returns
// ErrNoSuchChild.
func (l *loop) withChild(name string, f func(i int)) error {
	i := l.find(name)
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNoSuchChild, name)
	}
	f(i)
	return nil
}

// find returns the index of the child named name, or -1 if there is none
// (removed children are tombstones, not children).
func (l *loop) find(name string) int {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	found := -1
	for k, c := range l.s.children {
		if c.Name == name && !l.s.state[k].removed {
			found = k
		}
	}
	return found
}

// add adds child c, after checking that there is room for it, that its
// name is free and that its dependencies are listed before it, and starts
// it or marks it waiting.
func (l *loop) add(ctx context.Context, c Child) error {
	s := l.s
	s.mu.Lock()
	n := 0
	for k := range s.children {
		if !s.state[k].removed {
			n++
		}
	}
	if s.spec.MaxChildren > 0 && n >= s.spec.MaxChildren {
		s.mu.Unlock()
		return fmt.Errorf("%w (%d)", ErrTooManyChildren, s.spec.MaxChildren)
	}
	for k, other := range s.children {
		if other.Name == c.Name && !s.state[k].removed {
			s.mu.Unlock()
			return fmt.Errorf("supervisor: a child named %q already exists", other.Name)
		}
	}
	if err := s.checkDeps(len(s.children), c); err != nil {
		s.mu.Unlock()
		return err
	}
	s.children = append(s.children, c)
	s.state = append(s.state, childState{})
	s.mu.Unlock()
	l.slots = append(l.slots, slot{})
	l.startOrWait(ctx, len(l.slots)-1)
	return nil
}

// waitReady tries c's Ready check until it passes (true) or ctx ends.
func waitReady(ctx context.Context, clk clock, c Child) bool {
	interval := c.ReadyInterval
	if interval <= 0 {
		interval = DefaultReadyInterval
	}
	for wait := time.Duration(0); sleep(ctx, clk, wait); wait = interval {
		if c.Ready(ctx) == nil {
			return ctx.Err() == nil
		}
	}
	return false
}

// sleep waits d on clk and reports true, or false if ctx ends first.
func sleep(ctx context.Context, clk clock, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// within drops from times, oldest first, those more than period before now.
func within(times []time.Time, now time.Time, period time.Duration) []time.Time {
	for len(times) > 0 && now.Sub(times[0]) > period {
		times = times[1:]
	}
	return times
}
