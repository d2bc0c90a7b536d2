// Command librarytree is a program built on arbor's library, for the CLI's
// tests: a nursery opened WithControl, with an actor that runs one of its
// own, so that arbor ps --tree has a tree to show. It prints "ready" once
// the tree is up and runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/spawn"
)

// pool starts a worker of its own and serves until cancelled.
var pool = ipc.NewStream("lib.pool", func(ctx context.Context, _ struct{}, out *ipc.Yielder[int]) error {
	w, err := spawn.Start(ctx, spawn.Options{Name: "worker"})
	if err != nil {
		return err
	}
	defer w.Stop(context.Background())
	if err := out.Send(w.PID()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

func main() {
	spawn.Main(ipc.MustNewTable(pool))
	os.Exit(nursery.Main(func(ctx context.Context, n *nursery.Nursery) error {
		a, err := n.StartActor(spawn.Options{Name: "pool"})
		if err != nil {
			return err
		}
		s, err := pool.Open(ctx, a.Channel(), struct{}{})
		if err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
		fmt.Println("ready")
		<-ctx.Done()
		return nil
	}, nursery.WithControl("libtree")))
}
