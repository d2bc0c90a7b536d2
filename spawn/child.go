package spawn

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
)

// stopFunc is the runtime function a parent calls to stop its child
// gracefully. The child answers at once and then stops.
var stopFunc = ipc.NewFunc("arbor.stop", func(ctx context.Context, a stopArgs) (any, error) {
	if stop, ok := ctx.Value(stopKey{}).(chan<- protocol.ActorID); ok {
		select {
		case stop <- a.By:
		default: // already stopping
		}
	}
	return nil, nil
})

// stopArgs are arbor.stop's arguments (PROTOCOL.md §9): by, when the parent
// stops the child on behalf of an actor further up, names it as the
// canceller of the calls the child serves. A 1.1 parent sends nil.
type stopArgs struct {
	By protocol.ActorID `msgpack:"by,omitempty"`
}

type stopKey struct{}
type loggerKey struct{}
type registryKey struct{}

// registry holds the actors an actor process started from the calls it
// serves, so that stopping the actor stops them too, after its calls.
type registry struct {
	mu     sync.Mutex
	actors map[*Actor]struct{}
}

func (r *registry) add(a *Actor) {
	r.mu.Lock()
	r.actors[a] = struct{}{}
	r.mu.Unlock()
}

func (r *registry) remove(a *Actor) {
	r.mu.Lock()
	delete(r.actors, a)
	r.mu.Unlock()
}

// stopAll stops every registered actor, all at once, and waits for them.
func (r *registry) stopAll(ctx context.Context) {
	r.mu.Lock()
	actors := make([]*Actor, 0, len(r.actors))
	for a := range r.actors {
		actors = append(actors, a)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Stop(ctx)
		}()
	}
	wg.Wait()
}

// Logger returns the logger of the actor a served function runs in: its
// lines reach the parent's logger with their level and fields. Outside an
// actor it returns a logger that discards everything.
func Logger(ctx context.Context) hclog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(hclog.Logger); ok {
		return l
	}
	return hclog.NewNullLogger()
}

// lifelineGrace bounds how long an actor whose parent has gone spends
// stopping what it runs before it exits anyway.
const lifelineGrace = 900 * time.Millisecond

// Main runs this process as an actor if its parent started it as one, and
// otherwise returns at once. Call it at the top of main in every binary
// that serves actors, with the functions the actor serves:
//
//	func main() {
//		spawn.Main(functions)
//		// the program's own main, for a normal run
//	}
//
// As an actor, Main serves functions to its parent until the parent asks it
// to stop, sends it SIGTERM or SIGINT, or goes away; it then cancels the
// calls it is serving, waits for them to return, and exits the process
// with status 0. It never returns. If the actor cannot start, it prints why
// to stderr and exits with status 2.
func Main(functions *ipc.Table) {
	sp, isChild, err := childSpec()
	if !isChild {
		return
	}
	if err == nil {
		err = runChild(sp, functions)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "arbor actor: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func runChild(sp *spec, functions *ipc.Table) error {
	credential := os.Getenv(credentialEnv)
	for _, name := range []string{specEnv, connectEnv, credentialEnv} {
		os.Unsetenv(name) // programs this actor runs are not actors unless it spawns them
	}
	sp.credential = credential
	logger := actorLogger(sp)

	// SIGTERM and SIGINT stop the actor like a stop request. A terminal's
	// Ctrl-C does not reach it (it has a process group of its own), so a
	// signal comes from its parent or from someone who means it.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)

	conn, err := childConn(sp)
	if err != nil {
		return fmt.Errorf("connecting to the parent over %s: %w", sp.Transport, err)
	}
	stop := make(chan protocol.ActorID, 1)
	// Peers connect to this process's own socket (Dial); it is made
	// before the handshake, so that the parent's first question, where
	// it is, has an answer.
	var peers *peerListener
	defer func() {
		if peers != nil && peers.dir != "" {
			os.RemoveAll(peers.dir) // whichever way it exits, no socket is left behind
		}
	}()
	openPeers := func(base context.Context) {
		adoptSecret(sp.PeerSecret)
		// Peers may call the actor's functions, and stop it (StopActor),
		// on its socket or through a relay.
		peerFuncs, err := functions.WithRuntime(stopFunc)
		if err != nil {
			return // the table below fails the same way, and says so
		}
		serveRelays(peerFuncs, base, logger)
		if sp.fromHello {
			return // across a launcher: no peer could reach the socket, and every local user could
		}
		if peers, err = listenForPeers(sp.Actor, peerFuncs, logger, base); err != nil {
			logger.Warn("this actor takes no peers: its socket could not be made", "error", err)
		}
	}
	table, err := functions.WithRuntime(stopFunc, relayHandler, peerAddrFunc.Implement(func(context.Context, struct{}) (string, error) {
		if peers == nil {
			return "", nil
		}
		return peers.addr, nil
	}))
	if err != nil {
		conn.Close()
		return err
	}
	started := &registry{actors: map[*Actor]struct{}{}}
	base := context.WithValue(context.Background(), loggerKey{}, logger)
	base = context.WithValue(base, stopKey{}, (chan<- protocol.ActorID)(stop))
	base = context.WithValue(base, registryKey{}, started)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultHandshakeTimeout)
	opts := ipc.Options{Actor: sp.Actor, Functions: table, Logger: logger, BaseContext: base, Heartbeat: sp.heartbeat()}
	if sp.fromHello {
		opts.SpecFromHello = func(raw protocol.Raw, o *ipc.Options) error {
			if err := msgpack.Unmarshal(raw, sp); err != nil {
				return fmt.Errorf("not a spec: %w", err)
			}
			logger = actorLogger(sp)
			o.Actor, o.Logger, o.Heartbeat = sp.Actor, logger, sp.heartbeat()
			o.BaseContext = context.WithValue(base, loggerKey{}, logger)
			openPeers(o.BaseContext)
			return nil
		}
	} else {
		openPeers(base)
	}
	// A call served as soon as the channel opens may ask the registry:
	// until the channel is known, parentChannel waits for it, so that
	// this process never answers as if it were the root.
	upstream.mu.Lock()
	upstream.ready = make(chan struct{})
	upstream.mu.Unlock()
	ch, err := ipc.Open(ctx, conn, opts)
	cancel()
	if err != nil {
		return err
	}
	upstream.mu.Lock()
	upstream.ch = ch // the registry's calls go up this channel
	close(upstream.ready)
	upstream.mu.Unlock()

	serveUntilStopped(ch, sp, stop, signals, peers, started, logger)
	return nil
}

