package spawn

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/arbor-go/arbor/protocol"
)

// ErrMainNotCalled is returned by Start in a process that was started as an
// actor but never reached Main: the binary forgot to call spawn.Main at the
// top of main, and would otherwise start copies of itself without end.
var ErrMainNotCalled = errors.New("spawn: this process was started as an arbor actor, but spawn.Main was not called at the top of main")

// ExitError describes how an actor process ended when it did not end
// cleanly: calls in flight on its channel fail with it (wrapped in an
// *ipc.PeerGoneError), and Wait returns it.
type ExitError struct {
	Actor protocol.ActorID
	PID   int
	// Code is the exit status, or -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, if one did.
	Signal syscall.Signal
	// Stopped is true when arbor stopped the actor (Stop was called).
	Stopped bool
	// Stderr holds the last lines (up to 20) the process wrote to stderr.
	Stderr []string
	// Panic is a Go panic's message and trace, when the process died of one.
	Panic string
	// Plain is true for a plain program (StartCommand), which the message
	// calls a process rather than an actor.
	Plain bool
	// Launcher is the launcher the actor ran through (Options.Launcher),
	// if any: PID and Code are then the launcher's, which reports the far
	// side's status as its own, except where it failed itself.
	Launcher string

	sshFailed bool // OpenSSH's client exited 255: its own failure, not the program's
}

// what names the kind of process in messages.
func what(plain bool) string {
	if plain {
		return "process"
	}
	return "actor"
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (pid %d) ", what(e.Plain), e.Actor, e.PID)
	switch {
	case e.Signal != 0:
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	case e.sshFailed:
		b.WriteString("lost: ssh exited with status 255, most likely its own failure (the host could not be reached, or the connection broke) rather than the program's")
	default:
		fmt.Fprintf(&b, "exited with status %d", e.Code)
	}
	if e.Launcher != "" && !e.sshFailed {
		fmt.Fprintf(&b, " (through %s)", e.Launcher)
	}
	if e.Stopped {
		b.WriteString(" after arbor stopped it")
	}
	if e.Panic != "" {
		first, _, _ := strings.Cut(e.Panic, "\n")
		fmt.Fprintf(&b, ": %s", first)
	} else if n := len(e.Stderr); n > 0 {
		fmt.Fprintf(&b, "; last stderr line: %s", e.Stderr[n-1])
	}
	return b.String()
}

// success reports whether the process exited with status 0.
func (e *ExitError) success() bool { return e.Signal == 0 && e.Code == 0 }

// StartError is an actor that could not be started: the program could not
// be run, or it never completed the handshake.
type StartError struct {
	Actor  protocol.ActorID
	Binary string
	Reason string
	// Output holds the first lines the process wrote (stdout and stderr),
	// which show what a program that is not an arbor actor is.
	Output []string
	// Exit says how the process ended, if it did.
	Exit  *ExitError
	Err   error
	Plain bool // a plain program: the message says process, not actor
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spawn: starting %s %s (%s): %s", what(e.Plain), e.Actor, e.Binary, e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Exit != nil {
		if e.Exit.Signal != 0 {
			fmt.Fprintf(&b, "; it was killed by signal %s", e.Exit.Signal)
		} else {
			fmt.Fprintf(&b, "; it exited with status %d", e.Exit.Code)
		}
	}
	if len(e.Output) > 0 {
		fmt.Fprintf(&b, "; its output began: %q", strings.Join(e.Output, "\n"))
	}
	return b.String()
}

func (e *StartError) Unwrap() error { return e.Err }
