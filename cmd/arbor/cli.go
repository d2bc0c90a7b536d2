package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/arbor-go/arbor/nursery"
	"github.com/mattn/go-isatty"
)

// Exit statuses.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	maxFailures = 101
)

// version is set by the linker for releases; otherwise the module version.
var version = ""

const usage = `arbor runs trees of processes.

Usage:
  arbor parallel [flags] COMMAND [ARGS...] [::: INPUTS...]
      Run COMMAND once per input, several at a time, as GNU parallel
      does: through the shell, with inputs quoted, from ::: lists, ::::
      files or stdin; see 'arbor help parallel'.
  arbor supervise FILE
      Run the programs a Procfile or JSON spec describes and keep them
      running; Ctrl-C stops them in reverse start order.
  arbor ps [--json]
      Show the children of a running arbor supervise: name, pid, state,
      restarts, uptime.
  arbor stop NAME / arbor restart NAME
      Stop a child (it stays stopped) or restart it.
  arbor reload
      Make a running arbor supervise re-read its spec (as a daemon's
      SIGHUP does).
  arbor logs [-f] [-n N] [NAME]
      Print the children's last lines, and with -f the new ones.
  arbor schema BINARY [--json]
      Print the functions an arbor actor binary serves.
  arbor version
      Print arbor's version.
  arbor help [COMMAND]
      Print this help, or a command's.

Exit status: 0 on success; parallel: as GNU parallel (the number of
failed jobs, at most 101; 255 for a bad command line); 2 for a usage error;
129 after SIGHUP, 130 after SIGINT, 143 after SIGTERM; 1 for any other
error.
`

// usageError is a command line that cannot be run; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run is main without os.Exit, for tests.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, reloads, stop := commandContext(args[0])
	defer stop()
	var status int
	var err error
	switch args[0] {
	case "parallel":
		status, err = runParallel(ctx, args[1:], stdin, stdout, stderr)
	case "remote-job": // what arbor parallel -S runs on a host
		return runRemoteJob(args[1:], stderr)
	case "schema":
		err = runSchema(ctx, args[1:], stdout)
	case "supervise":
		err = runSupervise(ctx, args[1:], reloads, stdout, stderr)
	case "ps", "stop", "restart", "reload", "logs":
		err = runControl(ctx, args[0], args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "arbor", versionString())
	case "help", "-h", "--help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		err = usagef("unknown command %q (try 'arbor help')", args[0])
	}
	var ue *usageError
	var sig *nursery.SignalError
	switch {
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "arbor:", err)
		if args[0] == "parallel" {
			return exitParallelUsage // GNU parallel's status, for drop-in use
		}
		return exitUsage
	case errors.As(context.Cause(ctx), &sig):
		if err != nil {
			fmt.Fprintln(stderr, "arbor:", err)
		}
		return 128 + int(sig.Signal)
	case err != nil:
		fmt.Fprintln(stderr, "arbor:", err)
		if args[0] == "parallel" {
			return exitParallelUsage // GNU parallel's "other error"
		}
		return exitError
	}
	return status
}

var errHelp = errors.New("help printed")

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// commandContext returns the ctx a command runs with, which SIGINT,
// SIGTERM or SIGHUP cancel with a *nursery.SignalError. For a daemon's
// arbor supervise (no controlling terminal: nobody hung up) a SIGHUP
// arrives on reloads instead, to reload the spec; one that comes while
// another waits there is dropped. For other commands reloads is nil.
// stop returns once nothing watches for signals any more.
func commandContext(command string) (ctx context.Context, reloads <-chan os.Signal, stop func()) {
	if command != "supervise" || hasControllingTerminal() {
		ctx, stop = nursery.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		return ctx, nil, stop
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, stopCancelling := nursery.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	return ctx, hup, func() {
		stopCancelling()
		signal.Stop(hup)
	}
}

// hasControllingTerminal reports whether this process has a controlling
// terminal, that is whether a SIGHUP can mean that it hung up.
func hasControllingTerminal() bool {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
