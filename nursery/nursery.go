package nursery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/arbor-go/arbor/internal/control"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

// ErrClosed is returned by StartActor and RunInActor once the body has
// returned. After a failure or Cancel they still accept work, which is
// cancelled at once, as errgroup's Go still runs a function after its ctx
// is cancelled: a child that cannot even start is then reported.
var ErrClosed = errors.New("nursery: closed to new actors")

// Nursery is the scope handed to Open's body. Its methods are safe for
// concurrent use by the body and goroutines it starts, until the body
// returns.
type Nursery struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	defaults spawn.Options

	// The parent's ctx, and the watch that cancels the nursery when it
	// ends (unwatch stops it; watched is closed once it has run).
	parent  context.Context
	unwatch func() bool
	watched chan struct{}

	mu         sync.Mutex
	phase      phase
	cancelling bool // a failure happened, Cancel was called, or the parent ctx ended
	failures   []error
	actors     []*spawn.Actor
	// Open waits for runs before it stops what is left, then for watchers:
	// a RunInActor's result must be known before its actor is stopped.
	runs     sync.WaitGroup // RunInActor and Go goroutines
	watchers sync.WaitGroup // goroutines that watch daemons and stop actors
	unnamed  atomic.Int64   // RunInActor children named after their function, numbered
	slots    chan struct{}  // WithLimit: one token per running actor; nil: no limit

	controlApp string          // WithControl
	control    *control.Server // its socket, while the nursery is open
}

// phase is where a nursery is in its life; it only moves forward.
type phase uint8

const (
	// running: the body runs, and actors start as asked.
	running phase = iota
	// closed: the body has returned; no new work is admitted (ErrClosed)
	// while the results of what runs are awaited.
	closed
	// draining: Open stops what is left; an actor that completes its start
	// now is stopped at once.
	draining
)

// Option configures a nursery.
type Option func(*Nursery)

// WithDefaults sets the spawn options every actor of the nursery starts
// with, before the options given to StartActor or RunInActor are applied
// (Logger, durations, transport: whatever those leave zero).
func WithDefaults(o spawn.Options) Option {
	return func(n *Nursery) { n.defaults = o }
}

// WithLimit bounds how many actors of the nursery run at once. Past it,
// the actor of a RunInActor waits for another to exit before it starts
// (RunInActor itself still returns at once), and StartActor blocks; a wait
// ends early, with the cancellation, if the nursery is cancelled. Daemons
// count as long as they run. Zero means no limit.
func WithLimit(limit int) Option {
	return func(n *Nursery) {
		if limit > 0 {
			n.slots = make(chan struct{}, limit)
		}
	}
}

// acquire takes a slot for one more actor (WithLimit), waiting for one.
func (n *Nursery) acquire() error {
	if n.slots == nil {
		return nil
	}
	select {
	case n.slots <- struct{}{}:
		return nil
	case <-n.ctx.Done():
		return context.Cause(n.ctx)
	}
}

// release frees the slot of an actor that has exited.
func (n *Nursery) release() {
	if n.slots != nil {
		<-n.slots
	}
}

// Open runs body with a new nursery and returns once body has returned and
// every actor started in the nursery has exited. It returns nil, or an
// *Error listing what failed.
func Open(ctx context.Context, body func(ctx context.Context, n *Nursery) error, opts ...Option) error {
	n := newNursery(ctx, opts)
	if n.controlApp != "" {
		var err error
		if n.control, err = n.serveControl(); err != nil {
			n.unwatch()
			n.cancel(err)
			return fmt.Errorf("nursery: the control socket: %w", err)
		}
	}
	returned := false
	defer func() {
		// Only when the body left by runtime.Goexit (t.Fatal in a test):
		// the teardown still runs, so that no actor outlives Open.
		if !returned {
			n.failure(protocol.ActorID{}, errors.New("nursery body exited its goroutine without returning (runtime.Goexit)"))
			n.teardown()
		}
	}()
	if err := runBody(n.ctx, n, body); err != nil {
		n.failure(protocol.ActorID{}, err)
	}
	returned = true
	return n.teardown()
}

