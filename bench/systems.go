package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/arbor-go/arbor/spawn"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"
)

// A peer is one running far end of one system.
type peer interface {
	inc(n int) (int, error)
	// stream receives count(n) and returns how many items arrived.
	stream(n int) (int, error)
	pid() int
	close() error
}

var errUnsupported = errors.New("not supported")

type system struct {
	name  string
	start func() (peer, error)
	// concurrent reports whether many goroutines may call inc at once.
	concurrent bool
}

var systems = []system{
	{"floor", startFloor, false},
	{"arbor", startArbor, true},
	{"go-plugin net/rpc", func() (peer, error) { return startPlugin("netrpc") }, true},
	{"go-plugin gRPC", func() (peer, error) { return startPlugin("grpc") }, true},
}

// arbor: an actor over spawn's default transport (two pipes).

type arborPeer struct{ a *spawn.Actor }

func startArbor() (peer, error) {
	a, err := spawn.Start(context.Background(), spawn.Options{Name: "bench", Logger: hclog.NewNullLogger()})
	if err != nil {
		return nil, err
	}
	return &arborPeer{a}, nil
}

func (p *arborPeer) inc(n int) (int, error) { return inc.Call(context.Background(), p.a.Channel(), n) }

func (p *arborPeer) stream(n int) (int, error) {
	s, err := count.Open(context.Background(), p.a.Channel(), n)
	if err != nil {
		return 0, err
	}
	got := 0
	for _, err := range s.All() {
		if err != nil {
			return got, err
		}
		got++
	}
	return got, nil
}

func (p *arborPeer) pid() int     { return p.a.PID() }
func (p *arborPeer) close() error { return p.a.Stop(context.Background()) }

// go-plugin, over net/rpc or gRPC.

type pluginPeer struct {
	client *plugin.Client
	rpc    *rpc.Client
	grpc   *grpc.ClientConn
}

func startPlugin(proto string) (peer, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), pluginProtoEnv+"="+proto)
	allowed := plugin.ProtocolNetRPC
	if proto == "grpc" {
		allowed = plugin.ProtocolGRPC
	}
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugin.PluginSet{"bench": &benchPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{allowed},
		Logger:           hclog.NewNullLogger(),
	})
	cp, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, err
	}
	raw, err := cp.Dispense("bench")
	if err != nil {
		c.Kill()
		return nil, err
	}
	p := &pluginPeer{client: c}
	switch v := raw.(type) {
	case *rpc.Client:
		p.rpc = v
	case *grpc.ClientConn:
		p.grpc = v
	default:
		c.Kill()
		return nil, fmt.Errorf("go-plugin gave a %T", raw)
	}
	return p, nil
}

func (p *pluginPeer) inc(n int) (int, error) {
	if p.rpc != nil {
		var out int
		err := p.rpc.Call("Plugin.Inc", n, &out)
		return out, err
	}
	v, err := grpcInc(context.Background(), p.grpc, int64(n))
	return int(v), err
}

func (p *pluginPeer) stream(n int) (int, error) {
	if p.grpc == nil {
		return 0, errUnsupported
	}
	return grpcCount(context.Background(), p.grpc, int64(n))
}

func (p *pluginPeer) pid() int {
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (p *pluginPeer) close() error { p.client.Kill(); return nil }

// The floor: the child blocks in read and write on its inherited pipes,
// and so does this end. Nothing moves bytes between two processes faster.

type floorPeer struct {
	cmd       *exec.Cmd
	toChild   *os.File
	fromChild *os.File
	wfd, rfd  int
}

func startFloor() (peer, error) { return startFloorMode("echo") }

func startFloorMode(mode string) (*floorPeer, error) {
	childIn, toChild, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	fromChild, childOut, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), floorEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{childIn, childOut}
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	childIn.Close()
	childOut.Close()
	if err != nil {
		return nil, err
	}
	// Fd puts the descriptors in blocking mode.
	p := &floorPeer{cmd: cmd, toChild: toChild, fromChild: fromChild, wfd: int(toChild.Fd()), rfd: int(fromChild.Fd())}
	return p, nil
}

func (p *floorPeer) inc(n int) (int, error) {
	var buf [8]byte
	if _, err := syscall.Write(p.wfd, buf[:]); err != nil {
		return 0, err
	}
	for got := 0; got < len(buf); {
		k, err := syscall.Read(p.rfd, buf[got:])
		if err != nil || k == 0 {
			return 0, fmt.Errorf("floor: %v", err)
		}
		got += k
	}
	return n + 1, nil
}

func (p *floorPeer) stream(int) (int, error) { return 0, errUnsupported }

func (p *floorPeer) pid() int { return p.cmd.Process.Pid }

func (p *floorPeer) close() error {
	p.toChild.Close()
	p.fromChild.Close()
	return p.cmd.Wait()
}

// floorStream is the floor for streams: a child that msgpack-encodes n
// ints through a 64 KiB buffer onto its pipe for every byte it reads, and
// this end decoding each.
type floorStream struct {
	*floorPeer
	n   int
	dec *msgpack.Decoder
}

func startFloorStream(n int) (*floorStream, error) {
	p, err := startFloorMode("stream " + strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	return &floorStream{floorPeer: p, n: n, dec: msgpack.NewDecoder(bufio.NewReaderSize(readerFD(p.rfd), 64<<10))}, nil
}

func (s *floorStream) stream(n int) (int, error) {
	if n != s.n {
		return 0, fmt.Errorf("floor stream started for %d items, asked for %d", s.n, n)
	}
	if _, err := syscall.Write(s.wfd, []byte{1}); err != nil {
		return 0, err
	}
	for i := range n {
		if _, err := s.dec.DecodeInt(); err != nil {
			return i, err
		}
	}
	return n, nil
}

// readerFD reads a descriptor with blocking system calls, through a 64 KiB
// buffer (msgpack's decoder buffers only what it is given).
type readerFD int

func (r readerFD) Read(b []byte) (int, error) {
	n, err := syscall.Read(int(r), b)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return n, err
}

// rssKiB returns a process's resident set size, from /proc.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
