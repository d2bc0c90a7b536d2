package spawn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/arbor-go/arbor/internal/peercred"
	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// Peers (PROTOCOL.md §13.1): every actor process listens on a unix socket
// of its own (abstract on Linux, a file in a private directory elsewhere),
// and its parent puts the socket's address in the actor's registry entry. Dial finds an actor by name and
// connects to it directly, presenting the tree's secret, which the root
// made and every spec carries down; the two then speak the protocol on a
// channel of their own, as a parent and a child do, and either can call
// the other.

// treeSecret is this tree's: made by the root, or read from the spec.
var treeSecret struct {
	once  sync.Once
	value string
}

func secretOfTree() string {
	treeSecret.once.Do(func() {
		var b [32]byte
		rand.Read(b[:])
		treeSecret.value = hex.EncodeToString(b[:])
	})
	return treeSecret.value
}

// adoptSecret makes given this process's tree secret, before anything
// reads it; an empty one (a parent that sends none) leaves it to be made.
func adoptSecret(given string) {
	if given != "" {
		treeSecret.once.Do(func() { treeSecret.value = given })
	}
}

// peerDirPrefix names the private directories of peer sockets.
const peerDirPrefix = "arbor-peer-"

// peerAddrFunc is what a parent asks its new child, before it registers
// it: where its peer socket is.
var peerAddrFunc = ipc.NewFunc[struct{}, string]("arbor.peer_addr", nil)

// peerListener is an actor process's peer socket and the channels opened
// on it, which it owns: close ends them all and waits for them.
type peerListener struct {
	dir, addr string // dir: the socket's private directory, where it has one
	ln        *net.UnixListener
	funcs     *ipc.Table
	self      protocol.ActorID
	log       hclog.Logger
	base      context.Context // the values of served calls' ctx: the actor's logger, its stop

	mu      sync.Mutex
	chans   map[*ipc.Channel]struct{}
	pending map[*net.UnixConn]struct{} // connections before their handshake is done
	wg      sync.WaitGroup
}

func listenForPeers(self protocol.ActorID, funcs *ipc.Table, log hclog.Logger, base context.Context) (*peerListener, error) {
	ln, addr, dir, err := listenPeerSocket(self.UUID)
	if err != nil {
		return nil, err
	}
	l := &peerListener{dir: dir, addr: addr, ln: ln, funcs: funcs, self: self, log: log, base: base,
		chans: map[*ipc.Channel]struct{}{}, pending: map[*net.UnixConn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *peerListener) accept() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(conn)
		}()
	}
}

// serve checks a connection's secret, then serves this actor's functions
// on it until either side closes it.
func (l *peerListener) serve(conn *net.UnixConn) {
	l.mu.Lock()
	if l.chans == nil { // closing
		l.mu.Unlock()
		conn.Close()
		return
	}
	l.pending[conn] = struct{}{}
	l.mu.Unlock()
	ch, err := l.admit(conn)
	l.mu.Lock()
	delete(l.pending, conn)
	if err == nil && l.chans == nil { // closing meanwhile
		ch.Close()
		err = errors.New("closing")
	}
	if err != nil {
		l.mu.Unlock()
		return
	}
	l.chans[ch] = struct{}{}
	l.mu.Unlock()
	<-ch.Done()
	l.mu.Lock()
	delete(l.chans, ch)
	l.mu.Unlock()
	ch.Close()
}

// admit checks a connection: a process of this user's (where the system
// says), then the tree's secret within a second, then the handshake. It
// closes a connection it refuses.
func (l *peerListener) admit(conn *net.UnixConn) (*ipc.Channel, error) {
	if _, uid, ok := peercred.Of(conn); ok && uid != os.Getuid() {
		conn.Close()
		return nil, errors.New("another user's process")
	}
	want := secretOfTree() + "\n"
	got := make([]byte, len(want))
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
		l.log.Debug("refused a peer connection without the tree's secret")
		conn.Close()
		return nil, errors.New("no secret")
	}
	conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), DefaultHandshakeTimeout)
	defer cancel()
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: l.self, Functions: l.funcs, Logger: l.log, BaseContext: l.base})
	if err != nil {
		l.log.Warn("a peer's handshake failed", "error", err)
	}
	return ch, err
}

