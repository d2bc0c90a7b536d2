package spawn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
)

// Default durations; see Options.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultGracePeriod      = 2 * time.Second
	DefaultKillDelay        = time.Second
)

// Options describe one actor to start. The zero value starts this program
// again as an actor named "actor" over a pair of pipes. Start never modifies
// the Options it is given.
type Options struct {
	// Name is the actor's name within its parent; its full name, used for
	// its logger and in errors, is the parent's name, a dot, and Name.
	// Empty means "actor".
	Name string
	// Parent is the spawning actor's id. Zero means the actor whose served
	// call ctx belongs to, or else this process's root actor.
	Parent protocol.ActorID
	// Binary is the program to run; empty means this program. Another
	// binary must be built with arbor and call Main.
	Binary string
	// Args are the program's arguments (without the program name).
	Args []string
	// Env is the child's environment; nil means this process's.
	Env []string
	// Dir is the child's working directory; empty means this process's.
	Dir string
	// Transport connects parent and child; the zero value is Pipes.
	Transport Transport
	// Functions is what this side serves to the child; nil serves only the
	// runtime functions.
	Functions *ipc.Table
	// Logger receives the child's output, line by line, under a logger
	// named by the child's full name; hclog JSON lines keep their level and
	// fields. Nil discards it.
	Logger hclog.Logger
	// LogLevel is the level of the logger the child's runtime gives its
	// code; NoLevel means Info.
	LogLevel hclog.Level
	// HandshakeTimeout bounds the time from start to a completed handshake;
	// zero means DefaultHandshakeTimeout (10s).
	HandshakeTimeout time.Duration
	// GracePeriod is how long Stop waits after asking the child to stop
	// before it sends StopSignal (for a plain program, after StopSignal
	// before SIGKILL); zero means DefaultGracePeriod (2s), Forever waits.
	GracePeriod time.Duration
	// KillDelay is how long Stop waits after StopSignal before SIGKILL;
	// zero means DefaultKillDelay (1s), Forever waits.
	KillDelay time.Duration
	// StopSignal is sent to the child's process group when the grace
	// period is over; zero means SIGTERM.
	StopSignal syscall.Signal
	// Output, if set, receives each line the child writes ("stdout" or
	// "stderr") instead of Logger, in order per stream, from one
	// goroutine. No line is dropped: a child that writes faster than
	// Output takes lines waits on its pipe.
	Output func(stream, line string)
	// Stdin, Stdout and Stderr apply to a plain program (StartCommand)
	// only. Stdin is the program's standard input; nil means the null
	// device. Stdout and Stderr, if set, receive that stream byte for byte
	// (no line splitting, no newline added or removed) instead of Output or
	// Logger, each from one goroutine; a program that writes faster than
	// the writer takes waits on its pipe. An *os.File is given to the
	// program itself, with no pipe in between.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Limits bound the child's resources (Linux). Start fails with a
	// *StartError that says why when a limit cannot be enforced here.
	Limits *Limits
	// Launcher, if set, is an argv prefix that runs the actor elsewhere and
	// carries its stdin and stdout: {"ssh", "-T", "host"}, {"docker",
	// "exec", "-i", "ctr"}, {"kubectl", "exec", "-i", "pod", "--"},
	// {"srun", "-N1", "-n1"}. Binary is then the program's path on the far
	// side, and required. The channel runs over the launcher's stdio
	// (Transport does not apply), the spec travels in the parent's hello,
	// and the far side's stderr is its log, forwarded as for a local
	// actor (PROTOCOL.md §12.7). Heartbeats are on by default. Stop's
	// signals reach the launcher's process group, whose end closes the
	// far side's stdin.
	Launcher []string
	// Aliases are more names the actor is registered under in the tree,
	// beside its full name (Find, WaitFor).
	Aliases []string
	// Heartbeat is the period of the heartbeats between this side and the
	// actor (PROTOCOL.md §12.5): either side that hears nothing for two
	// of them ends the channel, the child stopping what it runs and
	// exiting. Zero means none for a local actor, whose parent-death
	// signal and end of stream suffice, and DefaultLauncherHeartbeat
	// through a Launcher; negative means none.
	Heartbeat time.Duration
}

