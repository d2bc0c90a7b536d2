// Command remote runs part of an arbor tree through a launcher: the program
// that reaches another machine (ssh), container (docker exec -i) or
// cluster node (srun) starts the far actor and carries its stdin and
// stdout, and arbor's protocol runs over them. The far actor streams,
// fails, is cancelled and is torn down as a local one would be; heartbeats
// stand in for the parent-death signal that cannot cross.
//
//	go run ./examples/remote                      # through env, a launcher that stays here
//	go run ./examples/remote -fail                # the far actor fails; the near one is stopped
//	go build -o /tmp/remote ./examples/remote && scp /tmp/remote host:/tmp/ &&
//	  /tmp/remote -launcher 'ssh -T host' -binary /tmp/remote
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

type place struct {
	Host string
	PID  int
}

var (
	whereami = ipc.NewFunc("remote.whereami", func(ctx context.Context, _ struct{}) (place, error) {
		host, _ := os.Hostname()
		return place{Host: host, PID: os.Getpid()}, nil
	})
	// squares streams n squares; with fail, it fails half way.
	squares = ipc.NewStream("remote.squares", func(ctx context.Context, a struct {
		N    int
		Fail bool
	}, out *ipc.Yielder[int]) error {
		for i := 1; i <= a.N; i++ {
			if a.Fail && i > a.N/2 {
				return fmt.Errorf("square %d: the far disk is full", i)
			}
			if err := out.Send(i * i); err != nil {
				return err
			}
		}
		return nil
	})
	// idle serves until cancelled: the near actor's work.
	idle = ipc.NewFunc("remote.idle", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
)

func main() {
	spawn.Main(ipc.MustNewTable(whereami, squares, idle))
	launcher := flag.String("launcher", "env", "the launcher's command line, split at spaces: 'ssh -T host', 'docker exec -i ctr', 'srun -N1 -n1'")
	binary := flag.String("binary", "", "this program's path on the far side (default: this executable, for a launcher that stays on this machine)")
	fail := flag.Bool("fail", false, "make the far actor fail half way through its stream")
	flag.Parse()
	if err := run(strings.Fields(*launcher), *binary, *fail); err != nil {
		fmt.Fprintln(os.Stderr, "remote:", err)
		os.Exit(1)
	}
}

func run(launcher []string, binary string, fail bool) error {
	if binary == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		binary = self
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		near, err := n.StartActor(spawn.Options{Name: "near"})
		if err != nil {
			return err
		}
		far, err := n.StartActor(spawn.Options{Name: "far", Binary: binary, Launcher: launcher})
		if err != nil {
			return err
		}
		for _, a := range []*spawn.Actor{near, far} {
			p, err := whereami.Call(ctx, a.Channel(), struct{}{})
			if err != nil {
				return err
			}
			fmt.Printf("%s runs on %s as pid %d\n", a.ID().Name, p.Host, p.PID)
		}
		// The near actor works until the tree is torn down.
		n.Go(func(ctx context.Context) error {
			_, err := idle.Call(ctx, near.Channel(), struct{}{})
			return err
		})
		s, err := squares.Open(ctx, far.Channel(), struct {
			N    int
			Fail bool
		}{100, fail})
		if err != nil {
			return err
		}
		sum, items := 0, 0
		for v, err := range s.All() {
			if err != nil {
				return err
			}
			sum, items = sum+v, items+1
		}
		fmt.Printf("streamed %d squares from %s through %q: sum %d\n", items, far.ID().Name, strings.Join(launcher, " "), sum)
		n.Cancel() // done: tear the tree down
		return nil
	})
	var re *protocol.RemoteError
	switch {
	case errors.As(err, &re):
		fmt.Printf("the far actor failed: %q in %s; the tree was torn down\n", re.Message, re.Source.Name)
		return nil
	case err != nil && !errors.Is(err, context.Canceled):
		return err
	}
	fmt.Println("the tree was torn down")
	return nil
}
