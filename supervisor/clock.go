package supervisor

import "time"

// clock is where a supervisor reads the time and sets its timers: the
// backoffs, the restart intensity's period, the wait before StopTimedOut,
// the Ready intervals and Snapshot's uptimes. It is the real clock unless
// a test substitutes a fake, so that tests move time on themselves instead
// of sleeping through it.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
}

// timer is a clock's one-shot timer: C delivers once when it fires, Stop
// reports whether it stopped it first, as with time.Timer.
type timer interface {
	C() <-chan time.Time
	Stop() bool
}

// realClock is the time package's clock.
type realClock struct{}

var _ clock = realClock{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }

func (r realTimer) Stop() bool { return r.t.Stop() }