// Limits are resource limits for a child. Zero fields set nothing. The
// rlimits (OpenFiles, CoreBytes, AddressSpace) are set in the child
// before it runs its program, as prlimit does; the rest need Contain with
// a cgroup v2 whose controllers (memory, cpu, pids) reach arbor's cgroup,
// and the child then gets a cgroup with memory.max (and memory.oom.group,
// so that an out-of-memory kill takes the whole child), cpu.max and
// pids.max.
type Limits struct {
	OpenFiles    uint64  // RLIMIT_NOFILE
	CoreBytes    uint64  // RLIMIT_CORE; NoCore for none at all
	AddressSpace uint64  // RLIMIT_AS, bytes
	MemoryMax    uint64  // bytes
	CPUs         float64 // CPU time per wall time: 0.5 is half a CPU
	PidsMax      int     // processes and threads
}

// NoCore, as Limits.CoreBytes, forbids core dumps.
const NoCore = ^uint64(0)

// rlimits reports whether l sets a limit the child applies itself.
func (l *Limits) rlimits() bool {
	return l != nil && (l.OpenFiles != 0 || l.CoreBytes != 0 || l.AddressSpace != 0)
}

// cgroupLimits reports whether l sets a limit that needs a cgroup.
func (l *Limits) cgroupLimits() bool {
	return l != nil && (l.MemoryMax != 0 || l.CPUs != 0 || l.PidsMax != 0)
}

// WithDefaults returns o with each field that o leaves zero taken from d:
// the one place where two Options are merged (a nursery's defaults under
// the options of one actor, say). Binary and Args go together: the
// caller's pair is kept if either is set (Args alone are arguments for
// this program), else d's pair is taken. Neither o nor d is modified.
func (o Options) WithDefaults(d Options) Options {
	if o.Name == "" {
		o.Name = d.Name
	}
	if o.Parent.IsZero() {
		o.Parent = d.Parent
	}
	if o.Binary == "" && o.Args == nil {
		o.Binary, o.Args = d.Binary, d.Args
	}
	if o.Env == nil {
		o.Env = d.Env
	}
	if o.Dir == "" {
		o.Dir = d.Dir
	}
	if o.Transport == 0 {
		o.Transport = d.Transport
	}
	if o.Functions == nil {
		o.Functions = d.Functions
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	if o.LogLevel == hclog.NoLevel {
		o.LogLevel = d.LogLevel
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = d.HandshakeTimeout
	}
	if o.GracePeriod == 0 {
		o.GracePeriod = d.GracePeriod
	}
	if o.KillDelay == 0 {
		o.KillDelay = d.KillDelay
	}
	if o.StopSignal == 0 {
		o.StopSignal = d.StopSignal
	}
	if o.Output == nil {
		o.Output = d.Output
	}
	if o.Stdin == nil {
		o.Stdin = d.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = d.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = d.Stderr
	}
	if o.Limits == nil {
		o.Limits = d.Limits
	}
	if o.Launcher == nil {
		o.Launcher = d.Launcher
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = d.Heartbeat
	}
	if o.Aliases == nil {
		o.Aliases = d.Aliases
	}
	return o
}

// actingAs is the actor this process acts as in ctx: the one whose served
// call ctx belongs to; else, in an actor process, the actor itself; else
// the root.
func actingAs(ctx context.Context) protocol.ActorID {
	if ch, ok := ipc.ChannelFrom(ctx); ok {
		return ch.Self()
	}
	if up := parentChannel(); up != nil {
		return up.Self()
	}
	return rootID
}

// rootID names this process when it spawns outside any actor. It is set
// once, at package initialisation, and never changes.
var rootID = protocol.ActorID{Name: "root", UUID: protocol.NewUUID()}

// Actor is a running child actor, or a plain program started by
// StartCommand. It owns the process (see process), the goroutines that
// reap it and forward its output, and, for an actor, the channel to it: a
// plain program is its process alone, with no channel and no stop request.
type Actor struct {
	proc     *process
	ch       *ipc.Channel  // nil for a plain program
	grace    time.Duration // how long the stop request may take before the signals
	registry *registry     // the actor process's registry this actor is in, if any
	peerAddr string        // its peer socket, as it said; its directory is removed once it has ended

	started   chan struct{} // closed when Start has set ch, or given up on it
	done      chan struct{} // closed once everything the Actor owns has ended
	stopOnce  sync.Once
	escalated chan struct{} // closed when Stop's escalation has finished
}

// Start starts an actor process and completes the handshake with it. ctx
// bounds the start only; the actor runs until it exits or is stopped.
func Start(ctx context.Context, opts Options) (*Actor, error) {
	if startedAsActor() {
		return nil, ErrMainNotCalled
	}
	a, parent := newActor(ctx, opts, "actor", false)
	p := a.proc
	if p.binary == "" && len(opts.Launcher) > 0 {
		return nil, p.startError("starting through a launcher", errors.New("Options.Binary is empty: through a launcher it is the program's path on the far side"))
	}
	if p.binary == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, p.startError("finding this program", err)
		}
		p.binary = self
	}
	level := opts.LogLevel
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	how := launchFor(opts, p.binary)
	if how.remote {
		opts.Transport = Stdio
		p.binary, p.launcher = how.binary, how
	}
	opts.Args = how.args
	beat := heartbeatFor(opts)
	sp := spec{Actor: p.id, Parent: parent, LogLevel: level.String(), Transport: opts.Transport.String(), HeartbeatMS: heartbeatMS(beat),
		PeerSecret: secretOfTree()}
	var helloSpec protocol.Raw
	if how.remote {
		var err error
		if helloSpec, err = msgpack.Marshal(&sp); err != nil {
			return nil, p.startError("encoding the spec", err)
		}
	}

	// A parent serves its child the tree's registry too.
	funcs, err := opts.Functions.WithRuntime(treeFuncs...)
	if err != nil {
		return nil, p.startError("the functions to serve the child", err)
	}
	tr, err := newParentTransport(opts.Transport, &sp)
	if err != nil {
		return nil, p.startError("setting up the "+opts.Transport.String()+" transport", err)
	}
	defer tr.cleanup()

	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	if !how.remote { // through a launcher, the command line says ARBOR_SPEC=handshake
		specJSON, _ := json.Marshal(sp)
		env = append(append(make([]string, 0, len(env)+1), env...), specEnv+"="+string(specJSON))
	}
	if err := p.start(opts, env, tr, nil); err != nil {
		tr.abort()
		return nil, err
	}
	go a.own()

	hctx, cancel := context.WithTimeout(ctx, orDefault(opts.HandshakeTimeout, DefaultHandshakeTimeout))
	defer cancel()
	conn, err := tr.connect(hctx, p.log, p.pid(), p.exited)
	if err != nil {
		tr.abort()
	} else {
		a.ch, err = ipc.Open(hctx, conn, ipc.Options{
			Actor:     parent,
			Initiator: true,
			Functions: funcs,
			Logger:    p.log,
			Explain:   p.explain,
			HelloSpec: helloSpec,
			Heartbeat: beat,
		})
	}
	if err == nil && a.ch.Peer().UUID != p.id.UUID {
		err = &identityError{got: a.ch.Peer(), want: p.id}
		a.ch.Close()
		a.ch = nil
	}
	if reg, ok := ctx.Value(registryKey{}).(*registry); ok && err == nil {
		// Started from a call an actor serves: stopping that actor stops
		// this one too. own removes it again once it has exited.
		a.registry = reg
		reg.add(a)
	}
	if err == nil {
		a.enter(ctx, opts, parent)
	}
	close(a.started)
	if err != nil {
		return nil, a.failStart(ctx, hctx, err)
	}
	return a, nil
}

