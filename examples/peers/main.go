// Command peers shows actors of one tree finding each other by name and
// talking directly: a producer waits for the consumer to appear in the
// tree's registry, dials it, and streams numbers straight to it, with no
// hop through the root; then the root stops the consumer by name, and the
// producer's call to it ends as cancelled, naming who asked. Last, an
// actor started through a launcher (as on another host, where no socket
// reaches it) is reached through the tree: the producer streams to it
// relayed by the root, and an error from it names the hop.
//
//	go run ./examples/peers
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/nursery"
	"github.com/arbor-go/arbor/protocol"
	"github.com/arbor-go/arbor/spawn"
)

var (
	// sum is the consumer's: it adds up what a peer sends it, until the
	// peer stops sending.
	sum = ipc.NewContext("peers.sum", func(ctx context.Context, _ struct{}, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started("ready"); err != nil {
			return 0, err
		}
		total := 0
		for {
			v, err := s.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) { // the peer has sent all
					return total, nil
				}
				return total, err
			}
			total += v
		}
	})
	// wait is the consumer's too: it says it is waiting, then blocks until
	// cancelled.
	wait = ipc.NewContext("peers.wait", func(ctx context.Context, _ struct{}, s *ipc.Session[string, int, int]) (int, error) {
		if err := s.Started("waiting"); err != nil {
			return 0, err
		}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// refuse is every consumer's: it fails, saying who it is.
	refuse = ipc.NewFunc("peers.refuse", func(ctx context.Context, _ struct{}) (struct{}, error) {
		ch, _ := ipc.ChannelFrom(ctx)
		return struct{}{}, fmt.Errorf("%s refuses", ch.Self().Name)
	})
	// produce is the producer's: it finds the consumer To, streams 1..N to
	// it, and returns the consumer's total.
	produce = ipc.NewFunc("peers.produce", func(ctx context.Context, a struct {
		To string
		N  int
	}) (int, error) {
		e, err := spawn.WaitFor(ctx, a.To)
		if err != nil {
			return 0, err
		}
		ch, err := spawn.DialEntry(ctx, e, nil)
		if err != nil {
			return 0, err
		}
		defer ch.Close()
		c, err := sum.Open(ctx, ch, struct{}{})
		if err != nil {
			return 0, err
		}
		for i := 1; i <= a.N; i++ {
			if err := c.Send(i); err != nil {
				return 0, err
			}
		}
		if err := c.CloseSend(); err != nil {
			return 0, err
		}
		return c.Result()
	})
	// provoke is the producer's: it calls refuse on the actor named name,
	// and returns the error.
	provoke = ipc.NewFunc("peers.provoke", func(ctx context.Context, name string) (struct{}, error) {
		ch, err := spawn.Dial(ctx, name, nil)
		if err != nil {
			return struct{}{}, err
		}
		defer ch.Close()
		return refuse.Call(ctx, ch, struct{}{})
	})
	// hold is the producer's: it opens the consumer's wait, says so, and
	// then says how that call ended.
	hold = ipc.NewStream("peers.hold", func(ctx context.Context, _ struct{}, out *ipc.Yielder[string]) error {
		ch, err := spawn.Dial(ctx, "root.consumer", nil)
		if err != nil {
			return err
		}
		defer ch.Close()
		c, err := wait.Open(ctx, ch, struct{}{})
		if err != nil {
			return err
		}
		if err := out.Send("the call to root.consumer is in"); err != nil {
			return err
		}
		_, err = c.Result()
		var re *protocol.RemoteError
		if errors.As(err, &re) {
			return out.Send(fmt.Sprintf("%s by %s", re.Code, re.Canceller.Name))
		}
		return out.Send(fmt.Sprint(err))
	})
)

func main() {
	spawn.Main(ipc.MustNewTable(sum, wait, refuse, produce, provoke, hold))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return nursery.Open(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		producer, err := n.StartActor(spawn.Options{Name: "producer"})
		if err != nil {
			return err
		}
		// The producer waits for the consumer, which starts after it.
		total := make(chan error, 1)
		go func() {
			got, err := produce.Call(ctx, producer.Channel(), struct {
				To string
				N  int
			}{"root.consumer", 1000})
			if err == nil {
				fmt.Printf("root.producer streamed 1..1000 straight to root.consumer, which summed %d\n", got)
			}
			total <- err
		}()
		// The consumer is not the nursery's: it is stopped by name below,
		// and a nursery's daemon that ends so would count as a failure.
		consumer, err := spawn.Start(ctx, spawn.Options{Name: "consumer"})
		if err != nil {
			return err
		}
		defer consumer.Stop(context.Background())
		if err := <-total; err != nil {
			return err
		}
		list, err := spawn.List(ctx, "")
		if err != nil {
			return err
		}
		for _, e := range list {
			fmt.Printf("registered: %s (pid %d)\n", e.Name, e.PID)
		}
		// The producer holds a call to the consumer; once it is in, the
		// root stops the consumer by name.
		h, err := hold.Open(ctx, producer.Channel(), struct{}{})
		if err != nil {
			return err
		}
		if _, err := h.Recv(); err != nil {
			return err
		}
		if err := spawn.StopActor(ctx, "root.consumer"); err != nil {
			return err
		}
		how, err := h.Recv()
		if err != nil {
			return err
		}
		fmt.Printf("root stopped root.consumer by name; the producer's call to it ended: %s\n", how)
		<-consumer.Done()
		fmt.Printf("root.consumer exited: %v\n", consumer.Wait())
		if err := relayed(ctx, n, producer); err != nil {
			return err
		}
		n.Cancel() // done: the producer goes too
		return nil
	})
}

// relayed starts a consumer through a launcher (env here; ssh to another
// host in earnest), which no peer socket reaches: the producer's channel
// to it goes through the tree, relayed by the root.
func relayed(ctx context.Context, n *nursery.Nursery, producer *spawn.Actor) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := n.StartActor(spawn.Options{Name: "far", Binary: self, Launcher: []string{"env"}}); err != nil {
		return err
	}
	got, err := produce.Call(ctx, producer.Channel(), struct {
		To string
		N  int
	}{"root.far", 1000})
	if err != nil {
		return err
	}
	fmt.Printf("root.producer streamed 1..1000 to root.far through the tree, which summed %d\n", got)
	_, err = provoke.Call(ctx, producer.Channel(), "root.far")
	var re *protocol.RemoteError
	if !errors.As(err, &re) {
		return fmt.Errorf("root.far did not refuse: %v", err)
	}
	fmt.Printf("root.far's error %q, raised in %s, came back through", re.Message, re.Source.Name)
	for _, hop := range re.Relay {
		fmt.Printf(" %s", hop.Name)
	}
	fmt.Println()
	return nil
}