func newNursery(ctx context.Context, opts []Option) *Nursery {
	n := &Nursery{parent: ctx, watched: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancelCause(ctx)
	for _, o := range opts {
		o(n)
	}
	// A cancelled parent ctx stops every actor at once, like a failure,
	// but is reported as the ctx's error rather than as a failure.
	n.unwatch = context.AfterFunc(ctx, func() {
		defer close(n.watched)
		n.cancelWith(context.Cause(ctx))
	})
	return n
}

// teardown ends the nursery once the body is done: it closes it to new
// work, awaits the results of what runs, stops what is left, and returns
// Open's result.
func (n *Nursery) teardown() error {
	n.enterPhase(closed)
	n.runs.Wait()
	n.enterPhase(draining)
	n.stopAll()
	n.watchers.Wait()
	if !n.unwatch() && n.parent.Err() != nil {
		<-n.watched // the watch is cancelling the nursery: let it finish
	}
	n.cancel(errBodyReturned)
	if n.control != nil {
		n.control.Close()
	}
	if err := n.result(); err != nil {
		return err
	}
	return n.parent.Err()
}

func (n *Nursery) enterPhase(p phase) {
	n.mu.Lock()
	n.phase = p
	n.mu.Unlock()
}

var errBodyReturned = errors.New("nursery: the body returned")

// runBody runs body, turning a panic into an error that keeps its stack.
func runBody(ctx context.Context, n *Nursery, body func(context.Context, *Nursery) error) error {
	return recovered("nursery body", func() error { return body(ctx, n) })
}

// recovered runs f, turning a panic into an error that keeps the value and
// the stack.
func recovered(what string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", what, v, debug.Stack())
		}
	}()
	return f()
}

// Go runs f on a goroutine the nursery owns, for work on the parent's side
// (reading a stream from an actor, say): Open waits for it as for a
// RunInActor result, and an error f returns is a failure of the nursery
// that cancels the rest, unless it is only the cancellation another
// failure caused. f's ctx ends when the nursery is cancelled; a panic in f
// is a failure that keeps the stack. Go does not block; it returns
// ErrClosed once the body has returned.
func (n *Nursery) Go(f func(ctx context.Context) error) error {
	if err := n.enter(&n.runs); err != nil {
		return err
	}
	go func() {
		defer n.runs.Done()
		if err := recovered("nursery goroutine", func() error { return f(n.ctx) }); err != nil {
			n.failure(protocol.ActorID{}, err)
		}
	}()
	return nil
}

// Cancel cancels the nursery: the body's ctx, every call in flight, every
// actor. It is not a failure. Calling it again does nothing.
func (n *Nursery) Cancel() {
	n.cancelWith(context.Canceled)
}

func (n *Nursery) cancelWith(cause error) {
	n.mu.Lock()
	first := !n.cancelling
	n.cancelling = true
	n.mu.Unlock()
	if first {
		n.cancel(cause)
		n.stopAll()
	}
}

// failure records err unless it is only the echo of a cancellation the
// nursery itself caused, and cancels everything.
func (n *Nursery) failure(actor protocol.ActorID, err error) {
	n.mu.Lock()
	// n.ctx is cancelled before cancelling is set when the parent's ctx
	// ends, so ask it too. Draining, what is left is being stopped: the
	// cancellations that causes are not failures either.
	cancelled := n.cancelling || n.phase == draining || n.ctx.Err() != nil
	if stoppedByArbor(err) || cancelled && causedByCancellation(err) || n.recorded(err) {
		n.mu.Unlock()
		return
	}
	var abandoned *ipc.AbandonedError
	if cancelled && errors.As(err, &abandoned) {
		// The call was cancelled by the nursery, and the function then
		// failed of its own accord: the failure is the function's.
		err = abandoned.Remote
	}
	if !actor.IsZero() {
		err = &ActorError{Actor: actor, Err: err}
	}
	n.failures = append(n.failures, err)
	n.mu.Unlock()
	n.cancelWith(err)
}