// newActor makes the handle of a process about to start, named under the
// spawning actor; plain is a program that is not an actor (StartCommand).
func newActor(ctx context.Context, opts Options, defaultName string, plain bool) (*Actor, protocol.ActorID) {
	parent := opts.Parent
	if parent.IsZero() {
		parent = actingAs(ctx)
	}
	name := opts.Name
	if name == "" {
		name = defaultName
	}
	id := protocol.ActorID{Name: parent.Name + "." + name, UUID: protocol.NewUUID()}
	grace := orDefault(opts.GracePeriod, DefaultGracePeriod)
	killDelay := orDefault(opts.KillDelay, DefaultKillDelay)
	if plain {
		// No stop request: StopSignal comes at once, and GracePeriod is
		// the wait before SIGKILL.
		killDelay = grace
	}
	a := &Actor{
		proc:      newProcess(id, opts, plain, killDelay),
		grace:     grace,
		started:   make(chan struct{}),
		escalated: make(chan struct{}),
		done:      make(chan struct{}),
	}
	return a, parent
}

// StartCommand starts a plain program — not an arbor actor — with the same
// hygiene and ownership as an actor: its own process group, the
// parent-death signal on Linux, its output forwarded line by line to
// Options.Logger under its name, every process reaped, and an *ExitError
// when it fails. opts.Binary is required; Transport, Functions and
// HandshakeTimeout do not apply, and the returned Actor has no Channel.
// Stop sends StopSignal to the program's process group at once, waits
// GracePeriod, then sends SIGKILL. ctx is used only for naming (the
// spawning actor), as the program starts without a handshake.
func StartCommand(ctx context.Context, opts Options) (*Actor, error) {
	a, _ := newActor(ctx, opts, "command", true)
	if a.proc.binary == "" {
		return nil, a.proc.startError("no program given", errors.New("Options.Binary is empty"))
	}
	files := &commandFiles{stdin: opts.Stdin, stdout: opts.Stdout, stderr: opts.Stderr}
	raw := map[string]io.Writer{"stdout": opts.Stdout, "stderr": opts.Stderr}
	if err := a.proc.start(opts, opts.Env, files, raw); err != nil {
		return nil, err
	}
	close(a.started)
	go a.own()
	return a, nil
}

