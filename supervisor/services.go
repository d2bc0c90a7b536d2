package supervisor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/spawn"
)

// Each child needs a Service value of its own (call Command or Actor once
// per child): the value tracks the process it runs, for Snapshot.

// Command returns a Service that runs a plain program (spawn.StartCommand)
// until it exits: exit status 0 is a normal exit, and any status in
// normal is treated as one too (for Transient children). When the
// supervisor stops it, it gets opts.StopSignal and, after the child's
// Shutdown, SIGKILL.
func Command(opts spawn.Options, normal ...int) Service {
	return &process{opts: opts, normal: normal, command: true}
}

// Actor returns a Service that starts an actor process, runs f in it with
// args until f returns, and stops the actor: f's error is the child's exit.
func Actor[A, R any](f *ipc.Func[A, R], args A, opts spawn.Options) Service {
	return &process{opts: opts, run: func(ctx context.Context, a *spawn.Actor) error {
		_, err := f.Call(ctx, a.Channel(), args)
		return err
	}}
}

// process runs one program or actor at a time.
type process struct {
	opts    spawn.Options
	normal  []int
	command bool
	run     func(context.Context, *spawn.Actor) error

	mu  sync.Mutex
	cur *spawn.Actor
}

func (p *process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.PID()
}

func (p *process) Serve(ctx context.Context) error {
	shutdown := shutdownOf(ctx)
	opts := p.opts
	// The child's Shutdown sets the stop escalation unless the options
	// set it themselves: a plain program gets its stop signal and then
	// Shutdown to exit; an actor gets two thirds of it to stop on request
	// and the rest after its stop signal.
	if opts.GracePeriod == 0 && opts.KillDelay == 0 {
		switch {
		case shutdown == BrutalKill:
			opts.GracePeriod, opts.KillDelay = time.Nanosecond, time.Nanosecond
		case shutdown == Infinity:
			opts.GracePeriod, opts.KillDelay = spawn.Forever, spawn.Forever
		case p.command:
			opts.GracePeriod = shutdown
		default:
			opts.GracePeriod, opts.KillDelay = shutdown*2/3, shutdown/3
		}
	}
	var a *spawn.Actor
	var err error
	if p.command {
		a, err = spawn.StartCommand(ctx, opts)
	} else {
		a, err = spawn.Start(ctx, opts)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cur = a
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cur = nil
		p.mu.Unlock()
	}()

	runErr := make(chan error, 1)
	pending := p.run != nil // a call in flight, owned here until it returns
	if pending {
		go func() { runErr <- p.run(ctx, a) }()
	}
	select {
	case <-a.Done():
		err = a.Wait()
	case err = <-runErr:
		pending = false
		a.Stop(context.WithoutCancel(ctx))
		if err == nil {
			err = a.Wait()
		}
	case <-ctx.Done():
		a.Stop(context.WithoutCancel(ctx)) // the escalation above bounds it
		err = nil
	}
	if pending {
		<-runErr // the call ends with the actor's channel
	}
	if p.isNormal(err) {
		return nil
	}
	return err
}

func (p *process) isNormal(err error) bool {
	if err == nil {
		return true
	}
	var exit *spawn.ExitError
	if errors.As(err, &exit) && exit.Signal == 0 {
		for _, code := range p.normal {
			if exit.Code == code {
				return true
			}
		}
	}
	return false
}