// recorded reports whether err is a failure already listed, reached by
// another path: a daemon's exit and the call it broke both carry the same
// *spawn.ExitError. It is called with mu held.
func (n *Nursery) recorded(err error) bool {
	for _, f := range n.failures {
		if ae, ok := f.(*ActorError); ok {
			f = ae.Err
		}
		if errors.Is(err, f) || errors.Is(f, err) {
			return true
		}
	}
	return false
}

// causedByCancellation reports whether err is only what a call, a start or
// the body gives when the nursery is cancelled: every error err holds is a
// cancellation. An error that holds a cancellation and something else (an
// *ipc.AbandonedError: the call was cancelled, and the remote function
// then failed of its own accord) is a failure.
func causedByCancellation(err error) bool {
	for err != nil {
		if err == context.Canceled || err == context.DeadlineExceeded || err == ErrClosed {
			return true
		}
		if is, ok := err.(interface{ Is(error) bool }); ok && (is.Is(context.Canceled) || is.Is(context.DeadlineExceeded)) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			for _, e := range errs {
				if !causedByCancellation(e) {
					return false
				}
			}
			return len(errs) > 0
		default:
			return false
		}
	}
	return false
}

// stoppedByArbor reports whether err is an actor's exit that a stop
// caused: a clean exit or a signal after Stop was called. An actor that
// crashed, or exited with an error status, while stopping still failed.
func stoppedByArbor(err error) bool {
	var exit *spawn.ExitError
	return errors.As(err, &exit) && exit.Stopped && exit.Panic == "" && (exit.Signal != 0 || exit.Code == 0)
}

// stopContext is the ctx the nursery stops an actor with: it outlives the
// nursery's own, and names whoever cancelled the nursery (ipc.Canceller), so
// that the calls the actor serves report that actor as their canceller, not
// this one (PROTOCOL.md §9).
func (n *Nursery) stopContext() context.Context {
	ctx := context.WithoutCancel(n.ctx)
	if by := ipc.Canceller(n.ctx); !by.IsZero() {
		ctx = ipc.WithCanceller(ctx, by)
	}
	return ctx
}

// stopAll stops every actor the nursery holds, each in a goroutine of its
// own, so that they stop at once and in parallel.
func (n *Nursery) stopAll() {
	n.mu.Lock()
	actors := n.actors
	n.actors = nil
	n.watchers.Add(len(actors)) // under mu: Open's Wait must see these
	n.mu.Unlock()
	for _, a := range actors {
		go func() {
			defer n.watchers.Done()
			a.Stop(n.stopContext())
		}()
	}
}

// adopt records a started actor, or stops it at once if the nursery has
// been cancelled, or is stopping what is left, meanwhile.
func (n *Nursery) adopt(a *spawn.Actor) bool {
	n.mu.Lock()
	if n.cancelling || n.phase == draining {
		n.mu.Unlock()
		a.Stop(n.stopContext())
		return false
	}
	n.actors = append(n.actors, a)
	n.mu.Unlock()
	return true
}

// options merges the options of one actor over the nursery's defaults.
func (n *Nursery) options(o spawn.Options) spawn.Options { return o.WithDefaults(n.defaults) }

// enter admits one more goroutine of work to wg, unless the nursery has
// closed; the check and the Add happen together so that Open's Wait
// cannot miss it.
func (n *Nursery) enter(wg *sync.WaitGroup) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.phase != running {
		return ErrClosed
	}
	wg.Add(1)
	return nil
}

