package nursery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SignalError is the cause a context from NotifyContext, a root nursery's
// under Main among them, is cancelled with when the process receives one
// of the signals it watches.
type SignalError struct {
	Signal syscall.Signal
}

func (e *SignalError) Error() string { return fmt.Sprintf("received %v", e.Signal) }

// Is makes a SignalError a cancellation.
func (e *SignalError) Is(target error) bool { return target == context.Canceled }

// NotifyContext returns a copy of parent that the first of signals to
// arrive cancels, with a *SignalError naming it as the cause; the process
// no longer dies of those signals meanwhile. It does not block. stop
// stops watching, cancels ctx (with no cause: context.Canceled) and
// returns once the goroutine that watched has exited; calling it again
// does nothing.
func NotifyContext(parent context.Context, signals ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	arrived := make(chan os.Signal, 1)
	signal.Notify(arrived, signals...)
	stopped := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-arrived:
			cancel(&SignalError{Signal: sig.(syscall.Signal)})
		case <-stopped:
		}
	}()
	return ctx, sync.OnceFunc(func() {
		signal.Stop(arrived)
		close(stopped)
		<-watched
		cancel(nil)
	})
}

// Main runs body in a root nursery for a program's main function and
// returns the exit status main should exit with. SIGINT or SIGTERM cancel
// the whole tree gracefully: every actor is asked to stop, and escalated
// to signals only if it does not. Because each child has a process group
// of its own, a terminal's Ctrl-C reaches only the root, which tears the
// tree down in order.
//
// The status is 0 when body and every actor succeeded, 128 plus the signal
// number after SIGINT (130) or SIGTERM (143), and 1 otherwise, after the
// error has been printed to stderr.
//
//	func main() {
//		spawn.Main(functions)
//		os.Exit(nursery.Main(run))
//	}
func Main(body func(ctx context.Context, n *Nursery) error, opts ...Option) int {
	ctx, stop := NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := Open(ctx, body, opts...)
	if err == nil {
		return 0
	}
	var failures *Error
	if errors.As(err, &failures) {
		fmt.Fprintln(os.Stderr, err)
	}
	var se *SignalError
	if errors.As(context.Cause(ctx), &se) {
		return 128 + int(se.Signal)
	}
	if failures == nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 1
}
