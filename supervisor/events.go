package supervisor

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// EventKind names a lifecycle event.
type EventKind string

const (
	Started      EventKind = "started"
	Exited       EventKind = "exited"
	Restarting   EventKind = "restarting"
	Stopped      EventKind = "stopped"
	StopTimedOut EventKind = "stop timed out"
	GaveUp       EventKind = "gave up"
	// Fatal: an isolated child restarted too often and is left stopped.
	Fatal EventKind = "fatal"
	// Ready: a child's Ready check passed.
	Ready EventKind = "ready"
)

// Status is where a child is in its life, as Snapshot reports it.
type Status string

const (
	// StatusWaiting: not started yet; its DependsOn are not ready.
	StatusWaiting Status = "waiting"
	// StatusStarting: started, its Ready check not passed yet.
	StatusStarting Status = "starting"
	// StatusRunning: started, and it has no Ready check.
	StatusRunning Status = "running"
	// StatusReady: started, and its Ready check passed.
	StatusReady Status = "ready"
	// StatusRestarting: exited, and waiting out its backoff.
	StatusRestarting Status = "restarting"
	// StatusStopped: not running, and not to be restarted (it ended as its
	// Restart type allows, or StopChild stopped it).
	StatusStopped Status = "stopped"
	// StatusFailed: exited with an error, and not to be restarted.
	StatusFailed Status = "failed"
	// StatusFatal: an isolated child that restarted too often; RestartChild
	// revives it.
	StatusFatal Status = "fatal"
	// StatusRemoved: taken out by RemoveChild or a reload.
	StatusRemoved Status = "removed"
)

// Up reports whether a child in this status is running: started, ready or
// not.
func (s Status) Up() bool { return s == StatusStarting || s == StatusRunning || s == StatusReady }

// Event is one lifecycle fact about a child.
type Event struct {
	Kind       EventKind
	Supervisor string
	Child      string
	// Err is why the child exited (Exited), or the *IntensityError
	// (GaveUp, Fatal).
	Err error
	// Backoff is the wait before the restart (Restarting).
	Backoff time.Duration
}

func (s *Supervisor) emit(e Event) {
	e.Supervisor = s.spec.Name
	level := hclog.Info
	switch e.Kind {
	case GaveUp, StopTimedOut, Fatal:
		level = hclog.Error
	case Exited:
		if e.Err != nil {
			level = hclog.Warn
		}
	}
	args := []any{"supervisor", e.Supervisor, "child", e.Child}
	if e.Err != nil {
		args = append(args, "error", e.Err.Error())
	}
	if e.Backoff > 0 {
		args = append(args, "backoff", e.Backoff)
	}
	s.spec.Logger.Log(level, string(e.Kind), args...)
	if s.spec.Events != nil {
		s.spec.Events(e)
	}
}

// ChildState is one child in a Snapshot.
type ChildState struct {
	Name     string
	PID      int // 0 when the child is not a process, or is not up (Status.Up)
	State    Status
	Restarts int
	Uptime   time.Duration // since it started; 0 unless it is up
	LastExit error
}

// pider is a service that runs a process.
type pider interface{ PID() int }

// Snapshot reports every child's state at this moment. It is safe to call
// from any goroutine, while Serve runs or after.
func (s *Supervisor) Snapshot() []ChildState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChildState, 0, len(s.children))
	for i, c := range s.children {
		st := s.state[i]
		if st.removed {
			continue
		}
		cs := ChildState{Name: c.Name, State: st.status, Restarts: st.restarts, LastExit: st.lastExit}
		if st.status.Up() { // running, or started and not ready yet, or ready
			cs.Uptime = s.clock.Now().Sub(st.started)
			if p, ok := st.service.(pider); ok {
				cs.PID = p.PID()
			}
		}
		out = append(out, cs)
	}
	return out
}
