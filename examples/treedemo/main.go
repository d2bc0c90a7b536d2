// Command treedemo shows an arbor process tree at work: the root starts two
// worker actors, one of which starts a helper of its own; items stream back
// from all three, a call fails in a worker and its boxed error crosses the
// process boundary, and the tree is torn down, leaving no process behind.
//
//	go run ./examples/treedemo
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
)

// squares streams the squares of 1..n, slowly enough to watch.
var squares = ipc.NewStream("demo.squares", func(ctx context.Context, n int, out *ipc.Yielder[int]) error {
	for i := 1; i <= n; i++ {
		if err := out.Send(i * i); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
})

// divide fails on a zero divisor, as real code does.
var divide = ipc.NewFunc("demo.divide", func(ctx context.Context, a [2]int) (int, error) {
	if a[1] == 0 {
		return 0, fmt.Errorf("divide %d by zero: %w", a[0], errDivision)
	}
	return a[0] / a[1], nil
})

var errDivision = errors.New("division error")

// crash brings the whole worker process down, as a bug outside any call's
// recovery would: a panic in a goroutine of its own.
var crash = ipc.NewFunc("demo.crash", func(ctx context.Context, why string) (int, error) {
	go panic(why)
	select {}
})

// relay starts a helper actor of its own and passes its squares on, each
// tagged with the helper's name: a tree of depth two.
var relay = ipc.NewStream("demo.relay", func(ctx context.Context, n int, out *ipc.Yielder[string]) error {
	helper, err := spawn.Start(ctx, spawn.Options{Name: "helper"})
	if err != nil {
		return err
	}
	defer helper.Stop(context.Background())
	spawn.Logger(ctx).Info("started a helper", "pid", helper.PID())
	s, err := squares.Open(ctx, helper.Channel(), n)
	if err != nil {
		return err
	}
	for v, err := range s.All() {
		if err != nil {
			return err
		}
		if err := out.Send(fmt.Sprintf("%d from %s", v, helper.ID().Name)); err != nil {
			return err
		}
	}
	return nil
})

var functions = ipc.MustNewTable(squares, divide, relay, crash)

func main() {
	spawn.Main(functions) // in a worker, this runs the actor and never returns
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "treedemo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	logger := hclog.New(&hclog.LoggerOptions{Name: "treedemo", Level: hclog.Info, Output: os.Stderr})
	var workers []*spawn.Actor
	defer func() {
		for _, w := range workers {
			w.Stop(ctx)
		}
	}()
	for _, name := range []string{"worker-1", "worker-2"} {
		w, err := spawn.Start(ctx, spawn.Options{Name: name, Logger: logger})
		if err != nil {
			return err
		}
		workers = append(workers, w)
		fmt.Printf("started %s (pid %d)\n", w.ID().Name, w.PID())
	}

	// Stream from both workers, and through worker-1 from its helper.
	var wg sync.WaitGroup
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format, args...)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		s, err := squares.Open(ctx, workers[1].Channel(), 5)
		if err != nil {
			say("stream failed: %v\n", err)
			return
		}
		for v, err := range s.All() {
			if err != nil {
				say("stream failed: %v\n", err)
				return
			}
			say("  %s streamed %d\n", workers[1].ID().Name, v)
		}
	}()
	go func() {
		defer wg.Done()
		s, err := relay.Open(ctx, workers[0].Channel(), 5)
		if err != nil {
			say("relay failed: %v\n", err)
			return
		}
		for v, err := range s.All() {
			if err != nil {
				say("relay failed: %v\n", err)
				return
			}
			say("  %s relayed %s\n", workers[0].ID().Name, v)
		}
	}()
	wg.Wait()

	// A failure in a worker comes back as a boxed error, not a string.
	_, err := divide.Call(ctx, workers[1].Channel(), [2]int{42, 0})
	var remote *protocol.RemoteError
	if !errors.As(err, &remote) {
		return fmt.Errorf("expected a remote error, got %v", err)
	}
	fmt.Printf("call failed in %s: type %s, message %q\n", remote.Source.Name, remote.Type, remote.Message)

	// A worker that dies mid-call: the call fails with the exit status and
	// the panic, taken from the dead process's stderr.
	_, err = crash.Call(ctx, workers[1].Channel(), "worker-2 hit a bug")
	var exit *spawn.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("expected an exit error, got %v", err)
	}
	fmt.Printf("call failed because %s crashed: status %d, %s\n", exit.Actor.Name, exit.Code, firstLine(exit.Panic))

	// Tear down: every worker stops its own children first.
	for _, w := range workers {
		if err := w.Stop(ctx); err != nil {
			return err
		}
		fmt.Printf("stopped %s: %v\n", w.ID().Name, describe(w.Wait()))
	}
	workers = nil
	left := childProcesses()
	fmt.Printf("processes left behind: %d\n", len(left))
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func describe(err error) string {
	if err == nil {
		return "exited cleanly"
	}
	return err.Error()
}

// childProcesses lists this process's children, where /proc can say.
func childProcesses() []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := fmt.Sprint(os.Getpid())
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == self {
				out = append(out, e.Name())
			}
		}
	}
	return out
}
