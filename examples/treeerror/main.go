// Command treeerror builds a tree of actors three levels deep, two wide,
// in which one leaf fails. The failure reaches the root with the leaf as
// its source and the actors it crossed as its relay path, and the rest of
// the tree is cancelled.
//
//	go run ./examples/treeerror
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

type node struct {
	Depth   int
	Path    string
	Failing string
}

// grow runs one node: a leaf waits (or fails, if it is the failing one),
// an inner node runs two children in a nursery of its own. It calls
// itself, so it is declared here and implemented by growNode.
var grow = ipc.NewFunc[node, int]("tree.grow", nil)

func growNode(ctx context.Context, a node) (int, error) {
	if a.Depth == 0 {
		if a.Path == a.Failing {
			return 0, fmt.Errorf("leaf %s: sensor offline", a.Path)
		}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return 0, nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		for i := range 2 {
			child := node{Depth: a.Depth - 1, Path: a.Path + "." + strconv.Itoa(i), Failing: a.Failing}
			if _, err := nursery.RunInActor(n, grow, child, spawn.Options{Name: "n" + strconv.Itoa(i)}); err != nil {
				return err
			}
		}
		return nil
	})
}

func main() {
	spawn.Main(ipc.MustNewTable(grow.Implement(growNode)))
	err := nursery.Open(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		_, err := nursery.RunInActor(n, grow, node{Depth: 2, Path: "t", Failing: "t.1.0"}, spawn.Options{Name: "top"})
		return err
	})
	var remote *protocol.RemoteError
	if !errors.As(err, &remote) {
		fmt.Println("expected a remote error, got", err)
		os.Exit(1)
	}
	fmt.Printf("failed in %s: %s\n", remote.Source.Name, remote.Message)
	for _, hop := range remote.Relay {
		fmt.Printf("  relayed through %s\n", hop.Name)
	}
	fmt.Println("the whole tree is gone:", err != nil)
}
