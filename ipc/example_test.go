package ipc_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
)

var (
	greet = ipc.NewFunc("example.greet", func(ctx context.Context, name string) (string, error) {
		if name == "" {
			return "", errors.New("nobody to greet")
		}
		return "hello, " + name, nil
	})
	countdown = ipc.NewStream("example.countdown", func(ctx context.Context, from int, out *ipc.Yielder[int]) error {
		for i := from; i > 0; i-- {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
)

// connect opens both ends of a channel in this process; between processes
// package spawn does this.
func connect(serve *ipc.Table) (caller, server *ipc.Channel) {
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		server, _ = ipc.Open(context.Background(), b, ipc.Options{Functions: serve})
	}()
	caller, err := ipc.Open(context.Background(), a, ipc.Options{Initiator: true})
	if err != nil {
		panic(err)
	}
	<-done
	return caller, server
}

func Example() {
	caller, server := connect(ipc.MustNewTable(greet, countdown))
	defer server.Close()
	defer caller.Close()
	ctx := context.Background()

	msg, err := greet.Call(ctx, caller, "arbor")
	fmt.Println(msg, err)

	s, _ := countdown.Open(ctx, caller, 3)
	for v, err := range s.All() {
		fmt.Println(v, err)
	}

	_, err = greet.Call(ctx, caller, "")
	var remote *protocol.RemoteError
	if errors.As(err, &remote) {
		fmt.Printf("%s failed: %s\n", remote.Source.Name, remote.Message)
	}
	// Output:
	// hello, arbor <nil>
	// 3 <nil>
	// 2 <nil>
	// 1 <nil>
	// actor failed: nobody to greet
}
