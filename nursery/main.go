package nursery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// SignalError is the cause a root nursery is cancelled with when the
// process receives SIGINT or SIGTERM.
type SignalError struct {
	Signal syscall.Signal
}

func (e *SignalError) Error() string { return fmt.Sprintf("received %v", e.Signal) }

// Is makes a SignalError a cancellation.
func (e *SignalError) Is(target error) bool { return target == context.Canceled }

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
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	watching := make(chan struct{})
	defer func() { <-watching }()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(watching)
		select {
		case sig := <-signals:
			cancel(&SignalError{Signal: sig.(syscall.Signal)})
		case <-stop:
		}
	}()

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