// serveUntilStopped serves until a stop request, a signal or the parent's
// end, then stops in order: the calls the parent's channel serves, those
// of peers' channels, the actors this one started; then it closes the
// channel. A second signal, or served calls that ignore their cancellation
// once the parent is gone, cut that short.
func serveUntilStopped(ch *ipc.Channel, sp *spec, stop <-chan protocol.ActorID, signals <-chan os.Signal, peers *peerListener, started *registry, logger hclog.Logger) {
	// The reasons wrap context.Canceled: the calls being served see a
	// cancellation, and report it as one, naming who asked.
	var reason error
	by := ch.Peer()
	grace := time.Duration(0) // no bound: a stop request is answered by stopping in good order
	select {
	case onBehalf := <-stop:
		reason = fmt.Errorf("actor stopped by its parent: %w", context.Canceled)
		if !onBehalf.IsZero() {
			by = onBehalf
			if onBehalf.UUID != ch.Peer().UUID && !isAncestorName(onBehalf.Name, sp.Actor.Name) {
				reason = fmt.Errorf("actor stopped by %s: %w", onBehalf.Name, context.Canceled) // a peer (StopActor)
			}
		}
	case sig := <-signals:
		reason = fmt.Errorf("actor received %v: %w", sig, context.Canceled)
		by = sp.Actor
	case <-ch.Done():
		reason = fmt.Errorf("actor's parent went away (%v): %w", ch.Err(), context.Canceled)
		grace = lifelineGrace
	}
	logger.Debug("stopping", "reason", reason)
	drainCtx := context.Background()
	if grace > 0 {
		var cancel context.CancelFunc
		drainCtx, cancel = context.WithTimeout(drainCtx, grace)
		defer cancel()
	}
	drained := make(chan error, 1)
	go func() {
		// The relays that end here first: their answers go back
		// through calls the parent's channel serves. Relays through
		// here to the actors below go on until those have stopped
		// and answered, and close with the channel.
		closeRelays(drainCtx, by, reason)
		err := ch.CancelServed(drainCtx, by, reason, relayFunc.Name())
		if err == nil {
			// What peers' channels serve is cancelled too, then the
			// actors this one started and still holds stop, before it
			// goes.
			if peers != nil {
				peers.close(drainCtx, by, reason)
			}
			started.stopAll(drainCtx)
		}
		drained <- err
	}()
	select {
	case err := <-drained:
		if err == nil {
			ch.Close()
		}
		// Otherwise served calls ignored cancellation and would hold the
		// exit forever; with the parent gone, nobody is left to wait.
	case <-signals:
		// A signal while stopping means now: the parent's grace period
		// is over.
	}
}

// actorLogger is the logger an actor's code logs with: hclog JSON lines on
// stderr, which the parent forwards, at the spec's level.
func actorLogger(sp *spec) hclog.Logger {
	level := hclog.LevelFromString(sp.LogLevel)
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: sp.Actor.Name, Level: level, JSONFormat: true, Output: os.Stderr})
}

// inherited wraps an inherited descriptor as a pollable file, so that
// closing it interrupts a read in progress, and keeps it from the programs
// this actor runs.
func inherited(fd int, name string) *os.File {
	syscall.SetNonblock(fd, true)
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), name)
}

// childConn opens the child's end of the transport its spec names.
func childConn(sp *spec) (io.ReadWriteCloser, error) {
	switch sp.Transport {
	case Socketpair.String():
		f := os.NewFile(3, "arbor-socket")
		conn, err := net.FileConn(f)
		f.Close()
		return conn, err
	case Pipes.String():
		return &pipeConn{r: inherited(3, "arbor-in"), w: inherited(4, "arbor-out")}, nil
	case Stdio.String():
		in, out, err := takeStdio()
		if err != nil {
			return nil, err
		}
		return &pipeConn{r: in, w: out}, nil
	case "connect": // dial-in (PROTOCOL.md §13.2)
		if sp.credential == "" {
			return nil, fmt.Errorf("%s is set but %s is not: a dial-in needs its credential", connectEnv, credentialEnv)
		}
		return dialIn(sp.Addr, sp.credential)
	case UnixSocket.String():
		conn, err := net.DialTimeout("unix", sp.Addr, DefaultHandshakeTimeout)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(conn, sp.Secret+"\n"); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return nil, fmt.Errorf("unknown transport %q", sp.Transport)
}
