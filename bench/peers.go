package main

// The far ends: this binary, run again. An arbor actor (spawn.Main), a
// go-plugin server (net/rpc or gRPC), or the floor, which does blocking
// system calls on the pipes it inherits.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"syscall"

	"github.com/arbor-go/arbor/ipc"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// What every system serves: inc(n) = n+1, and count(n) = 0, 1, ..., n-1.
var (
	inc   = ipc.NewFunc("bench.inc", func(_ context.Context, n int) (int, error) { return n + 1, nil })
	count = ipc.NewStream("bench.count", func(_ context.Context, n int, out *ipc.Yielder[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	functions = ipc.MustNewTable(inc, count)
)

const floorEnv = "ARBOR_BENCH_FLOOR"

// serveFloor runs the floor's far end, if this process is one: "echo"
// echoes 8-byte messages from fd 3 to fd 4; "stream N" msgpack-encodes N
// ints through a 64 KiB buffer onto fd 4, once per byte read from fd 3.
func serveFloor() {
	mode := os.Getenv(floorEnv)
	if mode == "" {
		return
	}
	var buf [8]byte
	if mode == "echo" {
		for {
			if n, err := syscall.Read(3, buf[:]); err != nil || n == 0 {
				os.Exit(0)
			}
			if _, err := syscall.Write(4, buf[:]); err != nil {
				os.Exit(0)
			}
		}
	}
	var n int
	fmt.Sscanf(mode, "stream %d", &n)
	out := os.NewFile(4, "out")
	w := bufio.NewWriterSize(out, 64<<10)
	enc := msgpack.NewEncoder(w)
	for {
		if k, err := syscall.Read(3, buf[:1]); err != nil || k == 0 {
			os.Exit(0)
		}
		for i := range n {
			enc.EncodeInt(int64(i))
		}
		if w.Flush() != nil {
			os.Exit(0)
		}
	}
}

// go-plugin's side.

var handshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "ARBOR_BENCH_PLUGIN", MagicCookieValue: "bench"}

const pluginProtoEnv = "ARBOR_BENCH_PLUGIN_PROTO"

// servePlugin serves go-plugin over the protocol its parent asked for, if
// this process is a plugin.
func servePlugin() {
	if os.Getenv(handshake.MagicCookieKey) != handshake.MagicCookieValue {
		return
	}
	cfg := &plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{"bench": &benchPlugin{}},
		Logger:          hclog.NewNullLogger(),
	}
	if os.Getenv(pluginProtoEnv) == "grpc" {
		cfg.GRPCServer = plugin.DefaultGRPCServer
	}
	plugin.Serve(cfg)
	os.Exit(0)
}

// benchPlugin is one plugin in both of go-plugin's protocols.
type benchPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (benchPlugin) Server(*plugin.MuxBroker) (any, error) { return &rpcServer{}, nil }

func (benchPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) { return c, nil }

func (benchPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&grpcDesc, grpcServer{})
	return nil
}

func (benchPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

// rpcServer is the net/rpc service: net/rpc has calls only.
type rpcServer struct{}

func (rpcServer) Inc(n int, out *int) error { *out = n + 1; return nil }

// The gRPC service, declared by hand (no protoc here) over protobuf's
// well-known Int64Value.
type grpcAPI interface{}

type grpcServer struct{}

var grpcDesc = grpc.ServiceDesc{
	ServiceName: "bench.Bench",
	HandlerType: (*grpcAPI)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Inc",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.Int64Value)
			if err := dec(in); err != nil {
				return nil, err
			}
			return wrapperspb.Int64(in.Value + 1), nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Count",
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			in := new(wrapperspb.Int64Value)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			var item wrapperspb.Int64Value
			for i := range in.Value {
				item.Value = i
				if err := stream.SendMsg(&item); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

// grpcInc and grpcCount are the gRPC client's calls.
func grpcInc(ctx context.Context, c *grpc.ClientConn, n int64) (int64, error) {
	out := new(wrapperspb.Int64Value)
	err := c.Invoke(ctx, "/bench.Bench/Inc", wrapperspb.Int64(n), out)
	return out.Value, err
}

func grpcCount(ctx context.Context, c *grpc.ClientConn, n int64) (int, error) {
	s, err := c.NewStream(ctx, &grpcDesc.Streams[0], "/bench.Bench/Count")
	if err != nil {
		return 0, err
	}
	if err := s.SendMsg(wrapperspb.Int64(n)); err != nil {
		return 0, err
	}
	if err := s.CloseSend(); err != nil {
		return 0, err
	}
	got := 0
	var item wrapperspb.Int64Value
	for {
		if err := s.RecvMsg(&item); err == io.EOF {
			return got, nil
		} else if err != nil {
			return got, err
		}
		got++
	}
}