// startWatched starts an actor the nursery holds, with a slot (WithLimit)
// and a place in watchers for the goroutine the caller then starts to
// watch it; that goroutine calls watchers.Done and release. On error
// nothing is left to undo.
func (n *Nursery) startWatched(opts spawn.Options) (*spawn.Actor, error) {
	if err := n.enter(&n.watchers); err != nil {
		return nil, err
	}
	if err := n.acquire(); err != nil {
		n.watchers.Done()
		return nil, err
	}
	a, err := spawn.Start(n.ctx, n.options(opts))
	if err != nil {
		n.release()
		n.watchers.Done()
		return nil, err
	}
	if !n.adopt(a) {
		<-a.Done()
		n.release()
		n.watchers.Done()
		return nil, ErrClosed
	}
	return a, nil
}

// StartActor starts a daemon actor: it serves its functions until the
// nursery ends, and its exiting on its own is a failure. It blocks until
// the actor has completed its handshake.
func (n *Nursery) StartActor(opts spawn.Options) (*spawn.Actor, error) {
	a, err := n.startWatched(opts)
	if err != nil {
		return nil, err
	}
	go func() {
		defer n.watchers.Done()
		<-a.Done()
		n.release()
		if err := a.Wait(); err != nil {
			n.failure(a.ID(), err)
			return
		}
		n.mu.Lock()
		expected := n.cancelling || n.phase == draining || a.StopRequested()
		n.mu.Unlock()
		if !expected {
			n.failure(a.ID(), fmt.Errorf("daemon actor exited while the nursery was running"))
		}
	}()
	return a, nil
}

// Result is the pending result of a function run in an actor of its own.
type Result[R any] struct {
	done  chan struct{}
	value R
	err   error
	id    protocol.ActorID
}