// close stops accepting, closes the connections not yet admitted, cancels
// what the peers' channels serve and closes them (unless their calls
// ignore the cancellation past ctx: with the parent gone nobody waits for
// those), and waits, at most until ctx ends, for the goroutines it owns.
func (l *peerListener) close(ctx context.Context, by protocol.ActorID, reason error) {
	l.ln.Close()
	l.mu.Lock()
	chans := l.chans
	l.chans = nil
	for conn := range l.pending {
		conn.Close()
	}
	l.mu.Unlock()
	for ch := range chans {
		if ch.CancelServed(ctx, by, reason) == nil {
			ch.Close()
		}
	}
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// Dial opens a channel to the living actor of this tree named name (its
// full name or an alias). On one machine it connects to the actor's
// process directly, with no hop in between; where that cannot reach it
// (an actor across a launcher, on another host or in another network
// namespace) it goes through the tree, relayed by the actors between the
// two (PROTOCOL.md §13.3), and the relay path of the errors that come back
// names them. Either way the channel works as one to a child does. This
// side is the initiator and serves functions to the actor (nil: the
// runtime functions only). The caller closes the channel. The root takes
// no connections.
func Dial(ctx context.Context, name string, functions *ipc.Table) (*ipc.Channel, error) {
	e, err := Find(ctx, name)
	if err != nil {
		return nil, err
	}
	return DialEntry(ctx, e, functions)
}

// DialEntry is Dial to an actor found already (Find, WaitFor, List).
func DialEntry(ctx context.Context, e Entry, functions *ipc.Table) (*ipc.Channel, error) {
	if e.Parent == "" {
		return nil, fmt.Errorf("spawn: %s is the root of the tree, which takes no peer connections", e.Name)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultHandshakeTimeout)
		defer cancel()
	}
	if host, _ := os.Hostname(); e.Addr != "" && e.Host == host {
		ch, err := dialDirect(ctx, e, functions)
		if !errors.Is(err, errUnreachable) {
			return ch, err
		}
		// Another network namespace (an abstract socket is local to
		// one): through the tree.
	}
	return dialRelay(ctx, e, functions)
}

// errUnreachable marks a peer socket that could not be connected to (none
// in this network namespace, or a refusal): the tree may still reach it.
var errUnreachable = errors.New("the peer socket cannot be reached from here")

// dialDirect connects to the actor's peer socket.
func dialDirect(ctx context.Context, e Entry, functions *ipc.Table) (*ipc.Channel, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", e.Addr)
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", errUnreachable, err)
		}
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, err)
	}
	// The secret goes only to the process the registry names: another
	// could have taken an address whose actor has just died.
	if pid, _, ok := peercred.Of(conn); ok && pid != e.PID {
		conn.Close()
		return nil, fmt.Errorf("spawn: the socket of actor %s is held by pid %d, not by the actor (pid %d)", e.Name, pid, e.PID)
	}
	if _, err := io.WriteString(conn, secretOfTree()+"\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, err)
	}
	self := actingAs(ctx)
	// The calls the peer makes on it run with the values of ctx (the
	// dialing actor's logger, its registry of the actors it starts).
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: self, Initiator: true, Functions: functions, BaseContext: ctx})
	if err != nil {
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, err)
	}
	if ch.Peer().UUID != e.UUID {
		ch.Close()
		return nil, fmt.Errorf("spawn: the peer at %s is %s, not %s (%s)", e.Addr, ch.Peer(), e.Name, e.UUID)
	}
	return ch, nil
}

// StopActor asks the actor of this tree named name to stop, as its parent's
// stop request does: it cancels what it serves, on behalf of the caller,
// so that every call to it ends with an error naming this actor as the
// canceller; then it exits, and its parent sees it end. It returns once
// the actor has taken the request, not when it has exited.
func StopActor(ctx context.Context, name string) error {
	ch, err := Dial(ctx, name, nil)
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = stopFunc.Call(ctx, ch, stopArgs{By: ch.Self()})
	return err
}
