package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/spawn"
)

// Each child needs a Service value of its own (call Command or Actor once
// per child): the value tracks the process it runs, for Snapshot. Options
// without a Name take the child's, and without a Logger the supervisor's
// (Spec.Logger), so the name is written once and the output is not lost.

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
	if child, ok := ctx.Value(childKey{}).(childInfo); ok {
		if opts.Name == "" {
			opts.Name = child.name
		}
		if opts.Logger == nil {
			opts.Logger = child.log
		}
	}
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

// One try of a Ready check must end well before the next: a listener that
// accepts nothing (a full backlog, a firewall dropping packets) fails the
// try instead of holding the check.
const (
	readyTryTimeout  = time.Second     // TCPReady's connect
	httpReadyTimeout = 2 * time.Second // HTTPReady's connect, request and answer
)

// TCPReady is a Ready check: ready once addr accepts a TCP connection.
func TCPReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(ctx, readyTryTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// HTTPReady is a Ready check: ready once a GET of url (http://, no TLS)
// answers 2xx. It speaks just enough HTTP/1.1 for that, so that a program
// that supervises does not carry an HTTP client (for https, use
// CommandReady with curl -fsS).
func HTTPReady(rawURL string) func(context.Context) error {
	return func(ctx context.Context) error {
		u, err := url.Parse(rawURL)
		if err != nil {
			return err
		}
		if u.Scheme != "http" {
			return fmt.Errorf("HTTPReady: %s: only http:// URLs (for https, use a command check such as curl -fsS)", rawURL)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		ctx, cancel := context.WithTimeout(ctx, httpReadyTimeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return err
		}
		defer c.Close()
		if deadline, ok := ctx.Deadline(); ok {
			c.SetDeadline(deadline)
		}
		path := u.RequestURI()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: arbor\r\n\r\n", path, u.Host); err != nil {
			return err
		}
		status, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
		if err != nil {
			return fmt.Errorf("GET %s: %w", rawURL, err)
		}
		// "HTTP/1.1 200 OK"
		f := strings.Fields(status)
		if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
			return fmt.Errorf("GET %s: not an HTTP answer: %q", rawURL, status)
		}
		if len(f[1]) != 3 || f[1][0] != '2' {
			return fmt.Errorf("GET %s: %s", rawURL, strings.TrimSpace(strings.Join(f[1:], " ")))
		}
		return nil
	}
}

// CommandReady is a Ready check: ready once the program (run through
// spawn, so that it is contained like any child) exits 0.
func CommandReady(opts spawn.Options) func(context.Context) error {
	return func(ctx context.Context) error {
		a, err := spawn.StartCommand(ctx, opts)
		if err != nil {
			return err
		}
		select {
		case <-a.Done():
		case <-ctx.Done():
			a.Stop(context.WithoutCancel(ctx))
		}
		return a.Wait()
	}
}

// ActorReady is a Ready check for a child whose Service is svc, made by
// Actor: ready once a call of f on the running actor returns nil. f is
// the actor's own readiness function, which may block until it is ready.
func ActorReady(svc Service, f *ipc.Func[struct{}, struct{}]) func(context.Context) error {
	return func(ctx context.Context) error {
		p, ok := svc.(*process)
		if !ok {
			return errors.New("supervisor: ActorReady needs the Service Actor returned")
		}
		p.mu.Lock()
		a := p.cur
		p.mu.Unlock()
		if a == nil || a.Channel() == nil {
			return errors.New("the actor is not running")
		}
		_, err := f.Call(ctx, a.Channel(), struct{}{})
		return err
	}
}
