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
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-go/arbor/internal/peercred"
	"github.com/hashicorp/go-hclog"
)

// parentTransport is the parent's end of a transport while a child starts.
type parentTransport interface {
	// childFiles gives the child its end of the channel with its files.
	childFiles
	// connect returns the parent's end of the channel to the child pid.
	connect(ctx context.Context, log hclog.Logger, pid int, exited <-chan struct{}) (io.ReadWriteCloser, error)
	// abort closes the parent's end of the channel, when it will never be
	// handed to a Channel (which closes it otherwise).
	abort()
	// cleanup releases what the transport holds once the start is over.
	cleanup()
}

func newParentTransport(t Transport, sp *spec) (parentTransport, error) {
	switch t {
	case Socketpair:
		return &inheritedTransport{socket: true}, nil
	case Pipes:
		return &inheritedTransport{}, nil
	case Stdio:
		return &stdioTransport{}, nil
	case UnixSocket:
		return newUnixTransport(sp)
	}
	return nil, fmt.Errorf("unknown transport %v", t)
}

// inheritedTransport hands the child a socketpair end as fd 3, or two pipe
// ends as fds 3 and 4.
type inheritedTransport struct {
	socket     bool
	parentEnd  io.ReadWriteCloser
	childEnds  []*os.File
	outWriters []*os.File
}

func (t *inheritedTransport) attach(cmd *exec.Cmd) (map[string]io.ReadCloser, error) {
	if t.socket {
		p, c, err := socketpair()
		if err != nil {
			return nil, err
		}
		conn, err := net.FileConn(p)
		p.Close()
		if err != nil {
			c.Close()
			return nil, err
		}
		t.parentEnd, t.childEnds = conn, []*os.File{c}
	} else {
		toChild, fromParent, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		fromChild, toParent, err := os.Pipe()
		if err != nil {
			toChild.Close()
			fromParent.Close()
			return nil, err
		}
		t.parentEnd = &pipeConn{r: fromChild, w: fromParent}
		t.childEnds = []*os.File{toChild, toParent}
	}
	cmd.ExtraFiles = t.childEnds
	outputs, writers, err := outputPipes(cmd, "stdout", "stderr")
	t.outWriters = writers
	return outputs, err
}

func (t *inheritedTransport) closeChildEnds() {
	for _, f := range append(t.childEnds, t.outWriters...) {
		f.Close()
	}
}

func (t *inheritedTransport) connect(context.Context, hclog.Logger, int, <-chan struct{}) (io.ReadWriteCloser, error) {
	return t.parentEnd, nil
}

func (t *inheritedTransport) abort() {
	if t.parentEnd != nil {
		t.parentEnd.Close()
	}
}

func (t *inheritedTransport) cleanup() {}

// stdioTransport speaks over the child's stdin and stdout.
type stdioTransport struct {
	stdin      *os.File // the parent's end of the child's stdin
	stdout     *os.File
	childEnds  []*os.File
	outWriters []*os.File
}