// Forever, as a GracePeriod or KillDelay, makes Stop wait at that step for
// as long as the actor takes. Other negative durations wait not at all.
const Forever time.Duration = -1

// orDefault reads a GracePeriod or KillDelay: zero is def, Forever waits,
// and any other negative duration (supervisor.BrutalKill, say) has already
// run out, so that step is skipped at once.
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d == Forever:
		return Forever
	case d < 0:
		return time.Nanosecond
	}
	return d
}

// Bounded waits in the ownership code, each for something that normally
// comes at once and must not hold a start or a stop when it does not.
const (
	// exitStatusWait: a child whose handshake failed may be exiting; its
	// exit status explains the failure better than the EOF that came
	// just before it.
	exitStatusWait = 50 * time.Millisecond
	// lastLinesWait: once the child is reaped, its output pipes close;
	// the forwarders get this long to read the last lines for the
	// ExitError before the report is made.
	lastLinesWait = 100 * time.Millisecond
	// channelEndWait: the channel ends by itself when the child's end
	// closes with it, so that calls in flight fail with the exit status;
	// past this it is closed anyway.
	channelEndWait = time.Second
	// outputDrainWait: a descendant outside the process group can hold
	// the output pipes open; past this they are no longer read.
	outputDrainWait = time.Second
	// exitStatusForChannel: how long a channel that lost its child waits
	// for the exit status to explain why (ipc.Options.Explain).
	exitStatusForChannel = time.Second
)

// failStart kills a child whose handshake failed and explains why.
func (a *Actor) failStart(ctx, hctx context.Context, err error) error {
	p := a.proc
	exitedAlready := false
	select {
	case <-p.exited:
		exitedAlready = true
	case <-time.After(exitStatusWait):
	}
	if !exitedAlready {
		p.markStopping()
		p.signal(syscall.SIGKILL)
	}
	<-a.done
	head, _, _ := p.logs.report()
	se := p.startError("the handshake failed", err)
	se.Output = head
	var (
		he *ipc.HandshakeError
		ie *identityError
	)
	switch {
	case errors.As(err, &ie):
		// The child exits once refused: that is not the story.
		se.Reason, se.Exit = "the child introduced itself as another actor", nil
	case ctx.Err() != nil:
		// Cancelled: the child's exit, if any, is the consequence.
		se.Reason, se.Err, se.Exit = "cancelled during the handshake", ctx.Err(), nil
	case exitedAlready && p.exit.sshFailed:
		se.Reason, se.Exit = "ssh could not reach the far side (it exited 255)", p.exit
	case exitedAlready && p.exit.Panic != "":
		se.Reason, se.Exit = "the actor crashed before the handshake", p.exit
	case exitedAlready:
		se.Reason, se.Exit = "the program exited before the handshake; it is not an arbor actor (a Go program calls spawn.Main; another follows PROTOCOL.md §12)", p.exit
	case hctx.Err() != nil:
		// The exit report carries the child's last stderr lines.
		se.Reason, se.Err, se.Exit = "no handshake within the timeout", hctx.Err(), p.exit
	case errors.As(err, &he) && len(he.Received) > 0:
		se.Reason = "the program is not an arbor actor"
	}
	return se
}

// own reaps the process and then closes what depends on it. It is the
// goroutine behind Wait.
func (a *Actor) own() {
	watched := a.watchLink()
	a.proc.reap()
	if watched != nil {
		<-watched
	}
	// The channel ends by itself when the child's end closes with it; wait
	// a moment for that, so calls in flight fail with the exit status
	// rather than with ErrClosed, then close it in any case.
	<-a.started
	if a.ch != nil {
		select {
		case <-a.ch.Done():
		case <-time.After(channelEndWait):
		}
		a.ch.Close()
	}
	a.proc.endOutput()
	if a.registry != nil {
		a.registry.remove(a)
	}
	if a.ch != nil {
		a.leave() // before Done: once an actor has ended, Find does not find it
	}
	close(a.done)
}

