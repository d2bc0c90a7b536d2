package spawn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
)

// Peers (PROTOCOL.md §13.1): every actor process listens on a unix socket
// of its own, in a private directory, and its parent puts the socket's
// path in the actor's registry entry. Dial finds an actor by name and
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
		if treeSecret.value == "" {
			var b [32]byte
			rand.Read(b[:])
			treeSecret.value = hex.EncodeToString(b[:])
		}
	})
	return treeSecret.value
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

	mu    sync.Mutex
	chans map[*ipc.Channel]struct{}
	wg    sync.WaitGroup
}

func listenForPeers(self protocol.ActorID, funcs *ipc.Table, log hclog.Logger, base context.Context) (*peerListener, error) {
	ln, addr, dir, err := listenPeerSocket(self.UUID)
	if err != nil {
		return nil, err
	}
	l := &peerListener{dir: dir, addr: addr, ln: ln, funcs: funcs, self: self, log: log, base: base, chans: map[*ipc.Channel]struct{}{}}
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
	want := secretOfTree() + "\n"
	got := make([]byte, len(want))
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
		l.log.Warn("refused a peer connection without the tree's secret")
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), DefaultHandshakeTimeout)
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: l.self, Functions: l.funcs, Logger: l.log, BaseContext: l.base})
	cancel()
	if err != nil {
		l.log.Warn("a peer's handshake failed", "error", err)
		return
	}
	l.mu.Lock()
	if l.chans == nil { // closing
		l.mu.Unlock()
		ch.Close()
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

// close stops accepting, cancels what the peers' channels serve, closes
// them and waits for every goroutine it owns.
func (l *peerListener) close(ctx context.Context, by protocol.ActorID, reason error) {
	l.ln.Close()
	l.mu.Lock()
	chans := l.chans
	l.chans = nil
	l.mu.Unlock()
	for ch := range chans {
		ch.CancelServed(ctx, by, reason)
		ch.Close()
	}
	l.wg.Wait()
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// Dial opens a channel to the living actor of this tree named name (its
// full name or an alias), straight to its process: no hop in between.
// This side is the initiator and serves functions to it (nil: the runtime
// functions only). The caller closes the channel. The actor must run on
// this machine; an actor across a launcher, or the root, takes no peers.
func Dial(ctx context.Context, name string, functions *ipc.Table) (*ipc.Channel, error) {
	e, err := Find(ctx, name)
	if err != nil {
		return nil, err
	}
	return DialEntry(ctx, e, functions)
}

// DialEntry is Dial to an actor found already (Find, WaitFor, List).
func DialEntry(ctx context.Context, e Entry, functions *ipc.Table) (*ipc.Channel, error) {
	if e.Addr == "" {
		return nil, fmt.Errorf("spawn: actor %s takes no peer connections (the root, an actor across a launcher, or one in another language)", e.Name)
	}
	if host, _ := os.Hostname(); e.Host != host {
		return nil, fmt.Errorf("spawn: actor %s runs on %q, not on this machine; peers connect on one machine only", e.Name, e.Host)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", e.Addr)
	if err != nil {
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, err)
	}
	if _, err := io.WriteString(conn, secretOfTree()+"\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("spawn: connecting to actor %s: %w", e.Name, err)
	}
	self := rootID
	if ch, ok := ipc.ChannelFrom(ctx); ok {
		self = ch.Self()
	} else if up := parentChannel(); up != nil {
		self = up.Self()
	}
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: self, Initiator: true, Functions: functions})
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
