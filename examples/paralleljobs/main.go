// Command paralleljobs runs shell jobs three at a time, as arbor parallel
// does, from a Go program: each job is a plain program with its own process
// group, its output kept whole, and the first failure stops the jobs still
// running ("halt now"), so nothing is left behind.
//
//	go run ./examples/paralleljobs
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/arbor-go/arbor/spawn"
)

var jobs = []string{
	"echo compressing a; sleep 0.1; echo a done",
	"echo compressing b; sleep 0.2; echo b done",
	"echo checking c; sleep 0.6; exit 3", // fails: what still runs is stopped
	"echo compressing d; sleep 30",
	"echo compressing e; sleep 30",
}

func main() {
	ctx, haltNow := context.WithCancel(context.Background())
	defer haltNow()
	slots := make(chan struct{}, 3)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, script := range jobs {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			fmt.Printf("job %d: not started (halted)\n", i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			var out []string
			job, err := spawn.StartCommand(ctx, spawn.Options{Name: fmt.Sprint("job-", i), Binary: "/bin/sh",
				Args: []string{"-c", script}, Output: func(_, line string) { out = append(out, line) }})
			if err != nil {
				fmt.Println(err)
				haltNow()
				return
			}
			select {
			case <-job.Done():
			case <-ctx.Done():
				job.Stop(context.Background()) // SIGTERM to its group, then SIGKILL
			}
			err = job.Wait()
			mu.Lock()
			defer mu.Unlock()
			var exit *spawn.ExitError
			switch {
			case err == nil:
				fmt.Printf("job %d: ok: %s\n", i, strings.Join(out, " / "))
			case errors.As(err, &exit) && exit.Stopped:
				fmt.Printf("job %d: stopped after another job failed\n", i)
			default:
				fmt.Printf("job %d: failed (%v): %s\n", i, err, strings.Join(out, " / "))
				haltNow()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		os.Exit(1)
	}
}