// watchLink ends the launcher of an actor whose heartbeat was lost: across
// a cut link nothing else would (ssh retransmits for many minutes), and the
// actor's end, which a nursery or a supervisor waits for, must come. The
// goroutine it starts ends by the time the process is reaped; the channel
// it returns is closed then.
func (a *Actor) watchLink() <-chan struct{} {
	if !a.proc.launcher.remote {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-a.started:
		case <-a.proc.exited:
			return
		}
		if a.ch == nil {
			return
		}
		select {
		case <-a.ch.Done():
			if errors.As(a.ch.Err(), new(*ipc.HeartbeatError)) {
				a.proc.log.Warn("the heartbeat was lost: ending the launcher", "launcher", a.proc.launcher.binary)
				a.proc.terminate()
			}
		case <-a.proc.exited:
		}
	}()
	return done
}

// identityError is a child whose hello names another actor than the one it
// was started as.
type identityError struct{ got, want protocol.ActorID }

func (e *identityError) Error() string {
	return fmt.Sprintf("its hello names actor %q (uuid %q), but it was started as %q (uuid %q); a child introduces itself as the actor ARBOR_SPEC names (PROTOCOL.md §12)",
		e.got.Name, e.got.UUID, e.want.Name, e.want.UUID)
}

// ID returns the actor's id: its full name and a UUID of its own.
func (a *Actor) ID() protocol.ActorID { return a.proc.id }

// PID returns the actor's process id.
func (a *Actor) PID() int { return a.proc.pid() }

// Channel returns the channel to the actor, for calling its functions. It
// ends when the actor does. It is nil for a plain program (StartCommand).
func (a *Actor) Channel() *ipc.Channel { return a.ch }

// StopRequested reports whether Stop has been called.
func (a *Actor) StopRequested() bool { return a.proc.stopRequested() }

// Done is closed when the actor has exited and everything its Actor owns
// has finished.
func (a *Actor) Done() <-chan struct{} { return a.done }

// Wait waits for the actor to exit. It returns nil if it exited with status
// 0, and an *ExitError otherwise. It may be called any number of times.
func (a *Actor) Wait() error {
	<-a.done
	if a.proc.exit.success() {
		return nil
	}
	return a.proc.exit
}

// Stop stops the actor, escalating as the Options say: a stop request over
// the protocol, GracePeriod, StopSignal to its process group, KillDelay,
// SIGKILL. It returns once the actor has exited and been reaped. If ctx
// ends first, Stop skips to SIGKILL, waits for the reap and returns
// ctx.Err(). It is safe to call more than once, concurrently, and after the
// actor has exited; an actor that has already exited is not signalled.
//
// The stop request names ipc.Canceller(ctx), if any, as the actor on whose
// behalf the actor's calls are cancelled; otherwise the calls name this
// process.
func (a *Actor) Stop(ctx context.Context) error {
	a.stopOnce.Do(func() {
		a.proc.markStopping()
		go a.escalate(ipc.Canceller(ctx))
	})
	select {
	case <-a.done:
		<-a.escalated
		return nil
	case <-ctx.Done():
		a.proc.signal(syscall.SIGKILL)
		<-a.done
		<-a.escalated
		return ctx.Err()
	}
}

// afterGrace is closed once d has passed; never for Forever.
func afterGrace(d time.Duration) <-chan time.Time {
	if d == Forever {
		return nil
	}
	return time.After(max(d, 0))
}

// escalate runs Stop's steps until the actor is gone, asking it to stop on
// behalf of by. Its lifetime is bounded by the actor's: it returns when the
// process has been reaped, and after the stop request has ended.
func (a *Actor) escalate(by protocol.ActorID) {
	defer close(a.escalated)
	select {
	case <-a.done:
		return
	default:
	}
	if a.ch == nil {
		// A plain program understands signals only.
		a.proc.terminate()
		return
	}
	asked := make(chan struct{})
	lost := make(chan struct{}) // the request cannot arrive: the channel is gone
	go func() {
		defer close(asked)
		ctx := context.Background()
		if a.grace != Forever {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.grace)
			defer cancel()
		}
		// The actor's own exit is the answer that counts; a channel
		// already lost (a heartbeat missed over a launcher's cut link,
		// say) means nobody hears the request, so the signals come at
		// once.
		if _, err := stopFunc.Call(ctx, a.ch, stopArgs{By: by}); errors.As(err, new(*ipc.PeerGoneError)) {
			close(lost)
		}
	}()
	defer func() { <-asked }()
	select {
	case <-a.done:
		return
	case <-lost:
	case <-afterGrace(a.grace):
	}
	a.proc.terminate()
}