// Wait waits for the function's result, or for ctx.
func (r *Result[R]) Wait(ctx context.Context) (R, error) {
	select {
	case <-r.done:
		return r.value, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// Done is closed once the function's result is known, for a select.
func (r *Result[R]) Done() <-chan struct{} { return r.done }

// Actor returns the id of the actor the function ran in (the zero id if it
// never started). It waits for the function's result.
func (r *Result[R]) Actor() protocol.ActorID {
	<-r.done
	return r.id
}

// RunInActor starts a new actor, runs f in it with args, and stops the
// actor when f has returned. It does not block: the actor starts in the
// background and the result arrives through the Result. Without
// opts.Name the actor is named after f and numbered ("jobs.run" runs in
// "jobs-run-1", "jobs-run-2", ...). f's error, or the
// actor's failure to start, is a failure of the nursery.
func RunInActor[A, R any](n *Nursery, f *ipc.Func[A, R], args A, opts spawn.Options) (*Result[R], error) {
	if err := n.enter(&n.runs); err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = n.numbered(f.Name())
	}
	r := &Result[R]{done: make(chan struct{})}
	go func() {
		defer n.runs.Done()
		if err := n.acquire(); err != nil {
			r.err = err // the nursery was cancelled while this one waited: no failure of its own
			close(r.done)
			return
		}
		defer n.release()
		a, err := spawn.Start(n.ctx, n.options(opts))
		if err != nil {
			r.err = err
			close(r.done)
			n.failure(startedID(opts.Name, err), err)
			return
		}
		r.id = a.ID()
		if !n.adopt(a) {
			r.err = ErrClosed
			close(r.done)
			return
		}
		callCtx, cancel := callContext(n.ctx)
		r.value, r.err = f.Call(callCtx, a.Channel(), args)
		cancel()
		// Publish the result before the failure cancels the nursery, so
		// that a Wait on the body's ctx sees this error, not the
		// cancellation it causes.
		close(r.done)
		if r.err != nil {
			n.failure(a.ID(), r.err)
		}
		a.Stop(n.stopContext())
		if err := a.Wait(); err != nil {
			n.failure(a.ID(), err) // unless the stop explains it
		}
		n.forget(a)
	}()
	return r, nil
}

// OpenStreamInActor starts a new actor, opens the stream s in it with args,
// and stops the actor once the stream has ended: read to its end, failed,
// or closed by the reader (Close, or leaving an All loop). It blocks until
// the actor has completed its handshake (and, WithLimit, for a slot); like
// StartActor's, its own error is the caller's to return. The stream runs under the nursery's ctx; an error that ends it, other than a
// cancellation, is a failure of the nursery as well as Recv's error. Read
// it from the body or from a goroutine of n.Go: once those have returned,
// a stream still running is stopped with the other actors. Without
// opts.Name the actor is named after s, as RunInActor names its children.
func OpenStreamInActor[A, Y any](n *Nursery, s *ipc.Stream[A, Y], args A, opts spawn.Options) (*ipc.StreamReader[Y], error) {
	if opts.Name == "" {
		opts.Name = n.numbered(s.Name())
	}
	a, err := n.startWatched(opts)
	if err != nil {
		return nil, err
	}
	r, err := s.Open(n.ctx, a.Channel(), args)
	go func() {
		defer n.watchers.Done()
		defer n.release()
		if r != nil {
			<-r.Done()
			if err := r.Err(); err != nil && !errors.Is(err, ipc.ErrCallEnded) {
				n.failure(a.ID(), err)
			}
		}
		a.Stop(n.stopContext())
		if err := a.Wait(); err != nil {
			n.failure(a.ID(), err) // unless the stop explains it
		}
		n.forget(a)
	}()
	return r, err
}

// numbered names an actor after the function it runs, with a number, so
// that a hundred of them are told apart in logs and errors.
func (n *Nursery) numbered(function string) string {
	return strings.ReplaceAll(function, ".", "-") + "-" + strconv.FormatInt(n.unnamed.Add(1), 10)
}

// startedID is the id of an actor that failed to start: the one the
// StartError names, else its name alone.
func startedID(name string, err error) protocol.ActorID {
	var se *spawn.StartError
	if errors.As(err, &se) {
		return se.Actor
	}
	return protocol.ActorID{Name: name}
}

// callContext is the ctx of a RunInActor call: n's deadline, if it has
// one, but not its cancellation. A cancelled nursery stops the actor
// instead (stopAll), which cancels what it serves and waits for it: the
// call then returns what the function returned, so that an error it
// returns while being cancelled is not lost to a call that gave up first.
func callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	call := context.WithoutCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(call, deadline)
	}
	return call, func() {}
}

// forget drops a stopped actor from the set stopAll stops.
func (n *Nursery) forget(a *spawn.Actor) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, b := range n.actors {
		if b == a {
			n.actors = append(n.actors[:i], n.actors[i+1:]...)
			return
		}
	}
}

func (n *Nursery) result() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.failures) == 0 {
		return nil
	}
	return &Error{Failures: append([]error(nil), n.failures...)}
}

// Error is what Open returns when something in the nursery failed.
type Error struct {
	// Failures lists each failure once, in the order they happened: the
	// body's own error as it was returned, and every actor's wrapped in an
	// *ActorError.
	Failures []error
}

func (e *Error) Error() string {
	if len(e.Failures) == 1 {
		return "nursery: " + e.Failures[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nursery: %d failures:", len(e.Failures))
	for _, f := range e.Failures {
		b.WriteString("\n\t")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns the failures, for errors.Is and errors.As.
func (e *Error) Unwrap() []error { return e.Failures }

// ActorError is the failure of one actor of a nursery.
type ActorError struct {
	Actor protocol.ActorID
	Err   error
}

// Error names the actor, unless the error it wraps already does (a
// RemoteError from it, its ExitError or StartError).
func (e *ActorError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, "actor "+e.Actor.String()) || strings.Contains(msg, "process "+e.Actor.String()) {
		return msg
	}
	return fmt.Sprintf("actor %s: %s", e.Actor, msg)
}
func (e *ActorError) Unwrap() error { return e.Err }
