package supervisor

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when the test advances it. A timer
// of zero or less fires at once, as a real one does.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	armed   chan struct{} // signalled, without blocking, whenever a timer is set
}

var _ clock = (*fakeClock)(nil)

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan struct{}, 1)}
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	c     chan time.Time // buffered: firing never blocks
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.pending = append(c.pending, t)
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, p := range c.pending {
		if p == t {
			c.pending = append(c.pending[:k], c.pending[k+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock on by d and fires the timers due by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.pending[:0]
	for _, t := range c.pending {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.pending = kept
}

// untilNext returns how long until the earliest pending timer fires, and
// false if none is pending.
func (c *fakeClock) untilNext() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return 0, false
	}
	next := c.pending[0].at
	for _, t := range c.pending[1:] {
		if t.at.Before(next) {
			next = t.at
		}
	}
	return next.Sub(c.now), true
}

// awaitTimer waits, up to 10s, until a timer is pending, and returns how
// long until the earliest fires; or until enough returns true, and then
// returns false.
func (c *fakeClock) awaitTimer(t *testing.T, what string, enough func() bool) (time.Duration, bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond) // for enough, which has no signal of its own
	defer poll.Stop()
	for {
		if d, ok := c.untilNext(); ok {
			return d, true
		}
		if enough != nil && enough() {
			return 0, false
		}
		select {
		case <-c.armed:
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("no timer set within 10s, waiting for %s", what)
		}
	}
}

// The fake clock fires a timer when it has been advanced past it, not
// before, and not once stopped.
func TestFakeClock(t *testing.T) {
	c := newFakeClock()
	start := c.Now()
	a, b := c.NewTimer(time.Second), c.NewTimer(2*time.Second)
	if d, ok := c.untilNext(); !ok || d != time.Second {
		t.Fatalf("untilNext %v %v", d, ok)
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-a.C():
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Millisecond)
	if got := <-a.C(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("fired at %v", got)
	}
	if a.Stop() || !b.Stop() {
		t.Fatal("Stop reports the wrong thing")
	}
	c.Advance(time.Hour)
	select {
	case <-b.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	<-c.NewTimer(0).C()
}
