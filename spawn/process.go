package spawn

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// process is a child program and what comes with it, whether or not it is
// an actor: the exec.Cmd and its process group, the reap, the signals, the
// exit report, and the goroutines that forward its output. It knows
// nothing of the protocol; an Actor adds the channel, the handshake and the
// stop request on top of it. Its owner calls reap and then endOutput on one
// goroutine once start has succeeded.
type process struct {
	id     protocol.ActorID
	binary string
	plain  bool // a plain program (StartCommand): messages call it a process, not an actor
	log    hclog.Logger
	logs   *logForwarder
	cmd    *exec.Cmd // set by start
	held   *held     // what Contain keeps of the child, if it is contained

	stopSignal syscall.Signal // the first signal terminate sends
	killDelay  time.Duration  // how long terminate waits after it before SIGKILL

	mu       sync.Mutex
	reaped   bool // once set, the process group may no longer be signalled
	stopping bool

	exited     chan struct{} // closed by reap once exit is set
	exit       *ExitError
	outputDone chan struct{} // closed when the forwarders have finished
	launcher   launch        // how it runs, when through a launcher (Options.Launcher)
}

// newProcess makes the handle of a program about to start, with the
// logger, output and stop signal opts give; killDelay is terminate's wait.
func newProcess(id protocol.ActorID, opts Options, plain bool, killDelay time.Duration) *process {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.ResetNamed(id.Name)
	p := &process{
		id:         id,
		binary:     opts.Binary,
		plain:      plain,
		log:        log,
		logs:       newLogForwarder(log, opts.Output),
		stopSignal: opts.StopSignal,
		killDelay:  killDelay,
		exited:     make(chan struct{}),
		outputDone: make(chan struct{}),
	}
	if p.stopSignal == 0 {
		p.stopSignal = syscall.SIGTERM
	}
	return p
}

// childFiles sets up the files a child starts with.
type childFiles interface {
	// attach sets cmd's files and returns the output streams to forward
	// ("stdout", "stderr").
	attach(cmd *exec.Cmd) (map[string]io.ReadCloser, error)
	// closeChildEnds closes the parent's copies of the child's ends, once
	// the child has them or will never start.
	closeChildEnds()
}

// start is the one start path of actors and plain programs: it runs the
// program with opts.Args in opts.Dir with env (nil: this process's) and
// the files that files sets up, in a process group of its own and under
// opts.Limits, and forwards its output: a stream with a writer in raw is
// copied to it byte for byte, the others go line by line to the logger.
// It returns a *StartError if the program did not start, and then leaves
// nothing open but what files keeps for a channel; otherwise the program
// runs and its owner must reap it.
func (p *process) start(opts Options, env []string, files childFiles, raw map[string]io.Writer) error {
	cmd := exec.Command(p.binary, opts.Args...)
	cmd.Dir = opts.Dir
	cmd.Env = env
	prepareCommand(cmd)
	outputs, err := files.attach(cmd)
	if err != nil {
		files.closeChildEnds()
		closeAll(outputs)
		reason := "setting up the child's streams"
		if p.plain {
			reason = "setting up the program's output"
		}
		return p.startError(reason, err)
	}
	p.cmd = cmd
	p.held, err = startCommand(cmd, opts.Limits)
	files.closeChildEnds()
	if err != nil {
		closeAll(outputs)
		return p.startError("running the program", err)
	}
	for stream, r := range outputs {
		if w := raw[stream]; w != nil {
			p.logs.copyRaw(r, w)
		} else {
			p.logs.drain(r, stream)
		}
	}
	return nil
}

func closeAll(files map[string]io.ReadCloser) {
	for _, f := range files {
		f.Close()
	}
}

// outputPipes makes pipes for the streams the child does not use for the
// protocol.
func outputPipes(cmd *exec.Cmd, streams ...string) (map[string]io.ReadCloser, []*os.File, error) {
	readers := map[string]io.ReadCloser{}
	var writers []*os.File
	for _, s := range streams {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range readers {
				f.Close()
			}
			for _, f := range writers {
				f.Close()
			}
			return nil, nil, err
		}
		readers[s] = r
		writers = append(writers, w)
		if s == "stdout" {
			cmd.Stdout = w
		} else {
			cmd.Stderr = w
		}
	}
	return readers, writers, nil
}

// commandFiles are a plain program's standard streams (Options.Stdin,
// Stdout, Stderr): a file given for an output stream is handed to the
// program as it is, with no pipe and no copy; the other streams are piped.
type commandFiles struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	writers        []*os.File // the child's ends of the pipes
}

