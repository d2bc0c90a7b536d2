package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/arbor-go/arbor/nursery"
)

// Main serves s for a program's main function, as nursery.Main runs a
// nursery, and returns the exit status main should exit with. SIGINT or
// SIGTERM stop the tree in order: children stop in the reverse of their
// start order, each within its Shutdown. Because each child has a process
// group of its own, a terminal's Ctrl-C reaches only this process, which
// then stops them.
//
// The status is 130 after SIGINT and 143 after SIGTERM, once the tree has
// stopped (a shell's convention for a program ended by a signal, as arbor
// supervise's); 0 when the supervisor ended on its own (its significant
// children done, Spec.AutoShutdown); 1 when it gave up or could not start,
// after the error has been printed to stderr.
//
//	func main() {
//		spawn.Main(functions)
//		os.Exit(supervisor.Main(supervisor.New(spec, children...)))
//	}
func Main(s *Supervisor) int {
	ctx, stop := nursery.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var se *nursery.SignalError
	if errors.As(context.Cause(ctx), &se) {
		return 128 + int(se.Signal)
	}
	return 0
}
