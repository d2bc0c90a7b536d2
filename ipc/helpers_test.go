package ipc

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchPeerEnv); mode != "" {
		benchPeer(mode)
	}
	goleak.VerifyTestMain(m)
}

// transport makes a connected pair of byte streams.
type transport struct {
	name string
	pair func(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser)
}

var transports = []transport{
	{"socketpair", socketPair},
	{"pipes", pipePair},
}

func socketPair(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	conn := func(fd int) io.ReadWriteCloser {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// pipes joins the read end of one pipe and the write end of another.
type pipes struct {
	r *os.File
	w *os.File
}

func (p *pipes) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipes) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipes) Close() error {
	p.w.Close()
	return p.r.Close()
}

func pipePair(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return &pipes{r: r1, w: w2}, &pipes{r: r2, w: w1}
}

// pair opens a channel on each end of a transport: the "parent" initiates,
// the "child" serves funcs (and the parent serves parentFuncs).
func pair(t testing.TB, tr transport, childFuncs, parentFuncs *Table, tweak func(*Options)) (parent, child *Channel) {
	t.Helper()
	a, b := tr.pair(t)
	popts := Options{Actor: protocol.ActorID{Name: "parent", UUID: "uuid-parent"}, Initiator: true, Functions: parentFuncs}
	copts := Options{Actor: protocol.ActorID{Name: "child", UUID: "uuid-child"}, Functions: childFuncs}
	if tweak != nil {
		tweak(&popts)
		tweak(&copts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type result struct {
		ch  *Channel
		err error
	}
	done := make(chan result, 1)
	go func() {
		ch, err := Open(ctx, b, copts)
		done <- result{ch, err}
	}()
	parent, err := Open(ctx, a, popts)
	r := <-done
	if err != nil || r.err != nil {
		t.Fatalf("open: parent %v, child %v", err, r.err)
	}
	t.Cleanup(func() {
		parent.Close()
		r.ch.Close()
	})
	return parent, r.ch
}

var (
	within     = proctest.Within
	eventually = proctest.Eventually
)

// readCount opens s with n on ch, reads it to its end, and fails the test
// unless exactly n items came, each without an error.
func readCount(t testing.TB, s *Stream[int, int], ch *Channel, n int) {
	t.Helper()
	r, err := s.Open(context.Background(), ch, n)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, err := range r.All() {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != n {
		t.Fatalf("%d items, want %d", got, n)
	}
}
