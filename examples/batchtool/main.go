// Command batchtool is a batch program that embeds a supervisor: while it
// works through its batch, a supervisor keeps the helper it depends on (a
// stand-in for a local cache server) running, restarting it with backoff
// when it crashes. When the batch is done the helper is stopped, and the
// program exits with nothing left running.
//
//	go run ./examples/batchtool
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/arbor-go/arbor/spawn"
	"github.com/arbor-go/arbor/supervisor"
)

func main() {
	dir, err := os.MkdirTemp("", "batchtool-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	crashed := filepath.Join(dir, "crashed")
	// The helper crashes once, a second after it starts, then stays up.
	helper := fmt.Sprintf(`if [ ! -e %s ]; then sleep 0.2; touch %s; exit 1; fi; exec sleep 30`, crashed, crashed)

	// The supervisor's events say when the helper crashed and when it is
	// back: nothing here polls.
	restarts, started := make(chan struct{}, 10), make(chan struct{}, 10)
	sup := supervisor.New(supervisor.Spec{Name: "batchtool", MinBackoff: 20 * time.Millisecond,
		Events: func(e supervisor.Event) {
			switch e.Kind {
			case supervisor.Restarting:
				restarts <- struct{}{}
			case supervisor.Started:
				started <- struct{}{}
			}
		}},
		supervisor.Child{Name: "cache", Restart: supervisor.Permanent,
			Service: supervisor.Command(spawn.Options{Name: "cache", Binary: "/bin/sh", Args: []string{"-c", helper}})})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sup.Serve(ctx) }()

	// The batch itself: here, waiting out the helper's crash and doing a
	// little work.
	<-started // the first start
	<-restarts
	fmt.Println("the cache crashed and is being restarted; the batch goes on")
	for i := 1; i <= 3; i++ {
		fmt.Printf("processed item %d\n", i)
	}
	<-started // the helper is back before the batch reports
	c := sup.Snapshot()[0]
	fmt.Printf("cache %s again after %d restart(s)\n", c.State, c.Restarts)
	stop()
	if err := <-served; err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("batch done; the cache is stopped")
}
