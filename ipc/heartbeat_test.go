package ipc

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
)

// link joins two conns and can be cut: after cut, what either side writes
// is lost and reads wait for Close, as on a network whose cable is pulled
// (no end of stream for either side).
type link struct {
	cut  chan struct{}
	once sync.Once
}

func newLink() *link { return &link{cut: make(chan struct{})} }

func (l *link) pull() { l.once.Do(func() { close(l.cut) }) }

func (l *link) wrap(c io.ReadWriteCloser) io.ReadWriteCloser {
	return &linked{ReadWriteCloser: c, l: l, closed: make(chan struct{})}
}

type linked struct {
	io.ReadWriteCloser
	l      *link
	once   sync.Once
	closed chan struct{}
}

func (c *linked) Read(b []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(b)
	select {
	case <-c.l.cut:
		<-c.closed // what crossed as the link went is lost too
		return 0, io.ErrClosedPipe
	default:
		return n, err
	}
}

func (c *linked) Write(b []byte) (int, error) {
	select {
	case <-c.l.cut:
		return len(b), nil // into the void
	default:
		return c.ReadWriteCloser.Write(b)
	}
}

func (c *linked) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.ReadWriteCloser.Close()
}

func heartbeatPair(t *testing.T, l *link, beat time.Duration) (parent, child *Channel) {
	tr := transport{"linked pipes", func(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
		a, b := pipePair(t)
		return l.wrap(a), l.wrap(b)
	}}
	return pair(t, tr, nil, nil, func(o *Options) { o.Heartbeat = beat })
}

// TestHeartbeatEndsACutChannel: with the link cut, neither side sees an end
// of stream; each ends its channel with a HeartbeatError instead.
func TestHeartbeatEndsACutChannel(t *testing.T) {
	l := newLink()
	parent, child := heartbeatPair(t, l, 20*time.Millisecond)
	if err := Ping(context.Background(), parent); err != nil {
		t.Fatal(err)
	}
	l.pull()
	for _, ch := range []*Channel{parent, child} {
		select {
		case <-ch.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a channel over a cut link did not end")
		}
		var gone *PeerGoneError
		var hb *HeartbeatError
		if err := ch.Err(); !errors.As(err, &gone) || !errors.As(err, &hb) || hb.Silence != 40*time.Millisecond {
			t.Errorf("the channel ended with %v, want a PeerGoneError for a lost heartbeat", err)
		}
	}
	// A call on the ended channel fails at once with the same error.
	if err := Ping(context.Background(), parent); !errors.As(err, new(*HeartbeatError)) {
		t.Errorf("a ping after the end returned %v", err)
	}
}

// TestHeartbeatKeepsAQuietChannel: an idle channel whose peer answers its
// pings stays up, heartbeat after heartbeat.
func TestHeartbeatKeepsAQuietChannel(t *testing.T) {
	parent, child := heartbeatPair(t, newLink(), 50*time.Millisecond)
	// 20 reads each way: at least ten beats, every one answered.
	proctest.Eventually(t, 20*time.Second, "twenty heartbeats", func() bool { return parent.heard.Load() >= 20 && child.heard.Load() >= 20 })
	if parent.Err() != nil || child.Err() != nil {
		t.Fatalf("a quiet channel ended: parent %v, child %v", parent.Err(), child.Err())
	}
}

// throttled writes in small pieces, slowly: a large frame takes many
// heartbeats to cross.
type throttled struct {
	io.ReadWriteCloser
	chunk int
	pause time.Duration
}

func (c *throttled) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		piece := b[:min(c.chunk, len(b))]
		m, err := c.ReadWriteCloser.Write(piece)
		n += m
		if err != nil {
			return n, err
		}
		b = b[m:]
		time.Sleep(c.pause)
	}
	return n, nil
}

// TestHeartbeatSparesASlowFrame: a result of 1 MiB that takes about ten
// heartbeats to arrive is life, not silence: every byte counts.
func TestHeartbeatSparesASlowFrame(t *testing.T) {
	const beat = 50 * time.Millisecond
	big := NewFunc("test.big", func(context.Context, int) (string, error) { return strings.Repeat("x", 1<<20), nil })
	tr := transport{"throttled pipes", func(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
		a, b := pipePair(t)
		// The child's writes: 16 KiB every 8 ms, 2 MB/s, about 0.5 s.
		return a, &throttled{ReadWriteCloser: b, chunk: 16 << 10, pause: 8 * time.Millisecond}
	}}
	parent, _ := pair(t, tr, MustNewTable(big), nil, func(o *Options) { o.Heartbeat = beat })
	got, err := big.Call(context.Background(), parent, 0)
	if err != nil || len(got) != 1<<20 {
		t.Fatalf("a slow 1 MiB result: %d bytes, %v", len(got), err)
	}
}
