package spawn

import (
	"path/filepath"
	"time"

	"github.com/arbor-go/arbor/internal/shellword"
)

// DefaultLauncherHeartbeat is the heartbeat period of an actor started
// through a Launcher when Options.Heartbeat is zero: a cut link is noticed
// within two periods, and the far side has stopped within one more second
// (PROTOCOL.md §12.5).
const DefaultLauncherHeartbeat = time.Second

// launch is how an actor's program is run: directly, or through a
// launcher that reaches another machine.
type launch struct {
	binary string   // what this process runs: the program, or the launcher
	args   []string // its arguments
	remote bool     // through a launcher: stdio, the spec in the hello, heartbeats
	ssh    bool     // the launcher is OpenSSH's client, whose status 255 is its own
}

// launchFor says how to run opts' program. Through a launcher, the command
// is the launcher's argv, then `env ARBOR_SPEC=handshake`, the program and
// its arguments: the far side's environment is not this one, and a value
// of that form crosses any launcher and any remote shell unquoted.
// OpenSSH's client hands its command to the remote user's shell as one
// string, so each word is quoted for a POSIX shell there; other launchers (docker exec, kubectl exec, srun) pass argv as it is.
func launchFor(opts Options, binary string) launch {
	if len(opts.Launcher) == 0 {
		return launch{binary: binary, args: opts.Args}
	}
	l := launch{binary: opts.Launcher[0], remote: true, ssh: filepath.Base(opts.Launcher[0]) == "ssh"}
	words := append([]string{"env", specEnv + "=" + specHandshake, binary}, opts.Args...)
	if l.ssh {
		// (No exec in front: the launcher's own words may come before
		// these, and the actor needs none, as the end of the session
		// closes its stdin, which is its channel.)
		words = shellword.Line(words)
	}
	l.args = append(append([]string(nil), opts.Launcher[1:]...), words...)
	return l
}

// heartbeat is the heartbeat period for opts: Options.Heartbeat, or the
// default for a launcher; negative turns it off.
func heartbeatFor(opts Options) time.Duration {
	switch {
	case opts.Heartbeat < 0:
		return 0
	case opts.Heartbeat == 0 && len(opts.Launcher) > 0:
		return DefaultLauncherHeartbeat
	}
	return opts.Heartbeat
}

// heartbeatMS is beat in whole milliseconds for the spec, rounded up: a
// beat under a millisecond is still a beat on the child's side.
func heartbeatMS(beat time.Duration) int64 {
	return int64((beat + time.Millisecond - 1) / time.Millisecond)
}
