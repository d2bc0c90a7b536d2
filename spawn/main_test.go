package spawn

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/arbor-go/arbor/ipc"
	"go.uber.org/goleak"
)

// The test binary is also every child these tests start: TestMain hands
// it to Main, which runs it as an actor when a parent started it as one.

var (
	echo = ipc.NewFunc("test.echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	pid  = ipc.NewFunc("test.pid", func(ctx context.Context, _ struct{}) (int, error) { return os.Getpid(), nil })
	exit = ipc.NewFunc("test.exit", func(ctx context.Context, code int) (int, error) {
		os.Exit(code)
		return 0, nil
	})
	// whoCalls says which actor the call came from.
	whoCalls = ipc.NewFunc("test.whoCalls", func(ctx context.Context, _ struct{}) (string, error) {
		ch, _ := ipc.ChannelFrom(ctx)
		return ch.Peer().Name, nil
	})
	// callPeer dials a sibling by name and asks it who calls, then streams
	// n items from it, returning what the sibling said and the sum.
	callPeer = ipc.NewFunc("test.callPeer", func(ctx context.Context, a struct {
		Name string
		N    int
	}) ([2]string, error) {
		ch, err := Dial(ctx, a.Name, nil)
		if err != nil {
			return [2]string{}, err
		}
		defer ch.Close()
		who, err := whoCalls.Call(ctx, ch, struct{}{})
		if err != nil {
			return [2]string{}, err
		}
		s, err := count.Open(ctx, ch, a.N)
		if err != nil {
			return [2]string{}, err
		}
		sum := 0
		for v, err := range s.All() {
			if err != nil {
				return [2]string{}, err
			}
			sum += v
		}
		return [2]string{who, strconv.Itoa(sum)}, nil
	})
	// stopPeer stops a sibling by name.
	stopPeer = ipc.NewFunc("test.stopPeer", func(ctx context.Context, name string) (struct{}, error) {
		return struct{}{}, StopActor(ctx, name)
	})
	// find looks a name up in the tree from inside an actor.
	find  = ipc.NewFunc("test.find", func(ctx context.Context, name string) (Entry, error) { return Find(ctx, name) })
	fail  = ipc.NewFunc("test.fail", func(ctx context.Context, msg string) (int, error) { return 0, errors.New(msg) })
	block = ipc.NewFunc("test.block", func(ctx context.Context, _ struct{}) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	// stubborn ignores both its ctx and SIGTERM, as a wedged program would.
	// It says when it is stuck, so that a test stops it only then.
	stubborn = ipc.NewStream("test.stubborn", func(ctx context.Context, _ struct{}, out *ipc.Yielder[string]) error {
		signal.Ignore(syscall.SIGTERM)
		out.Send("stuck")
		select {}
	})
	count = ipc.NewStream("test.count", func(ctx context.Context, n int, out *ipc.Yielder[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	// say prints to stdout and logs through the actor's logger.
	say = ipc.NewFunc("test.say", func(ctx context.Context, words string) (int, error) {
		fmt.Println("stdout says " + words)
		Logger(ctx).Warn("logger says "+words, "answer", 42)
		if words == "long" {
			fmt.Fprintln(os.Stderr, strings.Repeat("x", maxLine+100))
		}
		return len(words), nil
	})
	// tree starts a grandchild, reports its pid, and keeps it until
	// cancelled.
	tree = ipc.NewStream("test.tree", func(ctx context.Context, _ struct{}, out *ipc.Yielder[int]) error {
		g, err := Start(ctx, Options{Name: "grandchild"})
		if err != nil {
			return err
		}
		defer g.Stop(context.Background())
		if err := out.Send(g.PID()); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
)

var testFuncs *ipc.Table // built in init, with every function of this file

const modeEnv = "ARBOR_TEST_MODE"

func TestMain(m *testing.M) {
	// Under -race, every process sleeps a second before it exits
	// (GORACE's atexit_sleep_ms); the children need not.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	switch os.Getenv(modeEnv) {
	case "relay":
		relay() // a launcher whose link can be cut (launcher_test.go)
	case "panic-at-start":
		panic("boom at start")
	case "hang":
		select {}
	case "no-main":
		// A child whose main forgot spawn.Main and goes on to spawn.
		_, err := Start(context.Background(), Options{})
		fmt.Fprintln(os.Stderr, err)
		os.Exit(7)
	case "wrong-secret":
		var sp spec
		json.Unmarshal([]byte(os.Getenv(specEnv)), &sp)
		if c, err := net.Dial("unix", sp.Addr); err == nil {
			io.WriteString(c, "not-the-secret\n")
			c.Close()
		}
	case "silent-crowd":
		// Twelve connections that say nothing, then the child's own:
		// they must not hold it up (each may take a second to refuse).
		var sp spec
		json.Unmarshal([]byte(os.Getenv(specEnv)), &sp)
		for range 12 {
			if c, err := net.Dial("unix", sp.Addr); err == nil {
				defer c.Close()
			}
		}
		os.Unsetenv(modeEnv)
		Main(testFuncs) // connects, serves, exits
	case "impostor":
		// Another process, with its own pid, presents the right secret
		// before this child connects.
		var sp spec
		json.Unmarshal([]byte(os.Getenv(specEnv)), &sp)
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, specEnv+"=") && !strings.HasPrefix(kv, modeEnv+"=") {
				env = append(env, kv)
			}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(env, modeEnv+"=impostor-connect", "IMPOSTOR_ADDR="+sp.Addr, "IMPOSTOR_SECRET="+sp.Secret)
		cmd.Run()
	case "impostor-connect":
		if c, err := net.Dial("unix", os.Getenv("IMPOSTOR_ADDR")); err == nil {
			io.WriteString(c, os.Getenv("IMPOSTOR_SECRET")+"\n")
			c.Read(make([]byte, 1)) // until the parent refuses it
			c.Close()
		}
		os.Exit(0)
	case "bare":
		// The baseline for spawning: start and answer one line.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "parent-tree":
		parentTree()
	case "contained-parent":
		containedParent()
	case "raw-copy-stdio":
		// The baseline for streams: copy stdin to stdout in bulk.
		io.Copy(os.Stdout, os.Stdin)
		os.Exit(0)
	case "raw-echo", "raw-echo-stdio":
		// The baseline for transports: echo 8-byte messages from fd 3 to
		// fd 4 (a socket, or two pipes), or from stdin to stdout, until
		// the stream ends.
		in, out := os.NewFile(3, "in"), os.NewFile(4, "out")
		if os.Getenv(modeEnv) == "raw-echo-stdio" {
			in, out = os.Stdin, os.Stdout
		}
		var buf [8]byte
		for {
			if _, err := io.ReadFull(in, buf[:]); err != nil {
				os.Exit(0)
			}
			if _, err := out.Write(buf[:]); err != nil {
				os.Exit(0)
			}
		}
	}
	Main(testFuncs)
	goleak.VerifyTestMain(m)
}

// containedParent is a helper parent under Contain: a plain program that
// leaves a background job and a grandchild in a session of its own, and
// exits. It prints their pids, and stops with Close when stdin ends.
func containedParent() {
	os.Unsetenv(modeEnv)
	jail, err := Contain()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	var out strings.Builder
	a, err := StartCommand(context.Background(), Options{Binary: "/bin/sh",
		Args:   []string{"-c", "sleep 300 & echo $!; setsid sh -c 'echo $$; exec sleep 300' & wait"},
		Output: func(_, line string) { fmt.Fprintln(&out, line) }})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	pid := a.PID()
	orphan := make(chan string, 1)
	a2, err := StartCommand(context.Background(), Options{Binary: "/bin/sh",
		Args:   []string{"-c", "setsid sh -c 'echo $$; exec sleep 300' & sleep 0.1"},
		Output: func(_, line string) { orphan <- line }})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	a2.Wait() // its grandchild is now an orphan of this process, or, with cgroups, killed with its job
	fmt.Printf("pids: %d %t %d %s\n", pid, jail.Cgroups, jail.Keeper, <-orphan)
	io.Copy(io.Discard, os.Stdin)
	a.Stop(context.Background())
	jail.Close()
	fmt.Println("closed")
	os.Exit(0)
}

// parentTree is a helper parent: two children, each with a grandchild. It
// prints every descendant's pid and waits to be killed.
func parentTree() {
	os.Unsetenv(modeEnv) // the children are ordinary actors
	ctx := context.Background()
	var pids []string
	for i := range 2 {
		a, err := Start(ctx, Options{Name: fmt.Sprintf("child-%d", i)})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		s, err := tree.Open(ctx, a.Channel(), struct{}{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		g, err := s.Recv()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		pids = append(pids, strconv.Itoa(a.PID()), strconv.Itoa(g))
	}
	fmt.Println("pids:", strings.Join(pids, " "))
	select {}
}

// withMode returns an environment that puts a child in a helper mode.
func withMode(mode string) []string {
	return append(os.Environ(), modeEnv+"="+mode)
}

var (
	alive          = proctest.Alive
	noChildrenLeft = proctest.NoChildrenLeft
	within         = proctest.Within
	gone           = proctest.Gone
)

// start starts an actor and stops it when the test ends.
func start(t testing.TB, opts Options) *Actor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	return a
}

// readLine reads one line from r within d.
func readLine(t testing.TB, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	var line string
	var err error
	within(t, d, "reading a line", func() { line, err = r.ReadString('\n') })
	if err != nil {
		t.Fatalf("reading a line: %v", err)
	}
	return strings.TrimSpace(line)
}

// keeper starts a grandchild that outlives the call (a pool would), and
// has it run linger, which writes the marker file when it is cancelled:
// the grandchild was stopped gracefully, not killed.
var keeper = ipc.NewFunc("test.keeper", func(ctx context.Context, marker string) (int, error) {
	g, err := Start(ctx, Options{Name: "kept"})
	if err != nil {
		return 0, err
	}
	go linger.Call(context.WithoutCancel(ctx), g.Channel(), marker)
	if _, err := echo.Call(ctx, g.Channel(), "ready"); err != nil {
		return 0, err
	}
	return g.PID(), nil
})

var linger = ipc.NewFunc("test.linger", func(ctx context.Context, marker string) (int, error) {
	os.WriteFile(marker+".up", nil, 0o600) // it is in
	<-ctx.Done()
	return 0, os.WriteFile(marker, []byte("stopped gracefully"), 0o600)
})

// sprout starts a child of the actor, through the cuttable relay launcher
// if asked (out of the parent's session, as on another machine, and with
// no peer socket), reports its pid and keeps it until cancelled.
var sprout = ipc.NewStream("test.sprout", func(ctx context.Context, a struct {
	Name     string
	Launched bool
}, out *ipc.Yielder[int]) error {
	opts := Options{Name: a.Name}
	if a.Launched {
		exe, _ := os.Executable()
		opts.Binary, opts.Launcher, opts.Env = exe, []string{exe}, withMode("relay")
	}
	c, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	defer c.Stop(context.Background())
	if err := out.Send(c.PID()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
})

// peerDo dials the actor named Name and calls one of its functions: Op is
// "who" (whoCalls), "count" (streams Arg items, says their sum), "fail"
// (with Arg as the message), "linger" (with Arg as its marker) or "block"
// (writing the file Arg, if set, once connected); what the call returned is its
// result, its error the peer's, as it came.
var peerDo = ipc.NewFunc("test.peerDo", func(ctx context.Context, a struct{ Name, Op, Arg string }) (string, error) {
	ch, err := Dial(ctx, a.Name, nil)
	if err != nil {
		return "", err
	}
	defer ch.Close()
	switch a.Op {
	case "who":
		return whoCalls.Call(ctx, ch, struct{}{})
	case "count":
		n, _ := strconv.Atoi(a.Arg)
		s, err := count.Open(ctx, ch, n)
		if err != nil {
			return "", err
		}
		sum := 0
		for v, err := range s.All() {
			if err != nil {
				return "", err
			}
			sum += v
		}
		return strconv.Itoa(sum), nil
	case "fail":
		_, err := fail.Call(ctx, ch, a.Arg)
		return "", err
	case "linger": // Arg is linger's marker
		_, err := linger.Call(ctx, ch, a.Arg)
		return "", err
	case "block": // Arg, if set, is a file to write once connected
		if a.Arg != "" {
			os.WriteFile(a.Arg, nil, 0o600)
		}
		_, err := block.Call(ctx, ch, struct{}{})
		return "", err
	}
	return "", fmt.Errorf("no op %q", a.Op)
})

func init() {
	testFuncs = ipc.MustNewTable(echo, pid, exit, fail, find, whoCalls, callPeer, stopPeer, block, stubborn, count, say, tree, keeper, linger,
		sprout, peerDo)
}
