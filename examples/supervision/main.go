// Command supervision runs a supervision tree: a root supervisor keeps a
// pool supervisor of worker actors running. One worker crashes and is
// restarted with backoff; the pool grows at run time; then the tree stops,
// children in reverse start order, and no process is left.
//
//	go run ./examples/supervision
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/spawn"
	"github.com/arbor-go/arbor/supervisor"
)

// work runs in a worker actor until it is stopped. A worker given a
// crash file crashes the first time it runs, as a buggy worker would.
var work = ipc.NewFunc("pool.work", func(ctx context.Context, crashFile string) (int, error) {
	if crashFile != "" {
		if _, err := os.Stat(crashFile); err != nil {
			os.WriteFile(crashFile, nil, 0o600)
			return 0, errors.New("worker hit a bug")
		}
	}
	<-ctx.Done()
	return 0, nil
})

func worker(name, crashFile string) supervisor.Child {
	return supervisor.Child{Name: name, Restart: supervisor.Permanent,
		Service: supervisor.Actor(work, crashFile, spawn.Options{})} // the actor takes the child's name
}

func main() {
	spawn.Main(ipc.MustNewTable(work))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "supervision:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "supervision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	events := make(chan supervisor.Event, 1000) // more than this run emits: the tree never waits on it
	report := func(e supervisor.Event) { events <- e }
	pool := supervisor.New(supervisor.Spec{Name: "pool", MaxChildren: 4, MinBackoff: 50 * time.Millisecond, Events: report},
		worker("worker-1", ""), worker("worker-2", filepath.Join(dir, "crash")), worker("worker-3", ""))
	root := supervisor.New(supervisor.Spec{Name: "root", Events: report},
		supervisor.Child{Name: "pool", Service: pool, Restart: supervisor.Permanent})

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- root.Serve(ctx) }()
	stopped := false
	stopTree := func() error {
		stopped = true
		cancel()
		return <-served
	}
	defer func() {
		if !stopped {
			stopTree()
		}
	}()

	// Watch the tree until the crashed worker is back, then grow the pool.
	started := map[string]int{}
	for started["worker-2"] < 2 || started["worker-1"] < 1 || started["worker-3"] < 1 {
		e := <-events
		switch e.Kind {
		case supervisor.Started:
			started[e.Child]++
			fmt.Printf("%s: started %s\n", e.Supervisor, e.Child)
		case supervisor.Exited:
			fmt.Printf("%s: %s exited: %v\n", e.Supervisor, e.Child, e.Err)
		case supervisor.Restarting:
			fmt.Printf("%s: restarting %s after a backoff\n", e.Supervisor, e.Child)
		}
	}
	if err := pool.AddChild(ctx, worker("worker-4", "")); err != nil {
		return err
	}
	fmt.Println("pool grown to 4 workers")
	for (<-events).Child != "worker-4" {
	}
	for _, c := range pool.Snapshot() {
		fmt.Printf("  %s: %s, %d restarts\n", c.Name, c.State, c.Restarts)
	}

	if err := stopTree(); err != nil {
		return err
	}
	close(events)
	var order []string
	for e := range events {
		if e.Kind == supervisor.Stopped {
			order = append(order, e.Child)
		}
	}
	fmt.Println("stopped in order:", order)
	return nil
}
