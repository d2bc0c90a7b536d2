package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/spawn"
)

// fnService is a Service made of a function.
type fnService func(ctx context.Context) error

func (f fnService) Serve(ctx context.Context) error { return f(ctx) }

// Regression tests for failure paths found in review.

// When Serve's ctx ends, each child is cancelled only after the children
// started after it have stopped.
func TestChildrenStopInReverseOrderOnCancel(t *testing.T) {
	var mu sync.Mutex
	var log []string
	note := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	child := func(name string, linger time.Duration) Child {
		return Child{Name: name, Service: fnService(func(ctx context.Context) error {
			<-ctx.Done()
			note(name + " cancelled")
			time.Sleep(linger)
			note(name + " returned")
			return nil
		})}
	}
	rec := &recorder{}
	s := New(Spec{Events: rec.add}, child("first", 0), child("last", 300*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx) }()
	proctest.Eventually(t, 5*time.Second, "both children started", func() bool { return rec.count(Started, "") == 2 })
	cancel()
	proctest.Within(t, 10*time.Second, "Serve", func() { <-done })
	t.Logf("%v", log)
	if log[0] != "last cancelled" || log[1] != "last returned" {
		t.Fatalf("first child stopped before the last had returned: %v", log)
	}
}

// A sibling's failure does not bring back a Temporary child that ended.
func TestEndedTemporaryChildrenStayEnded(t *testing.T) {
	for _, st := range []Strategy{OneForAll, RestForOne} {
		rec := &recorder{}
		tempExited := make(chan struct{})
		var once sync.Once // a restarted temp, the bug, exits again
		events := func(e Event) {
			rec.add(e)
			if e.Kind == Exited && e.Child == "temp" {
				once.Do(func() { close(tempExited) })
			}
		}
		var tempStarts, crashes atomic.Int32
		temp := Child{Name: "temp", Restart: Temporary, Service: fnService(func(ctx context.Context) error {
			tempStarts.Add(1)
			return nil
		})}
		crasher := Child{Name: "crasher", Restart: Permanent, Service: fnService(func(ctx context.Context) error {
			if crashes.Add(1) == 1 {
				<-tempExited // the temporary child has ended before the crash
				return errors.New("boom")
			}
			<-ctx.Done()
			return nil
		})}
		first, second := temp, crasher
		if st == RestForOne {
			first, second = crasher, temp
		}
		s := New(Spec{Strategy: st, MinBackoff: time.Millisecond, Events: events}, first, second)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		// The group restart starts all its members in one go: once the
		// crasher is back, so is the temporary child if it is to be.
		proctest.Eventually(t, 5*time.Second, "the crasher restarted", func() bool { return rec.count(Started, "crasher") == 2 })
		cancel()
		proctest.Within(t, 10*time.Second, "Serve", func() { <-done })
		if n := tempStarts.Load(); n != 1 {
			t.Errorf("%v: temporary child that had ended was started %d times; snapshot %+v", st, n, s.Snapshot())
		}
	}
}

// OneForAll and RestForOne restart a group in start order.
func TestGroupRestartsKeepStartOrder(t *testing.T) {
	bad := 0
	for run := 0; run < 30; run++ {
		var mu sync.Mutex
		var order []string
		var crashes atomic.Int32
		mk := func(name string, crash bool) Child {
			return Child{Name: name, Service: fnService(func(ctx context.Context) error {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				if crash && crashes.Add(1) == 1 {
					return errors.New("boom")
				}
				<-ctx.Done()
				return nil
			})}
		}
		rec := &recorder{}
		s := New(Spec{Strategy: OneForAll, MinBackoff: 20 * time.Millisecond, Events: rec.add},
			mk("a", false), mk("b", false), mk("c", false), mk("d", true))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		proctest.Eventually(t, 5*time.Second, "the group restarted", func() bool { return rec.count(Started, "") >= 8 })
		cancel()
		proctest.Within(t, 10*time.Second, "Serve", func() { <-done })
		got := strings.Join(rec.order(Started), "")
		if !strings.HasPrefix(got, "abcdabcd") {
			bad++
			if bad < 4 {
				t.Logf("start order %s", got)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d/30 runs restarted out of start order", bad)
	}
}

// Serving again (a parent's restart) starts the children afresh, without
// those RemoveChild took out, and giving up still returns.
func TestServingAgainStartsAfresh(t *testing.T) {
	var ghostRuns atomic.Int32
	ghost := Child{Name: "ghost", Service: fnService(func(ctx context.Context) error {
		ghostRuns.Add(1)
		<-ctx.Done()
		return nil
	})}
	var armed atomic.Bool
	crasher := Child{Name: "crasher", Service: fnService(func(ctx context.Context) error {
		if armed.Load() {
			return errors.New("boom")
		}
		<-ctx.Done()
		return nil
	})}
	s := New(Spec{MaxRestarts: 1, Period: time.Minute, MinBackoff: time.Millisecond}, ghost, crasher)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	proctest.Eventually(t, 5*time.Second, "the ghost removed", func() bool { return s.RemoveChild(context.Background(), "ghost") == nil })
	cancel()
	<-done
	ghostRuns.Store(0)
	armed.Store(true)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- s.Serve(ctx2) }()
	select {
	case err := <-done:
		t.Logf("second Serve returned %v; ghost runs %d", err, ghostRuns.Load())
	case <-time.After(2 * time.Second):
		t.Errorf("second Serve hung after giving up; removed child ran %d times, snapshot %+v", ghostRuns.Load(), s.Snapshot())
		cancel2()
		<-done
	}
}

// An Infinity shutdown waits for a program that takes its time to exit.
func TestInfinityShutdownWaits(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "finished")
	c := Child{Name: "slow", Shutdown: Infinity, Service: Command(spawn.Options{Binary: "/bin/sh",
		Args: []string{"-c", fmt.Sprintf(`trap 'sleep 4; touch %q; exit 0' TERM; echo up; while :; do sleep 0.1; done`, flag)}})}
	logger, up := printed("up")
	s := New(Spec{Logger: logger}, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	proctest.Eventually(t, 5*time.Second, "the shell to install its trap", up)
	began := time.Now()
	cancel()
	<-done
	_, err := os.Stat(flag)
	t.Logf("stopped after %v; finished cleanly: %v", time.Since(began), err == nil)
	if err != nil {
		t.Fatal("Infinity child was killed before it finished")
	}
}

// spawn.Forever given as a Shutdown means what it says: wait (it is
// Infinity); BrutalKill is a value of its own.
func TestShutdownValuesCannotBeMixedUp(t *testing.T) {
	if Infinity != spawn.Forever || BrutalKill == spawn.Forever {
		t.Fatalf("Infinity %v, BrutalKill %v, spawn.Forever %v", Infinity, BrutalKill, spawn.Forever)
	}
}