func (f *commandFiles) attach(cmd *exec.Cmd) (map[string]io.ReadCloser, error) {
	cmd.Stdin = f.stdin
	if _, isFile := f.stdin.(*os.File); f.stdin != nil && !isFile {
		// os/exec copies Stdin on a goroutine that Wait waits for; a
		// descendant outside the group holding the pipe must not make
		// that wait last for ever.
		cmd.WaitDelay = stdinWaitDelay
	}
	var piped []string
	if file, ok := f.stdout.(*os.File); ok {
		cmd.Stdout = file
	} else {
		piped = append(piped, "stdout")
	}
	if file, ok := f.stderr.(*os.File); ok {
		cmd.Stderr = file
	} else {
		piped = append(piped, "stderr")
	}
	outputs, writers, err := outputPipes(cmd, piped...)
	f.writers = writers
	return outputs, err
}

func (f *commandFiles) closeChildEnds() {
	for _, w := range f.writers {
		w.Close()
	}
}

// stdinWaitDelay bounds how long reaping a plain program waits for the
// copy of its Stdin to end once the program has exited.
const stdinWaitDelay = time.Second

func (p *process) startError(reason string, err error) *StartError {
	return &StartError{Actor: p.id, Binary: p.binary, Reason: reason, Err: err, Plain: p.plain}
}

// pid returns the process id; only after start has succeeded.
func (p *process) pid() int { return p.cmd.Process.Pid }

// reap waits for the process to exit, ends what it left in its process
// group (and, under Contain, its cgroup), reaps it and makes the exit
// report, giving the output forwarders a moment for the last lines. It
// closes exited when the report is ready.
func (p *process) reap() {
	pid := p.pid()
	if waitExited(pid) {
		// The child has exited but is not reaped, so its process group id
		// is still reserved: whatever it left running in its group (a
		// helper started without arbor, a shell's background job) goes
		// with it, and cannot hold its output pipes open.
		// Under Contain, what left the group goes too: the child's cgroup.
		containExited(p.held)
		p.mu.Lock()
		signalGroup(pid, syscall.SIGKILL)
		p.cmd.Wait() // reaps; the status is read from ProcessState below
		p.reaped = true
		p.mu.Unlock()
	} else {
		// Without a way to wait before reaping, wait unlocked (signals
		// must still get through meanwhile) and close the window after.
		p.cmd.Wait()
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
	}
	containReaped(p.held)
	stopped := p.stopRequested()
	releaseCommand()

	// The output pipes close when the process exits; give the forwarders
	// a moment to catch up so the report has the last lines (endOutput
	// stops reading what a descendant outside the group may still hold).
	if p.logs.streams() == 0 {
		close(p.outputDone) // every stream went to a file: nothing to drain
	} else {
		go func() { p.logs.wait(); close(p.outputDone) }()
		select {
		case <-p.outputDone:
		case <-time.After(lastLinesWait):
		}
	}
	ps := p.cmd.ProcessState
	e := &ExitError{Actor: p.id, PID: pid, Code: ps.ExitCode(), Stopped: stopped, Plain: p.plain, Launcher: p.launcher.binary}
	e.sshFailed = p.launcher.ssh && e.Code == 255
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	_, e.Stderr, e.Panic = p.logs.report()
	if e.Code != 2 {
		e.Panic = "" // a Go panic exits with status 2; this was a printed, recovered one
	}
	p.exit = e
	close(p.exited)
}

// endOutput returns when the output forwarders have finished, after
// stopping them if a descendant outside the process group still holds the
// pipes open after outputDrainWait. It is called after reap.
func (p *process) endOutput() {
	select {
	case <-p.outputDone:
	default:
		t := time.NewTimer(outputDrainWait)
		select {
		case <-p.outputDone:
		case <-t.C:
			p.logs.abort()
			<-p.outputDone
		}
		t.Stop()
	}
}

// explain turns the end of the channel into the child's exit status, when
// the child has exited or does so shortly.
func (p *process) explain(cause error) error {
	if errors.As(cause, new(*ipc.HeartbeatError)) {
		return cause // the link is cut: no exit status is coming to wait for
	}
	select {
	case <-p.exited:
		return p.exit
	case <-time.After(exitStatusForChannel):
		return cause
	}
}

// signal sends sig to the child's process group if it has not been reaped.
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		signalGroup(p.pid(), sig)
	}
}

// terminate stops the process by signals: stopSignal to its process group,
// killDelay, SIGKILL. It returns once the process has been reaped.
func (p *process) terminate() {
	p.signal(p.stopSignal)
	if !waited(p.exited, p.killDelay) {
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
}

// waited reports whether ended was closed within d (Forever: waits).
func waited(ended <-chan struct{}, d time.Duration) bool {
	if d == Forever {
		<-ended
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ended:
		return true
	case <-t.C:
		return false
	}
}

// markStopping records that the process is being stopped, for the exit
// report.
func (p *process) markStopping() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
}

func (p *process) stopRequested() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}
