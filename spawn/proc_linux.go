package spawn

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func platformAttrs(attr *syscall.SysProcAttr) {
	// SIGKILL, not SIGTERM: when the parent is gone nobody can be told how
	// the child ended. The signal reaches the child only (a fork does not
	// inherit it): an actor's lifeline stops its own children, and Contain
	// catches the descendants of plain programs.
	attr.Pdeathsig = syscall.SIGKILL
}

// The parent-death signal is sent when the *thread* that forked the child
// exits, not the process (golang/go#27505), and Go may end a thread under a
// goroutine that dies locked to it. So every child is forked from one
// goroutine locked to its thread, which lives while any child it forked is
// alive and exits — taking its thread with it — only when none is, and none
// has been started for forkerLinger: a caller that starts children one
// after another (arbor parallel) keeps one thread rather than making and
// ending one per child.
var forks forker

// forkerLinger is how long the forking thread outlives its last child. It
// is short so that a program that has stopped starting children is left
// with no extra thread almost at once (and leak checks see none).
const forkerLinger = 20 * time.Millisecond

type forker struct {
	mu    sync.Mutex
	live  int // children started and not yet released
	reqs  chan forkRequest
	epoch int // counts releases to zero, so a stale idle timer does nothing
}

type forkRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// start starts cmd on the forking thread. Every successful start must be
// matched by one release once the child has been reaped.
func (f *forker) start(cmd *exec.Cmd) error {
	f.mu.Lock()
	if f.reqs == nil {
		f.reqs = make(chan forkRequest)
		go f.loop(f.reqs)
	}
	f.live++
	reqs := f.reqs
	f.mu.Unlock()
	req := forkRequest{cmd: cmd, done: make(chan error, 1)}
	reqs <- req
	err := <-req.done
	if err != nil {
		f.release()
	}
	return err
}

func (f *forker) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live--
	if f.live > 0 {
		return
	}
	f.epoch++
	epoch := f.epoch
	time.AfterFunc(forkerLinger, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.live == 0 && f.epoch == epoch && f.reqs != nil {
			close(f.reqs)
			f.reqs = nil
		}
	})
}

func (f *forker) loop(reqs chan forkRequest) {
	runtime.LockOSThread()
	// Never unlocked: when the loop ends, the goroutine exits locked and Go
	// ends the thread, which by then has no living children.
	for req := range reqs {
		req.done <- req.cmd.Start()
	}
}

func startCommand(cmd *exec.Cmd, limits *Limits) (*held, error) {
	if err := applyLimits(cmd, limits); err != nil {
		return nil, err
	}
	return containStart(cmd, limits, func() error { return forks.start(cmd) })
}
func releaseCommand() { forks.release() }
