// Command interrupt streams from ten actors until it is interrupted. Ctrl-C
// (SIGINT) reaches only this root process — every actor has a process
// group of its own — and the root tears the tree down in order, then exits
// with status 130.
//
//	go run ./examples/interrupt
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/spawn"
)

var ticks = ipc.NewStream("interrupt.ticks", func(ctx context.Context, _ struct{}, out *ipc.Yielder[int]) error {
	for i := 0; ; i++ {
		if err := out.Send(i); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
})

func main() {
	spawn.Main(ipc.MustNewTable(ticks))
	var received atomic.Int64
	status := nursery.Main(func(ctx context.Context, n *nursery.Nursery) error {
		var pids []string
		errs := make(chan error, 10)
		var flowing sync.WaitGroup // every stream has delivered an item
		flowing.Add(10)
		for i := range 10 {
			a, err := n.StartActor(spawn.Options{Name: fmt.Sprint("ticker-", i)})
			if err != nil {
				return err
			}
			pids = append(pids, fmt.Sprint(a.PID()))
			go func() {
				var once sync.Once
				defer once.Do(flowing.Done) // also when the stream fails first
				s, err := ticks.Open(ctx, a.Channel(), struct{}{})
				if err != nil {
					errs <- err
					return
				}
				for _, err := range s.All() {
					if err != nil {
						errs <- err
						return
					}
					once.Do(flowing.Done)
					received.Add(1)
				}
				errs <- nil
			}()
		}
		flowing.Wait()
		fmt.Printf("streaming from 10 actors, pids %s; press Ctrl-C to stop\n", strings.Join(pids, " "))
		for range 10 {
			<-errs // each stream ends when the tree is cancelled
		}
		return ctx.Err()
	})
	fmt.Printf("stopped after %d items; exit status %d\n", received.Load(), status)
	os.Exit(status)
}