func (t *stdioTransport) attach(cmd *exec.Cmd) (map[string]io.ReadCloser, error) {
	childIn, parentIn, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	parentOut, childOut, err := os.Pipe()
	if err != nil {
		childIn.Close()
		parentIn.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout = childIn, childOut
	t.stdin, t.stdout = parentIn, parentOut
	t.childEnds = []*os.File{childIn, childOut}
	outputs, writers, err := outputPipes(cmd, "stderr")
	t.outWriters = writers
	return outputs, err
}

func (t *stdioTransport) closeChildEnds() {
	for _, f := range append(t.childEnds, t.outWriters...) {
		f.Close()
	}
}

func (t *stdioTransport) connect(context.Context, hclog.Logger, int, <-chan struct{}) (io.ReadWriteCloser, error) {
	return &pipeConn{r: t.stdout, w: t.stdin}, nil
}

func (t *stdioTransport) abort() {
	for _, f := range []*os.File{t.stdin, t.stdout} {
		if f != nil {
			f.Close()
		}
	}
}

func (t *stdioTransport) cleanup() {}

// unixTransport listens on a socket file in a private directory.
type unixTransport struct {
	dir        string
	ln         *net.UnixListener
	secret     string
	outWriters []*os.File
}

func newUnixTransport(sp *spec) (*unixTransport, error) {
	dir, err := os.MkdirTemp("", "arbor-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	path := filepath.Join(dir, "actor.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	var secret [32]byte
	rand.Read(secret[:])
	t := &unixTransport{dir: dir, ln: ln, secret: hex.EncodeToString(secret[:])}
	sp.Addr, sp.Secret = path, t.secret
	return t, nil
}

func (t *unixTransport) attach(cmd *exec.Cmd) (map[string]io.ReadCloser, error) {
	outputs, writers, err := outputPipes(cmd, "stdout", "stderr")
	t.outWriters = writers
	return outputs, err
}

func (t *unixTransport) closeChildEnds() {
	for _, f := range t.outWriters {
		f.Close()
	}
}

// connect accepts connections until one presents the secret and, where the
// kernel tells who connected (Linux), comes from the child itself. Others
// are refused and logged; they do not disturb the actor. The pid check
// matters because the secret is in the child's environment, which other
// processes of the same user can read.
func (t *unixTransport) connect(ctx context.Context, log hclog.Logger, pid int, exited <-chan struct{}) (io.ReadWriteCloser, error) {
	stop := context.AfterFunc(ctx, func() { t.ln.Close() })
	defer stop()
	go func() {
		// A child that exits without connecting must not leave Accept
		// waiting for the whole handshake timeout.
		select {
		case <-exited:
			t.ln.Close()
		case <-ctx.Done():
		}
	}()
	g := &gate{
		ln:          t.ln,
		want:        []byte(t.secret + "\n"),
		log:         log,
		pid:         pid,
		results:     make(chan presented),
		done:        make(chan struct{}),
		acceptEnded: make(chan struct{}),
		pending:     map[*net.UnixConn]bool{},
	}
	go g.accept()
	winner := g.await()
	g.close()
	if winner != nil {
		return winner, nil
	}
	return nil, g.failure(ctx)
}

// gate is one connect's accept loop and the secret checks of what it
// accepts. Connections are accepted on one goroutine and their secrets
// read on one goroutine each, so that connections that send nothing cannot
// hold up the child's own: each gets secretWait, all at once. close waits
// for all of them.
type gate struct {
	ln   *net.UnixListener
	want []byte // the secret and its newline
	log  hclog.Logger
	pid  int // the child's

	results     chan presented // connections whose secret has been read
	done        chan struct{}  // closed once connect has its answer
	acceptEnded chan struct{}  // closed when the accept loop has ended, acceptErr set
	acceptErr   error
	readers     sync.WaitGroup // the goroutines reading secrets

	wrongPID, wrongSecret atomic.Int32

	pendingMu sync.Mutex
	pending   map[*net.UnixConn]bool // connections whose secret is being read
}

// presented is a connection whose secret has been read: ok if it was the
// right one.
type presented struct {
	conn *net.UnixConn
	ok   bool
}

// accept accepts connections until the listener is closed, refuses those
// from another process than the child and starts a check of the others.
func (g *gate) accept() {
	for {
		conn, err := g.ln.AcceptUnix()
		if err != nil {
			g.acceptErr = err
			close(g.acceptEnded)
			return
		}
		if peer, _, known := peercred.Of(conn); known && peer != g.pid {
			g.wrongPID.Add(1)
			g.log.Warn("refused a connection to the actor's socket: it does not come from the actor's process",
				"path", g.ln.Addr().String(), "peer_pid", peer, "actor_pid", g.pid)
			conn.Close()
			continue
		}
		g.readers.Add(1)
		g.pendingMu.Lock()
		g.pending[conn] = true
		g.pendingMu.Unlock()
		go g.check(conn)
	}
}

// check reads conn's secret within secretWait and hands conn to await, or
// closes it once connect has its answer.
func (g *gate) check(conn *net.UnixConn) {
	defer g.readers.Done()
	// Read exactly the secret's length: the Hello follows at once, and a
	// buffered reader would swallow its first bytes.
	got := make([]byte, len(g.want))
	conn.SetReadDeadline(time.Now().Add(secretWait))
	_, err := io.ReadFull(conn, got)
	conn.SetReadDeadline(time.Time{})
	ok := err == nil && subtle.ConstantTimeCompare(got, g.want) == 1
	g.pendingMu.Lock()
	delete(g.pending, conn)
	g.pendingMu.Unlock()
	select {
	case <-g.done: // cut short: the child has connected, or given up
	default:
		if !ok {
			g.wrongSecret.Add(1)
			g.log.Warn("refused a connection to the actor's socket: wrong or missing secret", "path", g.ln.Addr().String())
		}
	}
	select {
	case g.results <- presented{conn, ok}:
	case <-g.done:
		conn.Close()
	}
}

// await returns the first connection that presents the secret, or nil
// when the accept loop ends first: the handshake's time is up, or the
// child exited.
func (g *gate) await() *net.UnixConn {
	for {
		select {
		case r := <-g.results:
			if r.ok {
				return r.conn
			}
			r.conn.Close()
		case <-g.acceptEnded:
			return nil
		}
	}
}

// close ends the accept loop and the checks still reading, and waits for
// them. Whatever the checks had left for await they close themselves.
func (g *gate) close() {
	close(g.done)
	g.ln.Close() // ends the accept loop
	<-g.acceptEnded
	g.pendingMu.Lock()
	for c := range g.pending {
		c.SetReadDeadline(time.Now()) // the readers still waiting stop now
	}
	g.pendingMu.Unlock()
	g.readers.Wait()
}

// failure says why no connection was let through, once close has
// returned.
func (g *gate) failure(ctx context.Context) error {
	refused := ""
	if n, m := g.wrongPID.Load(), g.wrongSecret.Load(); n+m > 0 {
		refused = fmt.Sprintf(" (refused %d connections from other processes and %d with a wrong or missing secret)", n, m)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("the child did not connect with its secret in time%s: %w", refused, ctx.Err())
	}
	return fmt.Errorf("waiting for the child to connect%s: %w", refused, g.acceptErr)
}

// secretWait bounds how long a connection to an actor's socket may take to
// present the secret.
const secretWait = time.Second

func (t *unixTransport) abort() {} // connect hands over the one connection it accepts

func (t *unixTransport) cleanup() {
	t.ln.Close()
	os.RemoveAll(t.dir)
}

// pipeConn joins a read end and a write end into one connection.
type pipeConn struct {
	r *os.File
	w *os.File
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) SetWriteDeadline(t time.Time) error {
	return p.w.SetWriteDeadline(t)
}
func (p *pipeConn) Close() error {
	werr := p.w.Close()
	if rerr := p.r.Close(); rerr != nil {
		return rerr
	}
	return werr
}
