// Command basics runs functions in actors of their own with a nursery and
// collects their results: errgroup, across processes.
//
//	go run ./examples/basics
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/spawn"
)

// cube runs in a child process; the parent sees only its result.
var cube = ipc.NewFunc("basics.cube", func(ctx context.Context, x int) (int, error) {
	return x * x * x, nil
})

func main() {
	spawn.Main(ipc.MustNewTable(cube))
	os.Exit(nursery.Main(func(ctx context.Context, n *nursery.Nursery) error {
		var results []*nursery.Result[int]
		for x := 1; x <= 5; x++ {
			r, err := nursery.RunInActor(n, cube, x, spawn.Options{Name: fmt.Sprint("cube-", x)})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		for i, r := range results {
			v, err := r.Wait(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("%d cubed is %d (computed by %s)\n", i+1, v, r.Actor().Name)
		}
		return nil
	}))
}
