// Command pipeline streams through a tree of actors: two producers each
// stream 1000 numbers into an aggregator actor, which streams all 2000 to
// the root. Credit-based flow control paces every stage; nothing is lost
// and each producer's numbers arrive in order.
//
//	go run ./examples/pipeline
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/spawn"
)

type item struct {
	Source int
	Value  int
}

var produce = ipc.NewStream("pipeline.produce", func(ctx context.Context, n int, out *ipc.Yielder[int]) error {
	for i := range n {
		if err := out.Send(i); err != nil {
			return err
		}
	}
	return nil
})

// aggregate starts the producers in a nursery of its own and forwards
// what they send.
var aggregate = ipc.NewStream("pipeline.aggregate", func(ctx context.Context, n int, out *ipc.Yielder[item]) error {
	return nursery.Open(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
		items := make(chan item)
		done := make(chan error, 2)
		for src := range 2 {
			p, err := nu.StartActor(spawn.Options{Name: fmt.Sprint("producer-", src)})
			if err != nil {
				return err
			}
			go func() {
				s, err := produce.Open(ctx, p.Channel(), n)
				if err != nil {
					done <- err
					return
				}
				for v, err := range s.All() {
					if err != nil {
						done <- err
						return
					}
					select {
					case items <- item{Source: src, Value: v}:
					case <-ctx.Done():
						done <- ctx.Err()
						return
					}
				}
				done <- nil
			}()
		}
		for finished := 0; finished < 2; {
			select {
			case it := <-items:
				if err := out.Send(it); err != nil {
					return err
				}
			case err := <-done:
				if err != nil {
					return err
				}
				finished++
			}
		}
		return nil
	})
})

func main() {
	spawn.Main(ipc.MustNewTable(produce, aggregate))
	os.Exit(nursery.Main(func(ctx context.Context, n *nursery.Nursery) error {
		agg, err := n.StartActor(spawn.Options{Name: "aggregator"})
		if err != nil {
			return err
		}
		s, err := aggregate.Open(ctx, agg.Channel(), 1000)
		if err != nil {
			return err
		}
		next := [2]int{}
		for it, err := range s.All() {
			if err != nil {
				return err
			}
			if it.Value != next[it.Source] {
				return fmt.Errorf("producer %d: got %d, want %d", it.Source, it.Value, next[it.Source])
			}
			next[it.Source]++
		}
		fmt.Printf("received %d items: %d from producer 0, %d from producer 1, each in order\n",
			next[0]+next[1], next[0], next[1])
		return nil
	}))
}
